"""Collect ``result.json`` files from any set of run dirs / sweep dirs into one pandas DataFrame.

One row per trial (``trials``): status, reason, task, method, seed, learning rate, the primary
validation metric (``val``: best evaluation; ``val_max``: best point of the curve), the test metric
where the task has labelled test data, the chance level and whether the run never left it, parameter
counts, steps, wall time, and every leaf of the resolved config flattened as ``cfg.<dotted key>``
(lists joined with ``+``). A score that is a number but not finite (``Infinity``, ``NaN``) is kept out
of ``val`` / ``test`` (never averaged) and named in ``nonfinite``. Statuses: ``success``, ``failed``, ``cancelled``, ``running`` (a job
killed mid-run leaves this), ``pruned`` (stopped early by an Optuna pruner: not averaged in, not a
failure), plus ``corrupt`` (unreadable, truncated or wrongly shaped file, e.g.
``metrics`` a list or ``config.task`` a string, a status this version does not know, a
``schema_version`` it cannot read: see `shape_problem`) and ``missing`` (a trial in a
``sweep_plan.json`` with no result.json). Nothing is ever dropped silently.

Parameter counts: ``adapter_params`` is what the run attached (the allocation);
``adapter_params_final`` is the count the table shows, the adapter as trained, which each method
reports in its summary (`AdapterMethod.final_adapter_params`: the same number for a method whose count
is fixed, fewer for one that prunes in training). A record written before methods reported it falls
back to the allocation when the registered method's count is fixed, and is empty otherwise (the table
then shows the allocation, marked).

Speed (thousands of runs): one directory walk that stops descending at a run dir or a dot-dir,
``json.loads`` on the raw bytes, plain dicts per file, a single DataFrame built at the end.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lora_lab.adapters.method import count_fixed_in_training
from lora_lab.errors import ConfigError
from lora_lab.results.record import PLAN_NAME, RESULT_NAME, STATUSES as RECORD_STATUSES, MalformedResult, ResultRecord
from lora_lab.tasks.registry import metric_info, parse_task_config

#: a run whose best validation value is within this of the chance level never left it
CHANCE_TOL = 0.005
#: what a record says of its run, then what the collection says of a run dir without a readable record
STATUSES = (*RECORD_STATUSES, "corrupt", "missing")


@dataclass
class Collection:
    trials: pd.DataFrame
    rank_patterns: dict[int, dict] = field(default_factory=dict)  # trial row -> method summary with a rank pattern
    references: list[dict] = field(default_factory=list)  # distinct ``reference`` nodes of the configs
    roots: list[str] = field(default_factory=list)


def find_files(paths) -> tuple[list[Path], list[Path]]:
    """(result.json files, sweep_plan.json files) under ``paths`` (files or directories)."""
    results, plans = [], []
    stack, linked = [], set()
    for p in paths:
        p = Path(p)
        if p.is_file():
            if p.name not in (RESULT_NAME, PLAN_NAME):  # a log, a CSV, a checkpoint given by mistake: never read as a corrupt run
                raise ConfigError("PATH", f"{p} is neither a {RESULT_NAME} nor a {PLAN_NAME}; allowed: run directories, sweep "
                                  f"directories, {RESULT_NAME} or {PLAN_NAME} files")
            (plans if p.name == PLAN_NAME else results).append(p)
        elif p.is_dir():
            stack.append(str(p))
        else:
            raise FileNotFoundError(p)
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:  # unreadable or vanished while walking: nothing to collect there
            continue
        names = {e.name for e in entries}
        if PLAN_NAME in names:
            plans.append(Path(current, PLAN_NAME))
        if RESULT_NAME in names:
            results.append(Path(current, RESULT_NAME))
            continue  # a run dir: adapter/, checkpoints/, logs/ hold no results
        for e in entries:
            if e.name.startswith(".") or not e.is_dir():
                continue
            if e.is_symlink():  # followed once (a linked run dir counts); a link to an ancestor is a loop
                real, here = os.path.realpath(e.path), os.path.realpath(current)
                if real in linked or here == real or here.startswith(real + os.sep):
                    continue
                linked.add(real)
            stack.append(e.path)
    return sorted(set(results)), sorted(set(plans))


def flatten(node: dict, prefix: str, out: dict) -> None:
    """``{"a": {"b": 1, "c": [1, 2]}}`` -> ``out["<prefix>a.b"] = 1``, ``out["<prefix>a.c"] = "1+2"``."""
    for k, v in node.items():
        key = prefix + str(k)
        if type(v) is dict:
            flatten(v, key + ".", out)
        elif type(v) is list:
            out[key] = "+".join(map(str, v))
        else:
            out[key] = v


def chance_level(baselines: dict, metric: str | None, primary: str | None) -> float | None:
    """The level a run must leave, as the metric's task family declares it (`MetricInfo.chance`): 0 for
    correlations, the majority-class rate for accuracy, else the untrained (pretrained) model's value
    where the run recorded one (generation tasks); None when unknown."""
    chance = metric_info(metric).chance
    if chance == "zero":
        return 0.0
    majority = _num(baselines.get("majority_val"))
    if chance == "majority" and majority is not None:
        return majority
    untrained = baselines.get("untrained_val")
    return _num(untrained.get(primary)) if isinstance(untrained, dict) and primary else None


def _num(value):
    """``value`` as a finite float; None for anything else (text, bool, ``NaN``, ``Infinity``: never averaged)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _nonfinite(**scores) -> str | None:
    """``"val=inf"`` for the scores that are numbers but not finite (``json`` reads ``Infinity`` and
    ``NaN``): the row keeps no value for them, and the report says why."""
    bad = [f"{name}={value}" for name, value in scores.items()
           if isinstance(value, float) and not math.isfinite(value)]
    return ", ".join(bad) or None


