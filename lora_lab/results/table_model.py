"""The paper table as data: its `Cell` (mean, spread, n, marks and rank of one method on one task),
`Column` and `Table`, the marks a cell can carry, and how row-key values are shown. Built by
`lora_lab.results.tables.build_table`; rendered as Markdown / CSV (`tables`), LaTeX (`latex`), HTML
(`html`) and read by the figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lora_lab.results.stats import Comparisons

DAGGER, STAR, UP, DOWN = "†", "*", "↑", "↓"
ALLOCATED = "(allocated)"  # a #Params cell showing the allocation because the trained count is unknown
SPREADS = ("std", "ci")
MIN_SEEDS = 3  # fewer seeds: no ± (neither std nor interval), the cell shows its n
AT_CHANCE = "(at chance)"  # header mark of a column where every run stayed at chance


def fmt_key(v) -> str:
    """A row-key value as shown: floats at 4 significant digits (an Optuna-sampled ``0.17835460015641597``
    reads ``0.1784``; table.csv and result.json keep the exact value)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def exact_key(v) -> str:
    """A row-key value at full precision (table.csv)."""
    return repr(v) if isinstance(v, float) and not math.isnan(v) and not v.is_integer() else fmt_key(v)


@dataclass
class Cell:
    mean: float | None
    std: float | None = None
    n: int = 0
    n_chance: int = 0
    n_unfinished: int = 0
    setting: str = ""
    ci: tuple[float, float] | None = None  # 95 % t-interval of the mean over seeds (n >= MIN_SEEDS), clipped to the metric's range
    verdict: str | None = None  # "better" / "worse" than the baseline (Holm-adjusted)
    comparison: object = None  # `lora_lab.results.stats.Comparison` or None
    rank: int | None = None  # 1 = best of its column (bold), 2 = second (underlined)

    def parts(self, usual_n: int, pm: str = " ± ", spread: str = "std") -> tuple[str, str]:
        """(the mean as shown, everything after it): emphasis applies to the first part only."""
        if self.mean is None:
            return "–", STAR if self.n_unfinished else ""
        tail = ""
        if self.n >= MIN_SEEDS and spread == "ci" and self.ci:
            tail += f" [{100 * self.ci[0]:.2f}, {100 * self.ci[1]:.2f}]"
        elif self.n >= MIN_SEEDS and spread == "std" and self.std is not None and not math.isnan(self.std):
            tail += f"{pm}{100 * self.std:.2f}"
        if self.n and (self.n != usual_n or self.n < MIN_SEEDS):
            tail += f" (n={self.n})"
        tail += (DAGGER if self.n_chance else "") + (STAR if self.n_unfinished else "")
        tail += {"better": UP, "worse": DOWN}.get(self.verdict, "")
        return f"{100 * self.mean:.2f}", tail

    def text(self, usual_n: int, pm: str = " ± ", spread: str = "std") -> str:
        return "".join(self.parts(usual_n, pm, spread))


@dataclass
class Column:
    id: str  # "method", a key name, "params", "lr", a task, "avg" or a cost column
    header: str
    kind: str  # "key", "info", "task", "avg", "cost"
    group: str = ""  # the header above it (LaTeX): the task's display name
    task: str | None = None  # a task or cost column: its task column
    cost: str | None = None  # a cost column: which cost (`COST_COLUMNS`)
    at_chance: bool = False  # a task column where every run stayed at chance (header marked, nothing ranked)


@dataclass
class Table:
    """Display-ready rows: key columns, params, one `Cell` per task, average, costs."""

    key_names: list[str]
    tasks: list[str]
    rows: list[dict]  # {"keys", "label", "params", "lr", "trainable", "cells": {task: Cell}, "avg", "avg_rank", "costs", "reference"}
    usual_n: int
    notes: list[str]
    columns: list[Column] = field(default_factory=list)
    task_info: dict = field(default_factory=dict)
    comparisons: Comparisons | None = None
    spread: str = "std"
    n_examples: dict = field(default_factory=dict)  # task -> evaluation examples per run (median)
    cost_kind: str = "cpu"
    chance_columns: list = field(default_factory=list)  # task columns where every run stayed at chance
    avg_rule: str = ""  # why Avg is (not) shown
    backbones: list = field(default_factory=list)  # "<short_name> with <pooling> pooling" of the runs
    cost: bool = False  # the study declared its timings comparable (--cost): cost columns and the Pareto figure
