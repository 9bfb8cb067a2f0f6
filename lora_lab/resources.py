"""Where the shipped configs and studies are read from: inside the installed package.

The repository keeps one copy of each, at its top level: ``conf/`` (Hydra's config groups) and
``sweeps/`` (the studies). The wheel ships them inside the package as ``lora_lab/conf/`` and
``lora_lab/studies/`` (``setup.py`` maps the two directories with ``package_dir``; nothing is copied
in the repository), and they are found here with `importlib.resources`. In a clone (an editable
install, or ``PYTHONPATH=.``) the package has no such directories and the top-level ones are used.

Hydra reads config directories from the filesystem, so an install must unpack the package (any
wheel installed by pip does; a zip import would not).

A user's own configs extend these: a directory on Hydra's search path
(``hydra.searchpath=[file:///abs/my_conf]``) adds options to every group, and a study file given by
path (``lora-lab sweep ./my_study.yaml``) may keep its own groups next to it (docs/configuration.md).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: directory inside the installed package -> the repository's top-level directory it is built from
SHIPPED = {"conf": "conf", "studies": "sweeps"}


def shipped_dir(name: str) -> Path:
    """``lora_lab/<name>`` of the installed package, else the clone's top-level directory."""
    inside = resources.files("lora_lab") / name
    if inside.is_dir():
        return Path(str(inside))
    return Path(str(resources.files("lora_lab"))).parent / SHIPPED[name]


def config_dir() -> Path:
    """Hydra's primary config directory (``train.yaml`` and the groups)."""
    return shipped_dir("conf")


def studies_dir() -> Path:
    """The studies ``lora-lab sweep NAME`` knows by name."""
    return shipped_dir("studies")
