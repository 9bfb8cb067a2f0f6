"""Which keys of a run's resolved config make it the trial it is.

A run's ``result.json`` holds its whole resolved config. Only part of it decides what the run computes:

- **trial keys** (`trial_keys`): the top-level keys of ``conf/train.yaml`` and the names of its config
  groups. A study or experiment file may add top-level keys of its own that only its interpolations look
  up -- a per-task step table (``task_steps: {glue_cola: 3000, default: 1000}`` read by ``trainer.max_steps:
  ${oc.select:task_steps.${task.name},...}``), a budget name, published reference numbers. No code reads
  them; the resolved config already holds their whole effect (``trainer.max_steps``, ``adapter.r``).
- of those, **run control** (how to run, not which run), **location** (where it writes) and **derived**
  inputs (``method_lr``, whose effect is ``optim.lr``) are not the trial either.

Two consumers read the same answer: the gate (`trial_identity`: a rerun with an equal identity is the
same trial, one with another is refused as "a different config") and the report
(`is_result_key`: only such keys can split a table's rows), so a study's lookup table can neither make
its finished trials "different" nor split one configuration into two table rows.
"""

from __future__ import annotations

from functools import lru_cache

import yaml

from lora_lab.resources import config_dir

#: how a trial runs, not which trial: ignored when matching results (a rerun with another progress
#: display or other trackers is the same trial)
RUN_CONTROL_KEYS = ("force", "resume", "progress", "logger", "analysis", "optuna_trial")
#: where a trial writes, not what it computes: a copied or moved runs dir, or ``runs`` spelled
#: ``runs/`` or absolute, holds the same trials
LOCATION_KEYS = ("paths",)
#: inputs whose whole effect the resolved config already holds: ``method_lr`` (each method's default
#: lr) only matters through ``optim.lr``, so giving a new method its default does not make every
#: finished run of the other methods "a different config"
DERIVED_KEYS = ("method_lr",)


@lru_cache(maxsize=1)
def trial_keys() -> frozenset[str]:
    """The top-level keys a trial reads: those of ``conf/train.yaml`` and the names of its config groups
    (module doc)."""
    base = yaml.safe_load((config_dir() / "train.yaml").read_text())
    # defaults entries: "task: synthetic", "optional recipe: ...", "override hydra/job_logging: ..."
    groups = {key.split()[-1] for entry in base.get("defaults", []) if isinstance(entry, dict) for key in entry}
    return frozenset(k for k in base if k != "defaults") | {g for g in groups if "/" not in g}


@lru_cache(maxsize=1)
def result_keys() -> frozenset[str]:
    """The trial keys that can change what a trial computes: neither run control, location nor derived."""
    return trial_keys() - {*RUN_CONTROL_KEYS, *LOCATION_KEYS, *DERIVED_KEYS}


def is_result_key(top_level_key: str) -> bool:
    """Whether a top-level config key is one of `result_keys`."""
    return top_level_key in result_keys()


def trial_identity(config: dict | None) -> dict | None:
    """The resolved config without run-control, location and derived-only keys, and without a study
    file's own lookup tables: two configs equal here are the same trial (what changes the result, not
    where it is written). So a study that gives one task a longer budget in its step table leaves the
    finished trials of its other tasks the same trials, while the trials whose ``trainer.max_steps`` it
    changes become different configs."""
    if config is None:
        return None
    return {k: v for k, v in config.items() if is_result_key(k)}
