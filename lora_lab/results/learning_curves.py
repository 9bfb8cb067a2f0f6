"""Learning curves of the study page: training loss and the validation metric against optimizer steps.

One row of panels per task (training loss | validation primary metric x100), one line per table row (its
display label, the table's marker and colour), drawn from the runs behind the row's cell: its selected
setting, every seed. Sources: the validation points of ``result.json``'s ``curve`` (one per evaluation,
the run's primary metric) and the ``train/loss`` rows of ``<run>/logs/metrics.csv`` (the CSV logger's,
every ``trainer.log_every_n_steps``). A step enters a line only where every seed of the cell has it, so
the mean is never over a changing set of runs; the band is ``mean ± sample std`` (ddof 1) over seeds,
drawn only with at least `MIN_SEEDS` seeds, as in the table. Saved as ``learning_curves.png`` / ``.pdf``
beside the other figures, its caption added to ``captions.json``; a task whose runs logged neither curve
is left out and named in the caption. A table of more than `MAX_ROWS` rows (e.g. a rank sweep) gets no
learning curves: that many lines in one panel cannot be told apart.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from lora_lab.results.aggregate import Aggregate, _keys
from lora_lab.results.figures import _figure, _legend, _save, styles
from lora_lab.results.names import metric_name, task_name
from lora_lab.results.table_model import MIN_SEEDS, Table

NAME = "learning_curves"
MAX_ROWS = 12  # more lines than this in one panel are unreadable: the figure is left out


def metric_points(run_dir: Path) -> dict[int, float]:
    """``{step: primary validation metric}`` from the run's ``result.json`` curve."""
    try:
        record = json.loads((Path(run_dir) / "result.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return record_metric_points(record)


def record_metric_points(record: dict) -> dict[int, float]:
    """``{step: primary validation metric}`` of a read ``result.json`` (finite values only)."""
    primary = record.get("primary_metric")
    out = {}
    for point in record.get("curve") or []:
        value = point.get(primary) if isinstance(point, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value) and isinstance(point.get("step"), int):
            out[point["step"]] = float(value)
    return out


def loss_points(run_dir: Path) -> dict[int, float]:
    """``{step: train/loss}`` from ``logs/metrics.csv`` (the last row per step: a resumed run logs again)."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    out = {}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    step, value = int(float(row.get("step") or "nan")), float(row.get("train/loss") or "nan")
                except ValueError:
                    continue
                if math.isfinite(value):
                    out[step] = value
    except OSError:
        return {}
    return out


def mean_and_spread(series: list[dict[int, float]]) -> tuple[list[int], np.ndarray, np.ndarray | None]:
    """(steps every series has, their mean, the sample std or None below `MIN_SEEDS` series)."""
    if not series or not all(series):
        return [], np.array([]), None
    steps = sorted(set.intersection(*(set(s) for s in series)))
    values = np.array([[s[step] for step in steps] for s in series], dtype=float)
    spread = values.std(axis=0, ddof=1) if len(series) >= MIN_SEEDS else None
    return steps, values.mean(axis=0), spread


def curve_lines(agg: Aggregate, table: Table) -> dict[str, dict[str, dict]]:
    """``{task: {row label: {"loss": (steps, mean, std), "metric": (steps, mean x100, std x100), "n": seeds}}}``."""
    if agg.chosen.empty:
        return {}
    labels = {tuple(r["keys"]): r["label"] for r in table.rows if not r["reference"]}
    out: dict[str, dict[str, dict]] = {}
    groups: dict[tuple, list[str]] = {}
    for key, run_dir in zip(_keys(agg.chosen[agg.row_keys + ["task"]]), agg.chosen["run_dir"]):
        groups.setdefault(key, []).append(run_dir)
    for key, run_dirs in groups.items():
        label = labels.get(tuple(key[:-1]))
        if label is None:
            continue
        loss = mean_and_spread([loss_points(d) for d in run_dirs])
        steps, mean, std = mean_and_spread([metric_points(d) for d in run_dirs])
        metric = (steps, 100 * mean, None if std is None else 100 * std)
        if loss[0] or steps:
            out.setdefault(key[-1], {})[label] = {"loss": loss, "metric": metric, "n": len(run_dirs)}
    return out


def _band(ax, line: tuple, marker: str, color: str) -> None:
    steps, mean, std = line
    if not steps:
        return
    ax.plot(steps, mean, color=color, lw=1.0, marker=marker, ms=3, markevery=max(1, len(steps) // 6))
    if std is not None:
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.18, lw=0)


def learning_curves(agg: Aggregate, table: Table, out_dir: Path) -> tuple[list[Path], str]:
    """Draw the figure (PNG + PDF) into ``out_dir``; returns (paths, caption). Tables of more than
    `MAX_ROWS` rows get none (nor are their runs' files read)."""
    if sum(not r["reference"] for r in table.rows) > MAX_ROWS:
        return [], ""
    lines = curve_lines(agg, table)
    tasks = [t for t in table.tasks if t in lines]
    if not tasks:
        return [], ""
    style = styles(table)
    fig, axes = _figure(2 * len(tasks), 2)
    empty = []  # panels with no line are hidden (never drawn empty) and named in the caption
    for i, task in enumerate(tasks):
        loss_ax, metric_ax = axes[2 * i], axes[2 * i + 1]
        for label, curves in lines[task].items():
            marker, color = style[label]
            _band(loss_ax, curves["loss"], marker, color)
            _band(metric_ax, curves["metric"], marker, color)
        info = table.task_info.get(task, {})
        for ax, what, kind in ((loss_ax, "training loss", "loss"), (metric_ax, f"val {metric_name(info.get('metric'))} ×100", "metric")):
            if not any(curves[kind][0] for curves in lines[task].values()):
                ax.set_visible(False)
                empty.append(f"{task_name(task)} {what}")
                continue
            ax.set_title(f"{task_name(task)}: {what}", fontsize=8)
            ax.set_xlabel("optimizer step", fontsize=7)
            ax.grid(alpha=0.3, lw=0.5)
    _legend(fig, style, [label for label in style if any(label in lines[t] for t in tasks)])
    missing = [task_name(t) for t in table.tasks if t not in lines]
    text = ("Learning curves per task: training loss (logs/metrics.csv) and the validation primary metric (result.json's curve) "
            "against optimizer steps, for the runs of each table cell at its selected setting; line: mean over seeds at the steps every "
            f"seed logged; band: ±1 sample standard deviation (only with at least {MIN_SEEDS} seeds)."
            + (f" No curves logged: {', '.join(missing)}." if missing else "")
            + (f" Not logged, so not drawn: {', '.join(empty)}." if empty else ""))
    return _save(fig, Path(out_dir), NAME), text


def add_learning_curves(agg: Aggregate, table: Table, out_dir) -> list[Path]:
    """`learning_curves` into ``out_dir`` with its caption merged into ``captions.json``."""
    paths, text = learning_curves(agg, table, Path(out_dir))
    if paths:
        captions_path = Path(out_dir) / "captions.json"
        captions = json.loads(captions_path.read_text()) if captions_path.is_file() else {}
        captions[NAME] = text
        captions_path.write_text(json.dumps(captions, indent=1, ensure_ascii=False))
    return paths
