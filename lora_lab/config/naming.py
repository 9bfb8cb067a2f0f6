"""Run directories named by meaning, not by time.

``<task>/<backbone>/<adapter tag>/lr<lr>-seed<seed>``, where the adapter tag is
``<method>-r<r>-a<alpha>-<init>-<targets>`` (a part left out where the method has no such knob, e.g.
VeRA has no alpha) plus ``rs`` for rsLoRA and ``key<value>`` for every other
adapter knob that differs from its method's default (so two configs that differ anywhere in the
adapter never share a directory); numbers keep at most 4 significant digits (`name_number`). A requeued SLURM job finds its checkpoint in the same place, a rerun
is idempotent, and the report can trust paths. Registered as the OmegaConf resolver ``adapter_tag``.
"""

from __future__ import annotations

import hashlib
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from lora_lab.adapters import METHODS
from lora_lab.adapters.config import knob_defaults

SHOWN = ("method", "r", "alpha", "init", "targets", "rslora")


NAME_DIGITS = 4  # significant digits of a number in a run name


def name_number(value) -> str:
    """A number as a run-name part: as written when it has at most `NAME_DIGITS` significant digits
    (``0.0005``, ``16``, ``1e-05``); otherwise (a value Optuna sampled, ``0.17835460015641597``) rounded to
    them plus ``_`` and 4 hex digits of a hash of the exact value (``0.1784_3f9a``), so two trials whose
    values agree to 4 digits still get two directories. The exact value stays in the run's config and
    ``result.json``. Registered as the OmegaConf resolver ``name_number`` (the ``lr`` of ``run_name``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    rounded = f"{value:.{NAME_DIGITS}g}"
    if isinstance(value, int) or float(rounded) == value:
        return str(value)
    return f"{rounded}_{hashlib.sha1(repr(value).encode()).hexdigest()[:4]}"


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    text = name_number(value)
    if re.fullmatch(r"[A-Za-z0-9_.+\-]+", text):
        return text
    return "re" + hashlib.sha1(text.encode()).hexdigest()[:8]


def adapter_tag(adapter) -> str:
    if isinstance(adapter, (DictConfig, ListConfig)):
        adapter = OmegaConf.to_container(adapter, resolve=True)
    method = adapter.get("method", "?")
    parts = [str(method)] + [f"{prefix}{_fmt(adapter[key])}" for key, prefix in (("r", "r"), ("alpha", "a"), ("init", ""), ("targets", "")) if key in adapter]
    tag = "-".join(parts)
    if adapter.get("rslora"):
        tag += "-rs"
    defaults = knob_defaults(METHODS[method].config_cls) if method in METHODS else {}
    for key in sorted(adapter):
        if key in SHOWN or (key in defaults and adapter[key] == defaults[key]):
            continue
        tag += f"-{key}{_fmt(adapter[key])}"
    return tag
