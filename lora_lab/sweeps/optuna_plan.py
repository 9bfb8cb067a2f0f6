"""``lora-lab sweep`` for Optuna studies: the dry run (search space, storage, what the storage already
holds) and the end-of-sweep summary read back from the study's storage."""

from __future__ import annotations

import sys
from pathlib import Path

from lora_lab.sweeps.expand import Plan
from lora_lab.optuna_storage import exists, open_storage, storage_url
from lora_lab.sweeps.optuna_study import LOCK_DIR, FileLock
from lora_lab.sweeps.search_space import describe, metric_direction


def expand_shorthands(overrides: list[str]) -> list[str]:
    """``storage=<URL>`` on the ``lora-lab sweep`` command line means ``hydra.sweeper.storage=<URL>``."""
    return [f"hydra.sweeper.{o}" if o.startswith("storage=") else o for o in overrides]


def study_name(plan: Plan) -> str:
    return str(plan.sweeper.get("study_name") or plan.trials[0].config.get("study"))


def direction(plan: Plan) -> str:
    chosen = plan.sweeper.get("direction", "auto")
    if chosen != "auto":
        return str(chosen)
    from lora_lab.tasks.registry import parse_task_config

    return metric_direction(parse_task_config(plan.trials[0].config["task"]).spec().primary_key)


def load_trials(url: str, name: str) -> list | None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)
    except KeyError:  # no such study in this storage yet
        return None


def _states(trials) -> str:
    names = [t.state.name.lower() for t in trials]
    return ", ".join(f"{names.count(s)} {s}" for s in sorted(set(names)))


def print_plan(plan: Plan, out=None) -> None:
    out = out or sys.stdout
    url = storage_url(plan.sweeper.get("storage"), plan.sweep_dir)
    name = study_name(plan)
    print(f"study {plan.study.name}: Optuna study {name!r}, {plan.sweeper['n_trials']} trials, {direction(plan)} "
          f"the validation selection metric, in {plan.sweep_dir}", file=out)
    print(f"  storage: {url}", file=out)
    for key, dist in plan.space.items():
        print(f"  search {key}: {describe(dist)}", file=out)
    for key, value in plan.fixed.items():
        print(f"  fixed  {key}={value}", file=out)
    print(f"  {len(plan.trials)} corner points composed and schema-checked, e.g. {plan.trials[0].subdir}", file=out)
    trials = load_trials(url, name) if exists(url) else None  # a dry run creates no storage
    print(f"  storage holds: {_states(trials) if trials else 'nothing yet'}", file=out)


def report_outcome(plan: Plan, err=None) -> int:
    """Print the study's state after the sweep; 0 when every trial in it is complete, pruned (the
    pruner doing its job, not a fault) or runs in another live process sharing the study."""
    err = err or sys.stderr
    name = study_name(plan)
    trials = load_trials(storage_url(plan.sweeper.get("storage"), plan.sweep_dir), name) or []
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    elsewhere = [t for t in trials if t.state.name == "RUNNING" and _claimed_elsewhere(plan, name, t.number)]
    print(f"study {plan.study.name}: Optuna study {name!r}: {len(complete)}/{len(trials)} trials complete ({_states(trials)})", file=err)
    for t in trials:
        if t.state.name != "COMPLETE":
            state = "running elsewhere" if t in elsewhere else t.state.name.lower()
            why = t.user_attrs.get("fail_reason") or t.user_attrs.get("pruned_reason") or ""
            print(f"  {state}: trial {t.number} {t.user_attrs.get('run_dir', '')} {why}", file=err)
    if complete:
        best = max(complete, key=lambda t: t.value) if direction(plan) == "maximize" else min(complete, key=lambda t: t.value)
        print(f"  best: trial {best.number} value {best.value:.4f} {best.params}", file=err)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    return 0 if trials and len(complete) + len(elsewhere) + len(pruned) == len(trials) else 1


def _claimed_elsewhere(plan: Plan, name: str, number: int) -> bool:
    """A RUNNING trial whose claim another live process holds (a second sweep sharing the study):
    that process's trial, not a failure of this one (`lora_lab.sweeps.optuna_study`'s claim locks)."""
    path = Path(plan.sweep_dir) / LOCK_DIR / f"{name}-trial{number}.lock"
    if not path.is_file():
        return False
    lock = FileLock(path)
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True
