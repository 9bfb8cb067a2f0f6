"""``lora-lab train --multirun ...`` (Hydra's own multirun) checked and ended like ``lora-lab sweep``.

Before Hydra writes anything (``multirun.yaml``, run dirs) every trial is composed and checked as a
study's plan (`check_multirun`, handed to `lora_lab.run.gate.check_command_line` by the entry points),
and after the launch `multirun_outcome` gives the exit status: 130 after Ctrl-C (stopped trials
recorded cancelled), 1 when a grid trial did not succeed.
"""

from __future__ import annotations

from pathlib import Path

from lora_lab.config.compose import CONF_DIR
from lora_lab.errors import ConfigError
from lora_lab.run.gate import check_finished_results
from lora_lab.sweeps.expand import plan_study
from lora_lab.sweeps.interrupt import report_interrupt
from lora_lab.sweeps.optuna_checks import check_storage
from lora_lab.sweeps.optuna_study import storage_url
from lora_lab.sweeps.outcome import grid_outcome
from lora_lab.run.parent_watch import mark_sweep_process
from lora_lab.sweeps.studies import Study

MULTIRUN_FLAGS = ("-m", "--multirun")
CONFIG_FLAGS = {"--config-dir": "dir", "-cd": "dir", "--config-name": "name", "-cn": "name"}


def multirun_study(argv: list[str]):
    """``(Study, overrides)`` of ``lora-lab train --multirun [--config-dir D] [--config-name N] OVERRIDES``;
    None for any other command line (a single run, ``--cfg``, ``--info``, ...)."""
    chosen, overrides, multirun, args = {}, [], False, list(argv)
    while args:
        arg = args.pop(0)
        flag, eq, value = arg.partition("=")
        if arg in MULTIRUN_FLAGS:
            multirun = True
        elif flag in CONFIG_FLAGS:
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            chosen[CONFIG_FLAGS[flag]] = value
        elif arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
    if not multirun:
        return None
    name = chosen.get("name", "train")
    config_dir = Path(chosen["dir"]).resolve() if "dir" in chosen else None
    path = (config_dir or Path(CONF_DIR)) / f"{name}.yaml"
    return Study(name, path, name, config_dir), overrides


def check_multirun(argv: list[str]):
    """Every trial of ``lora-lab train --multirun ...`` composed and checked like ``lora-lab sweep``
    plans them (`lora_lab.sweeps.expand.plan_study`: schema, distinct run dirs, an Optuna study's
    settings and searched keys) and no finished result of another config in the way, before Hydra
    writes anything (``multirun.yaml``, run dirs). Returns the plan (None: not a checkable multirun)."""
    found = multirun_study(argv)
    if found is None:
        return None
    study, overrides = found
    plan = plan_study(study, overrides)
    if plan.kind == "grid":
        check_finished_results(plan.trials)
    else:
        check_storage(storage_url(plan.sweeper.get("storage"), plan.sweep_dir), write=True)
    mark_sweep_process()  # the trials of a parallel launcher watch this process
    return plan


def multirun_outcome(argv: list[str], interrupted_since: float | None = None) -> int:
    """After ``lora-lab train --multirun``: stopped by Ctrl-C (``interrupted_since``: when the launch
    started), its stopped trials recorded cancelled and exit status 130
    (`lora_lab.sweeps.interrupt`); else for a grid how its trials ended, and 1 when one did not
    succeed, as ``lora-lab sweep``; 0 for anything else (an Optuna study reports its trials as it
    tells them)."""
    found = multirun_study(argv)
    if found is None:
        return 0
    study, overrides = found
    try:
        plan = plan_study(study, overrides, validate=False)
    except ConfigError:
        return 0
    if interrupted_since is not None:
        return report_interrupt(study.name, sorted({plan.sweep_dir, *(t.sweep_dir for t in plan.trials)}), interrupted_since)
    return grid_outcome(study.name, [t.run_dir for t in plan.trials]) if plan.kind == "grid" else 0
