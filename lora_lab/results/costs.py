"""Cost columns of the paper table (``--cost``), per task cell, from the runs behind it (its selected setting).

- ``trainable``: trainable parameters (adapter + head), the median over the row's runs;
- ``time``: wall seconds per 1000 optimizer steps, ``1000 * wall_time_s / optimizer_steps`` of each run
  (the whole trial: data loading, evaluation and saving included), median over the row's runs;
- ``memory``: peak memory in MiB (GPU max allocated when the runs recorded it, else the process's
  max resident set size), median;
- ``size``: bytes of the saved adapter directory (``adapter/``: safetensors + JSON), median.

Medians over the cell's runs at its selected setting (never over tasks or learning rates), so one slow
outlier does not move the column; the Pareto figure (`lora_lab.results.figures`) plots the same numbers.
Shown only with ``--cost``: the study's declaration that its timings are comparable (one otherwise idle
machine, one configuration of threads), which a CPU study sharing its cores cannot make.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lora_lab.results.aggregate import Aggregate, _keys

COST_COLUMNS = ("trainable", "time", "memory", "size")
COST_HEADERS = {"trainable": "#Trainable", "time": "s / 1k steps", "memory": "Peak MiB", "size": "Adapter KiB"}


def adapter_bytes(run_dir) -> int | None:
    """Total size of the files under ``run_dir/adapter`` (None when the run saved no adapter)."""
    root = Path(run_dir) / "adapter"
    if not root.is_dir():
        return None
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def fmt_params(n) -> str:
    """1234 -> 1.2K, 2.5e6 -> 2.50M; "–" when unknown."""
    if n is None or (isinstance(n, float) and n != n):
        return "–"
    n = float(n)
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return f"{n:.0f}"


def _median(values) -> float | None:
    values = [float(v) for v in values if v is not None and v == v]
    return float(np.median(values)) if values else None


def cell_costs(agg: Aggregate) -> dict[tuple, dict]:
    """{(row keys..., task): {"trainable", "time", "memory", "size"}}: medians over the cell's runs at its
    selected setting (``agg.chosen``); None where the runs lack the value. The table's cost columns and
    the Pareto figure both read these."""
    runs = agg.chosen
    if runs.empty:
        return {}
    grouped: dict[tuple, list[dict]] = {}
    for key, rec in zip(_keys(runs[agg.row_keys + ["task"]]), runs.to_dict("records")):
        grouped.setdefault(key, []).append(rec)
    out = {}
    for key, recs in grouped.items():
        per_1k = [1000 * r["wall_time_s"] / r["steps"] for r in recs if r.get("wall_time_s") and r.get("steps")]
        out[key] = {
            "trainable": _median(r.get("trainable_params") for r in recs),
            "time": _median(per_1k),
            "memory": _median(r.get("peak_memory_mb") or None for r in recs),
            "size": _median(adapter_bytes(r["run_dir"]) for r in recs),
        }
    return out


def fmt_cost(name: str, value) -> str:
    if value is None:
        return "–"
    if name == "trainable":
        return fmt_params(value)
    if name == "size":
        return f"{value / 1024:.1f}"
    return f"{value:.0f}"
