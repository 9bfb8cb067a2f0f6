"""Learning curves per method: training loss and the validation metric against optimizer steps,
mean and spread (sample standard deviation, ``n - 1``) over the seeds of each group of runs.

Sources: the training loss from ``<run>/logs/metrics.csv`` (the CSV logger's ``train/loss`` rows,
logged every ``trainer.log_every_n_steps``), the validation metric from ``result.json``'s ``curve``
(one point per evaluation, the run's ``primary_metric``). A group is the run label without its seed
(method, init, rank); a step enters a group's mean only where every seed of the group has it
(``n`` column), so the mean is never taken over a changing set of runs silently.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


def loss_points(run_dir: Path) -> dict[int, float]:
    """``{step: train/loss}`` from the run's metrics.csv (empty without one)."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return {}
    out = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            value = row.get("train/loss")
            if value not in (None, "") and row.get("step") not in (None, ""):
                out[int(float(row["step"]))] = float(value)
    return out


def metric_points(record: dict) -> dict[int, float]:
    key = record.get("primary_metric")
    return {int(p["step"]): float(p[key]) for p in record.get("curve") or [] if key in p and p.get(key) is not None}


def mean_and_spread(series: list[dict[int, float]]) -> list[dict]:
    """``[{step, mean, std, n}]`` at the steps every series has (std: NaN for one series)."""
    if not series:
        return []
    common = sorted(set.intersection(*(set(s) for s in series)))
    rows = []
    for step in common:
        values = [s[step] for s in series]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
        rows.append({"step": step, "mean": mean, "std": std, "n": len(values)})
    return rows
