"""``lora-lab sweep NAME [overrides] [dry_run=true]``: a thin wrapper over Hydra's ``--multirun``.

1. Expand the study (`lora_lab.sweeps.expand`): every trial is composed and schema-checked and the
   run directories must be distinct, so a typo or a colliding name fails before anything trains.
2. ``dry_run=true`` stops here and lists every trial's run directory (and whether it already has a
   finished result: a rerun skips those). An Optuna study (``hydra/sweeper=optuna``) lists its search
   space, storage and what the storage holds instead (`lora_lab.sweeps.optuna_plan`), and after the
   sweep its state is read back from the storage (exit status 0 when every trial is complete).
3. Otherwise write the plan ``<sweep dir>/sweep_plan.json`` (the report counts planned trials without
   a result as *missing*) and hand the same overrides to Hydra's multirun, with the launcher the
   study or the command line picks (``hydra/launcher=sequential|parallel|submitit|slurm_cpu|slurm_gpu|slurm_ddp``).

Exit status: 0 when every planned trial ended ``success`` (or runs in another live sweep of the same
study: `lora_lab.sweeps.outcome`), 1 otherwise (the report lists which).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lora_lab.config.overlays import overlay_conflict
from lora_lab.errors import ConfigError
from lora_lab.run.gate import check_finished_results
from lora_lab.results.record import PLAN_NAME, atomic_write_text, git_state, record_status
from lora_lab.sweeps.interrupt import SweepInterrupt, report_interrupt
from lora_lab.sweeps.outcome import grid_outcome
from lora_lab.run.parent_watch import mark_sweep_process

USAGE = """usage: lora-lab sweep NAME [hydra overrides] [dry_run=true] [storage=<Optuna storage URL>]

NAME: a study in sweeps/ ({studies}), an experiment in conf/experiment/ ({experiments}),
or a path to a study .yaml. Overrides are Hydra's (a,b,c sweeps a key; hydra/launcher=parallel runs
trials in parallel on this machine). dry_run=true lists every trial's run dir without training.
An Optuna study (hydra/sweeper=optuna, docs/hpo.md) resumes when rerun; storage=<database URL>
shares it between processes and SLURM jobs."""


def _pop_dry_run(overrides: list[str]) -> tuple[bool, list[str]]:
    dry, rest = False, []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "dry_run":
            if value.lower() not in ("true", "false"):
                raise ConfigError("dry_run", f"must be true or false, got {value!r}")
            dry = value.lower() == "true"
        else:
            rest.append(item)
    return dry, rest


def _status(run_dir: Path) -> str:
    return record_status(run_dir)


def print_plan(study, trials, out=None) -> None:
    out = out or sys.stdout
    sweep_dirs = sorted({t.sweep_dir for t in trials})
    print(f"study {study.name}: {len(trials)} trials in {', '.join(sweep_dirs)}", file=out)
    for t in trials:
        print(f"  [{_status(Path(t.run_dir)):>9}] {t.run_dir}", file=out)


def write_plans(study, trials, overrides: list[str], git: dict) -> list[Path]:
    """One plan per sweep dir: the trials this launch expects there and the code (``git``) that planned
    them (overwrites the previous plan)."""
    from lora_lab.sweeps.expand import trial_summary

    written = []
    for sweep_dir in sorted({t.sweep_dir for t in trials}):
        plan = {
            "study": study.name,
            "study_file": str(study.path),
            "overrides": list(overrides),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": git,
            "trials": [trial_summary(t) for t in trials if t.sweep_dir == sweep_dir],
        }
        path = Path(sweep_dir) / PLAN_NAME
        atomic_write_text(path, json.dumps(plan, indent=1))
        written.append(path)
    return written


def dirty_tree_warning(git: dict) -> str | None:
    """One line when lora_lab's checkout has uncommitted changes: every trial of the sweep would record
    ``git.dirty`` and its table would say so (a study meant for a paper runs from a commit; edit the code
    in another worktree while it runs: docs/studies.md)."""
    if not git.get("dirty"):
        return None
    return (f"warning: lora_lab's checkout has uncommitted changes (git {str(git.get('sha'))[:10]} + edits): every trial records "
            "git.dirty=true and the report's table notes it; commit first, or run the study from a clean worktree (docs/studies.md)")


def warn_if_dirty(git: dict) -> None:
    line = dirty_tree_warning(git)
    if line:
        print(line, file=sys.stderr)


def run_multirun(study, overrides: list[str], params: list[str] | None = None) -> None:
    """Hand over to Hydra exactly as ``python -m lora_lab.train [--config-dir D --config-name N] -m ...``.

    ``params``: a grid study's sweep (`lora_lab.sweeps.expand.study_params`, schema keys made settable),
    given to Hydra's basic sweeper on the command line in place of the study's own
    ``hydra.sweeper.params`` (set to null), before the user's overrides as Hydra orders them."""
    from lora_lab.run.hydra_task import main as hydra_task

    argv = ["lora-lab sweep"]
    if study.config_dir is not None:
        argv += ["--config-dir", str(study.config_dir)]
    swept = [] if params is None else ["hydra.sweeper.params=null", *params]
    argv += ["--config-name", study.config_name, "--multirun", *swept, *study.overrides, *overrides]
    if not any(o.startswith("hydra/hydra_logging=") for o in overrides):
        argv.append("hydra/hydra_logging=disabled")  # the launcher's "#k : overrides" lines; TrialLines reports trials
    saved = sys.argv
    sys.argv = argv
    mark_sweep_process()  # the trials of a parallel launcher watch this process
    try:
        hydra_task()
    finally:
        sys.argv = saved


