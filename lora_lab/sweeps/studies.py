"""Where studies live and what their headers declare.

A study is either

- a file ``sweeps/<name>.yaml``: a primary Hydra config whose defaults list starts with ``train`` and
  which sets ``hydra.sweeper.params`` (found through a second config dir, like ``--config-dir``), or
- an experiment ``conf/experiment/<name>.yaml`` (a ``# @package _global_`` overlay of ``train``, e.g.
  a paper reproduction), run as ``train experiment=<name>``, or
- any other ``.yaml`` path given on the command line (tests use this).

Each file opens with a comment stating the goal, the scientific / nuisance / fixed hyperparameters,
the table it feeds and a line ``# Trials: N`` with the number of trials it expands to (a test checks
N against the expansion).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.resources import config_dir, studies_dir

SWEEPS_DIR = studies_dir()
EXPERIMENT_DIR = config_dir() / "experiment"
_TRIALS = re.compile(r"^#\s*Trials:\s*(\d+)", re.MULTILINE)


@dataclass
class Study:
    name: str
    path: Path
    config_name: str  # primary config Hydra loads
    config_dir: Path | None  # extra config dir (None: conf/ only)
    overrides: list[str] = field(default_factory=list)  # implied overrides (experiment=<name>)

    @property
    def header(self) -> str:
        """The leading comment block of the file."""
        lines = []
        for line in self.path.read_text().splitlines():
            if line.startswith("#"):
                lines.append(line)
            elif line.strip() or lines:
                break
        return "\n".join(lines)

    @property
    def declared_trials(self) -> int | None:
        match = _TRIALS.search(self.header)
        return int(match.group(1)) if match else None


def study_names() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


def find_study(name: str) -> Study:
    """``sweeps/<name>.yaml``, else ``conf/experiment/<name>.yaml``, else a path to a ``.yaml`` file."""
    if (SWEEPS_DIR / f"{name}.yaml").is_file():
        return Study(name, SWEEPS_DIR / f"{name}.yaml", name, SWEEPS_DIR)
    if (EXPERIMENT_DIR / f"{name}.yaml").is_file():
        return Study(name, EXPERIMENT_DIR / f"{name}.yaml", "train", None, [f"experiment={name}"])
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        path = path.resolve()
        return Study(path.stem, path, path.stem, path.parent)
    allowed = ", ".join(study_names() + experiment_names())
    raise ConfigError("study", f"unknown study {name!r}; allowed: {allowed} (or a path to a .yaml study file)")