def shape_problem(record: dict) -> str | None:
    """Why a parsed result.json cannot be one trial row (None when its shape is right): the typed
    `ResultRecord` refuses every field of the wrong type, and the file is ``corrupt``."""
    try:
        ResultRecord.from_dict(record)
    except MalformedResult as err:
        return str(err)
    return None


def final_adapter_params(record: dict, method) -> int | None:
    """The trained adapter's parameter count: the method summary's ``adapter_params_final``; for a
    record without it, the recorded allocation when the method's count cannot change in training
    (`count_fixed_in_training`), else None."""
    summary = record.get("method_summary")
    exact = summary.get("adapter_params_final") if isinstance(summary, dict) else None
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    recorded = (record.get("params") or {}).get("adapter_params")
    return recorded if count_fixed_in_training(method) else None


def trial_row(record: dict, path: Path) -> dict:
    """The flat row of one parsed result.json."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    metrics = record.get("metrics") or {}
    primary = record.get("primary_metric")
    best = metrics.get("best_val") or {}
    raw_test = (metrics.get("test") or {}).get("test/" + primary.split("/", 1)[1]) if primary and "/" in primary else None
    nonfinite = _nonfinite(val=best.get(primary) if primary else None, test=raw_test)
    val = _num(best.get(primary)) if primary else None
    curve_vals = [v for v in (p.get(primary) for p in record.get("curve") or [] if type(p) is dict) if _num(v) is not None]
    test = _num(raw_test)
    metric = primary.split("/", 1)[1] if primary and "/" in primary else primary
    chance = chance_level(record.get("baselines") or {}, metric, primary)
    val_max = max(curve_vals) if curve_vals else val
    params = record.get("params") or {}
    recorded = params.get("adapter_params")
    final = final_adapter_params(record, (config.get("adapter") or {}).get("method"))
    task, adapter, optim = config.get("task") or {}, config.get("adapter") or {}, config.get("optim") or {}
    row = {
        "run_dir": str(path.parent),
        "status": record.get("status", "?"),
        "reason": record.get("reason"),
        "study": record.get("study", config.get("study")),
        "task": task.get("name"),
        "method": adapter.get("method"),
        "seed": config.get("seed"),
        "lr": _num(optim.get("lr")),
        "metric": metric,
        "val": val,
        "val_max": val_max,
        "test": test,
        "nonfinite": nonfinite,
        "chance": chance,
        "at_chance": bool(val_max is not None and chance is not None and val_max <= chance + CHANCE_TOL),
        "adapter_params": recorded,
        "adapter_params_final": final,
        "trainable_params": params.get("trainable_params"),
        "steps": record.get("optimizer_steps"),
        "wall_time_s": _num(record.get("wall_time_s")),
        **_cost_fields(record),
        "cpu_time_s": _num(record.get("cpu_time_s")),
        "torch_threads": record.get("torch_threads"),
        "written_at": record.get("written_at"),
        **code_version(record),
        **machines_of(record),
    }
    # ``paths`` is where the run was written on its machine (absolute paths of someone's disk), not what it
    # computed: ``run_dir`` says where; a committed trials.csv carries no machine's paths
    flatten({k: v for k, v in config.items() if k not in ("reference", "references", "recipe", "hydra", "paths")}, "cfg.", row)
    return row


def code_version(record: dict) -> dict:
    """``git_sha`` (the commit of the process that wrote the record), ``git_dirty`` (any of the trial's
    processes ran with uncommitted changes) and ``git_commits`` (every commit its processes ran,
    ``+``-joined in order: a trial resumed under another commit has two)."""
    final = record.get("git") if isinstance(record.get("git"), dict) else {}
    attempts = record.get("attempts") if isinstance(record.get("attempts"), list) else []
    states = [a["git"] for a in attempts if isinstance(a, dict) and isinstance(a.get("git"), dict)] + [final]
    shas = list(dict.fromkeys(str(g["sha"]) for g in states if g.get("sha")))
    dirty = [bool(g["dirty"]) for g in states if g.get("dirty") is not None]
    return {"git_sha": final.get("sha"), "git_dirty": any(dirty) if dirty else None, "git_commits": "+".join(shas) or None}


def machines_of(record: dict) -> dict:
    """``machines``: the kinds of machine the trial's processes ran on, `` + ``-joined in order, each as
    ``CPU model (N cpus; devices)`` from ``attempts[].machine`` (`lora_lab.machine`); a trial resumed on
    another kind has two. Absent when no attempt recorded one (records written before it was)."""
    attempts = record.get("attempts") if isinstance(record.get("attempts"), list) else []
    kinds = []
    for attempt in attempts:
        machine = attempt.get("machine") if isinstance(attempt, dict) else None
        if isinstance(machine, dict):
            where = "; ".join(str(part) for part in (f"{machine.get('cpus')} cpus" if machine.get("cpus") else None, machine.get("devices")) if part)
            kinds.append(f"{machine.get('cpu') or 'unknown CPU'}" + (f" ({where})" if where else ""))
    return {"machines": " + ".join(dict.fromkeys(kinds))} if kinds else {}


def _cost_fields(record: dict) -> dict:
    """Peak memory (GPU max allocated when recorded, else the process's max RSS) and evaluation sizes."""
    memory = record.get("peak_memory_mb") if isinstance(record.get("peak_memory_mb"), dict) else {}
    sizes = (record.get("data") or {}).get("sizes") if isinstance(record.get("data"), dict) else None
    sizes = sizes if isinstance(sizes, dict) else {}
    gpu = _num(memory.get("cuda_max_allocated_mb"))
    return {"peak_memory_mb": gpu if gpu is not None else _num(memory.get("cpu_max_rss_mb")), "peak_memory_kind": "cuda" if gpu is not None else "cpu",
            "n_val": sizes.get("val"), "n_test": sizes.get("test")}


def _problem_row(path: Path, status: str, reason: str) -> dict:
    return {"run_dir": str(path), "status": status, "reason": reason}


def _planned_row(trial: dict, run_dir: Path) -> dict:
    """Task, method, seed and ``cfg.*`` of a planned trial (plans since the config was recorded in
    them), so a missing trial is counted in its cell; {} when the plan holds no usable config."""
    config = trial.get("config")
    if not isinstance(config, dict) or shape_problem({"config": config}):
        return {}
    try:
        row = trial_row({"config": config}, run_dir / RESULT_NAME)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return {}
    keep = ("task", "method", "seed", "lr")
    return {**{k: v for k, v in row.items() if k in keep or k.startswith("cfg.")}, "metric": _planned_metric(config.get("task"))}


def _planned_metric(task: dict | None) -> str | None:
    """The primary metric a planned trial's task will report (its `TaskSpec`, known before any data is
    read), so the column of a task with no finished run is still labelled; None when this version
    cannot parse the planned task config."""
    try:
        return parse_task_config(task).spec().primary
    except (ConfigError, AttributeError, TypeError, ValueError, KeyError):
        return None


def collect(paths) -> Collection:
    """Read every result.json (and sweep plan) under ``paths`` into a `Collection`."""
    results, plans = find_files(paths)
    rows, rank_patterns, references, seen_refs = [], {}, [], set()
    for path in results:
        try:
            record = json.loads(path.read_bytes())
            if not isinstance(record, dict):
                raise ValueError(f"top level is {type(record).__name__}, not an object")
        except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            rows.append(_problem_row(path.parent, "corrupt", f"{type(err).__name__}: {err}"))
            continue
        problem = shape_problem(record)
        if problem is None:
            try:
                row = trial_row(record, path)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as err:  # any other shape surprise
                problem = f"malformed result.json: {type(err).__name__}: {err}"
        if problem is not None:
            rows.append(_problem_row(path.parent, "corrupt", problem))
            continue
        summary = record.get("method_summary") or {}
        if isinstance(summary, dict) and summary.get("rank_pattern"):
            rank_patterns[len(rows)] = summary
        ref = (record.get("config") or {}).get("reference") if isinstance(record.get("config"), dict) else None
        if isinstance(ref, dict) and ref.get("scores"):
            key = json.dumps(ref, sort_keys=True)
            if key not in seen_refs:
                seen_refs.add(key)
                references.append(ref)
        rows.append(row)
    found = {os.path.abspath(p.parent) for p in results} if plans else set()
    for plan_path in plans:
        try:
            plan = json.loads(plan_path.read_bytes())
            planned = plan.get("trials", []) if isinstance(plan, dict) else None
            if not isinstance(planned, list) or not all(isinstance(t, dict) and isinstance(t.get("subdir"), str) for t in planned):
                raise ValueError("not an object with a list of trials, each with a 'subdir'")
        except (OSError, ValueError) as err:
            rows.append(_problem_row(plan_path, "corrupt", f"unreadable sweep plan: {err}"))
            continue
        for trial in planned:
            run_dir = plan_path.parent / trial["subdir"]
            if os.path.abspath(run_dir) not in found:
                reason = "no result.json; planned as: " + " ".join(map(str, trial.get("overrides") or []))
                rows.append({**_planned_row(trial, run_dir), **_problem_row(run_dir, "missing", reason), "study": plan.get("study")})
    trials = pd.DataFrame(rows)
    for col in ("status", "reason", "study", "task", "method", "seed", "metric", "val", "test", "at_chance", "adapter_params",
                "adapter_params_final", "trainable_params", "lr", "written_at", "git_sha", "git_dirty", "git_commits", "run_dir"):
        if col not in trials:
            trials[col] = None
    return Collection(trials, rank_patterns, references, [str(p) for p in paths])