def optuna_sweep(plan, overrides: list[str], dry_run: bool) -> int:
    """An Optuna study (`lora_lab.sweeps.optuna_plan`): no plan file (trials are sampled as it runs)."""
    from lora_lab.sweeps.optuna_checks import check_storage
    from lora_lab.sweeps.optuna_plan import print_plan, report_outcome
    from lora_lab.sweeps.optuna_study import storage_url

    if dry_run:
        print_plan(plan)
        return 0
    check_storage(storage_url(plan.sweeper.get("storage"), plan.sweep_dir), write=True)  # creates the sweep dir
    warn_if_dirty(git_state())
    with SweepInterrupt() as stop:
        run_multirun(plan.study, overrides)
    if stop.hit:
        return report_interrupt(plan.study.name, [plan.sweep_dir], stop.started)
    return report_outcome(plan)


def sweep(argv: list[str]) -> int:
    from lora_lab.sweeps.expand import plan_study, settable_overrides
    from lora_lab.sweeps.optuna_plan import expand_shorthands
    from lora_lab.sweeps.studies import experiment_names, find_study, study_names
    from lora_lab.sweeps.trial_lines import TrialLines

    if argv and argv[0] in ("-h", "--help"):
        print(USAGE.format(studies=", ".join(study_names()), experiments=", ".join(experiment_names())))
        return 0
    if not argv:  # bad input: one line, like every other
        print(f"error: NAME: missing; allowed: {', '.join([*study_names(), *experiment_names()])} or a path to a study .yaml "
              "(lora-lab sweep --help says more)", file=sys.stderr)
        return 2
    dry_run, overrides = _pop_dry_run(argv[1:])
    study = find_study(argv[0])
    overrides = expand_shorthands(overrides)  # storage=<URL>: an Optuna study's storage
    overrides = settable_overrides(study, overrides)  # task.data_dir=... where the task's YAML lacks the key
    plan = plan_study(study, overrides)
    for trial in plan.trials:
        conflict = overlay_conflict(overrides, trial.overrides, trial.config)
        if conflict is not None:
            raise conflict
    if plan.kind == "optuna":
        return optuna_sweep(plan, overrides, dry_run)
    trials = plan.trials
    if dry_run:
        print_plan(study, trials)
        return 0
    check_finished_results(trials)
    git = git_state()
    for plan_file in write_plans(study, trials, overrides, git):
        print(f"study {study.name}: {len(trials)} trials; plan in {plan_file}", file=sys.stderr)
    warn_if_dirty(git)
    with SweepInterrupt() as stop, TrialLines([(t.run_dir, t.subdir) for t in trials]):
        run_multirun(study, overrides, plan.params)
    if stop.hit:
        return report_interrupt(study.name, sorted({t.sweep_dir for t in trials}), stop.started)
    return grid_outcome(study.name, [t.run_dir for t in trials])
