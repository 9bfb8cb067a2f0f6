"""Render an `Aggregate` as the paper table: Markdown and CSV (LaTeX: `lora_lab.results.latex`).

Layout (the LoRA-family papers' style): one row per method (+ the knobs that vary), labelled with its
display name (`lora_lab.results.names`, from the method registry; the init / rsLoRA keys
are folded into the label) in the papers' order, the baseline (LoRA) first; a ``#Params`` column
(adapter parameters, heads excluded, as the papers count them: the adapter as trained, which for a
method that prunes in training is what it keeps, as such papers count a budget; the allocation marked
``(allocated)`` when the result files cannot give the trained count; a note says so), ``lr`` (the learning rate the
cells used: chosen on validation where lr is a nuisance axis), one column per task, ``Avg`` (mean
over the task columns, only for rows with every task cell: blank "–" otherwise, never an average
over fewer tasks), and with ``cost=True`` the cost columns of `lora_lab.results.costs`. ``hide``
drops optional columns (key columns other than the method, ``params``, ``lr``, ``avg``, cost columns).
Cells show ``mean ± spread`` x 100 over seeds at the best nuisance setting (spread: the sample std,
or with ``spread="ci"`` the half-width of the 95 % t-interval); an empty cell is "–"; markers: ``†``
some runs of the cell never left chance level, ``*`` the cell has failed / cancelled / unfinished /
missing trials or runs without its score, ``(n=k)`` fewer seeds than the table's usual count,
``↑`` / ``↓`` significantly better / worse than the baseline row (`lora_lab.results.stats`). The
best mean per score column is bold and the second best underlined, compared as shown (2 decimals,
so equal shown values share the mark; empty cells and published rows are not ranked; a column with
fewer than two values gets no mark). Notes under the table name each column's split and metric, the
meaning of every mark, and the code versions when the runs come from several git SHAs or a dirty
tree. Published reference rows (from the experiment configs or ``--reference``) follow our rows.
The CSV holds the unscaled numbers at full precision plus n, the 95 % interval, the rank mark, the
comparison with the baseline (difference, p-values, verdict), the chosen setting, and the exact
shown (trained) and recorded (allocated) parameter counts.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from lora_lab.errors import ConfigError
from lora_lab.results.aggregate import Aggregate, cell_index, display_name, table_rows
from lora_lab.results.costs import COST_COLUMNS, COST_HEADERS, cell_costs, fmt_cost, fmt_params  # noqa: F401 (fmt_params re-exported)
from lora_lab.results.metric_ranges import clip_interval
from lora_lab.results.names import LABEL_KEYS, metric_name, ordered_rows, row_label, task_name
from lora_lab.results.stats import ALPHA, Comparisons, cell_runs, compare, seed_interval

DAGGER, STAR, UP, DOWN = "†", "*", "↑", "↓"
ALLOCATED = "(allocated)"  # a #Params cell showing the allocation because the trained count is unknown
SPREADS = ("std", "ci")
INFO_COLUMNS = ("params", "lr", "avg")
MIN_SEEDS = 3  # fewer seeds: no ± (neither std nor interval), the cell shows its n
AT_CHANCE = "(at chance)"  # header mark of a column where every run stayed at chance


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


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


def _ranks(values: list[float | None]) -> list[int | None]:
    """1 for the best shown value(s), 2 for the next; None for the rest, missing values (also cells left
    out of the ranking, e.g. at chance), when fewer than two values exist, or when every value ties (a
    mark on all of them says nothing)."""
    shown = [None if v is None else round(100 * v, 2) for v in values]
    distinct = sorted({v for v in shown if v is not None}, reverse=True)
    if sum(v is not None for v in shown) < 2 or len(distinct) < 2:
        return [None] * len(values)
    best, second = distinct[0], distinct[1] if len(distinct) > 1 else None
    return [None if v is None else 1 if v == best else 2 if v == second else None for v in shown]


def avg_rule(agg: Aggregate) -> tuple[bool, str]:
    """(whether an Avg column is shown, the rule as a note): a plain mean needs at least two task columns of
    one metric (an accuracy and an MCC are not on one scale; a single column would only repeat itself)."""
    metrics = {agg.task_info[t]["metric"] for t in agg.tasks}
    if len(agg.tasks) < 2:
        return False, ""
    if len(metrics) > 1 or split_tasks(agg):
        return False, (f"No Avg column: the columns report different metrics ({', '.join(sorted(map(str, metrics)))}), which a plain mean "
                       "would put on one scale.")
    return True, f"Avg = plain mean over the {len(agg.tasks)} task columns (all {metric_name(metrics.pop())}), only for rows with every cell."


def table_columns(agg: Aggregate, cost: bool, hide=()) -> list[Column]:
    keys = [Column("method", "Method", "key")] + [Column(display_name(k), display_name(k), "key") for k in agg.row_keys if k not in LABEL_KEYS]
    cols = keys + [Column("params", "#Params", "info"), Column("lr", "lr", "info")]
    cols += [Column(t, metric_name(agg.task_info[t]["metric"]), "task", task_name(t), task=t) for t in agg.tasks]
    if avg_rule(agg)[0]:
        cols.append(Column("avg", "Avg", "avg"))
    if cost:  # per task: the cell's runs at its selected setting, the numbers of the Pareto figure
        cols += [Column(f"{t}_{c}", COST_HEADERS[c], "cost", task_name(t), task=t, cost=c) for t in agg.tasks for c in COST_COLUMNS]
    optional = list(dict.fromkeys([c.id for c in cols if c.kind in ("info", "key") and c.id != "method"] + ["avg"] + (list(COST_COLUMNS) if cost else [])))
    bad = [h for h in hide if h not in optional]
    if bad:
        raise ConfigError("--hide", f"unknown column {bad[0]!r}; allowed: {', '.join(optional)}")
    return [c for c in cols if c.id not in set(hide) and c.cost not in set(hide)]


def _n_examples(agg: Aggregate) -> dict[str, int]:
    out = {}
    for task in agg.tasks:
        split = agg.task_info[task].get("split")
        col = {"test": "n_test", "val": "n_val"}.get(split)
        runs = agg.chosen[agg.chosen["task"] == task] if not agg.chosen.empty else agg.chosen
        if col and col in runs and runs[col].notna().any():
            out[task] = int(runs[col].dropna().median())
    return out


def build_table(agg: Aggregate, references: list[dict] = (), baseline: str | None = None, cost: bool = False, hide=(), spread: str = "std",
                stats: bool = True) -> Table:
    if spread not in SPREADS:
        raise ConfigError("--pm", f"unknown spread {spread!r}; allowed: {', '.join(SPREADS)}")
    columns = table_columns(agg, cost, hide)
    index = cell_index(agg)
    ns = [int(n) for n in agg.cells["n"] if n] if not agg.cells.empty else []
    usual_n = max(set(ns), key=ns.count) if ns else 0
    averageable, avg_note = avg_rule(agg)
    comparisons = compare(agg, baseline) if stats and not agg.cells.empty else None
    runs = cell_runs(agg)
    costs = cell_costs(agg) if cost else {}
    rows = []
    for keys in ordered_rows(agg.row_keys, table_rows(agg)):
        row_cells, params, params_init, trainable, lrs = {}, None, None, None, set()
        for task in agg.tasks:
            rec = index.get(tuple(keys) + (task,))
            if rec is None:
                row_cells[task] = Cell(None)
                continue
            n = int(rec["n"])
            std = _num(rec["std"]) if n > 1 else None
            scores = [score for score, _ in runs.get(tuple(keys) + (task,), {}).values()]
            comparison = comparisons.by_cell.get(tuple(keys) + (task,)) if comparisons else None
            ci = clip_interval(seed_interval(scores), agg.task_info[task]["metric"]) if n >= MIN_SEEDS else None
            row_cells[task] = Cell(_num(rec["mean"]) if n else None, std, n, int(rec["n_chance"]), int(rec["n_unfinished"]), rec.get("setting") or "",
                                   ci, comparison.verdict if comparison else None, comparison)
            params = _num(rec["params"]) if params is None else params
            params_init = _num(rec.get("params_init")) if params_init is None else params_init
            trainable = _num(rec["trainable"]) if trainable is None else trainable
            if n and _num(rec.get("lr")) is not None:
                lrs.add(float(rec["lr"]))
        means = [c.mean for c in row_cells.values()]
        avg = sum(means) / len(means) if averageable and means and all(m is not None for m in means) else None
        lr = f"{lrs.pop():g}" if len(lrs) == 1 else ("per task" if lrs else "–")
        shown = fmt_params(params) if params is not None or params_init is None else fmt_params(params_init) + " " + ALLOCATED
        rows.append({"keys": list(keys), "label": row_label(agg.row_keys, keys), "params": shown, "params_n": params, "params_init": params_init, "lr": lr,
                     "trainable": trainable, "cells": row_cells, "avg": avg, "avg_rank": None, "reference": False,
                     "costs": {f"{t}_{c}": costs.get(tuple(keys) + (t,), {}).get(c) for t in agg.tasks for c in COST_COLUMNS}})
    ours = [r for r in rows if not r["reference"]]
    chance_columns = []
    for task in agg.tasks:
        cells = [r["cells"][task] for r in ours]
        if any(c.mean is not None for c in cells) and all(c.mean is None or c.n_chance == c.n for c in cells):
            chance_columns.append(task)
        # a cell whose every run stayed at chance is never ranked (nor is any cell of a column at chance)
        for row, rank in zip(ours, _ranks([None if c.mean is None or c.n_chance == c.n else c.mean for c in cells])):
            row["cells"][task].rank = rank
    for row, rank in zip(ours, _ranks([r["avg"] for r in ours])):
        row["avg_rank"] = rank
    for ref in references:
        scores = {t: ref["scores"].get(agg.task_info.get(t, {}).get("task", t)) for t in agg.tasks}
        if not any(v is not None for v in scores.values()):
            continue
        ref_cells = {t: Cell(None if v is None else float(v) / 100.0) for t, v in scores.items()}
        means = [c.mean for c in ref_cells.values()]
        avg = sum(means) / len(means) if all(m is not None for m in means) else None
        label = f"{ref.get('label', 'published')} [published]"
        rows.append({"keys": [label] + [""] * (len(agg.row_keys) - 1), "label": label, "params": str(ref.get("params", "–")), "params_n": None,
                     "params_init": None, "lr": str(ref.get("lr", "–")), "trainable": None, "cells": ref_cells, "avg": avg, "avg_rank": None, "costs": {},
                     "reference": True})
    for col in columns:
        col.at_chance = col.kind == "task" and col.id in chance_columns
    table = Table([display_name(k) for k in agg.row_keys], list(agg.tasks), rows, usual_n, [], columns, dict(agg.task_info), comparisons, spread,
                  _n_examples(agg), _cost_kind(agg), chance_columns, avg_note, backbones(agg))
    table.cost = cost
    table.notes = notes(agg, table)
    return table


def backbones(agg: Aggregate) -> list[str]:
    """``<short_name> with <pooling> pooling`` of every backbone behind the table's cells; pooling ``cls_pooler`` for runs
    recorded before ``backbone.pooling`` existed (HF's class was the only head then)."""
    runs = agg.chosen
    if runs.empty or "cfg.backbone.short_name" not in runs:
        return []
    pooling = runs["cfg.backbone.pooling"] if "cfg.backbone.pooling" in runs else None
    pairs = zip(runs["cfg.backbone.short_name"], pooling if pooling is not None else ["cls_pooler"] * len(runs))
    return sorted({f"{name} with {p if isinstance(p, str) else 'cls_pooler'} pooling" for name, p in pairs if isinstance(name, str)})


def _cost_kind(agg: Aggregate) -> str:
    kinds = set(agg.chosen["peak_memory_kind"].dropna()) if "peak_memory_kind" in agg.chosen else set()
    return "cuda" if kinds == {"cuda"} else "cpu" if kinds <= {"cpu"} else "mixed"


def split_tasks(agg: Aggregate) -> dict[str, list[str]]:
    """{task: [its columns]} for tasks whose runs report different primary metrics."""
    by_task: dict[str, list[str]] = {}
    for t in agg.tasks:
        by_task.setdefault(agg.task_info[t].get("task", t), []).append(t)
    return {task: cols for task, cols in by_task.items() if len(cols) > 1}


def spread_text(table: Table) -> str:
    """What ``±`` (or the bracket) means in this table."""
    n = f"n={table.usual_n} seeds unless marked"
    few = f"; no spread for cells with fewer than {MIN_SEEDS} seeds, which show their n instead"
    if table.spread == "ci":
        return f"mean [95 % Student-t confidence interval of the cell's mean over seeds, clipped to the metric's range] ({n}){few}"
    return f"mean ± sample standard deviation over seeds ({n}){few}"


def significance_note(table: Table) -> str | None:
    comp = table.comparisons
    if comp is None or not comp.by_cell:
        return None
    if comp.n_tests == 0:
        return (f"No cell could be tested against {comp.baseline_label} (the baseline row): a test needs at least 2 seeds run by both cells "
                "and differences that are not identical on every seed.")
    return (f"{UP} / {DOWN}: significantly better / worse than {comp.baseline_label} (the baseline row) at alpha = {ALPHA}, Holm-corrected over the "
            f"{comp.n_tests} comparison(s) of this table; each cell's p is the larger of a paired t-test over seeds (paired by seed) and, where "
            "both cells saved per-example predictions, a paired bootstrap over the evaluation examples (2000 resamples). Unmarked cells are "
            "not distinguishable from the baseline at this level (p-values in table.csv).")


def notes(agg: Aggregate, table: Table) -> list[str]:
    out = []
    info = agg.task_info
    parts = [f"{t} = {info[t]['split']} {info[t]['metric']}" if info[t]["split"] else f"{t} = {info[t]['metric']} (no finished run)" for t in agg.tasks]
    out.append("Scores x100: " + "; ".join(parts) + ". Model selection (best evaluation, nuisance setting) on validation only.")
    on_val = [t for t in agg.tasks if info[t]["split"] == "val"]
    if on_val:
        out.append(f"{', '.join(on_val)}: no labelled test split, so the score is the validation (GLUE: dev) value at the evaluation "
                   "and setting chosen on that same split -- the LoRA-family papers' convention, optimistic as an estimate of held-out accuracy.")
    for task, cols in split_tasks(agg).items():
        out.append(f"{task}: the runs report different primary metrics ({', '.join(info[c]['metric'] for c in cols)}), one column each, "
                   "never averaged together; Avg left blank.")
    out.append(f"Cells: {spread_text(table)}; #Params = adapter parameters (heads excluded).")
    if table.spread == "std" and table.usual_n >= MIN_SEEDS:
        out.append("table.csv: ci_low / ci_high = the 95 % Student-t interval of the cell's mean over seeds (not of a difference), clipped to the "
                   f"metric's range; empty below {MIN_SEEDS} seeds. diff / p_* compare the cell with the baseline row.")
    if table.backbones:
        out.append(f"Backbone: {'; '.join(table.backbones)} (pooling = the vector the classifier reads; docs/data-and-models.md).")
    out.append("Bold: best mean of the column, underlined: second best, compared as shown (2 decimals): equal values share the mark; no mark "
               "when every ranked cell ties, in a column with fewer than two values, for cells whose runs all stayed at chance, or for published rows.")
    if table.chance_columns:
        out.append(f"{AT_CHANCE}: every run of the column stayed at chance level ({', '.join(task_name(t) for t in table.chance_columns)}): "
                   "nothing was learned, so nothing is ranked.")
    if table.avg_rule:
        out.append(table.avg_rule)
    sig = significance_note(table)
    if sig:
        out.append(sig)
    if agg.setting_keys:
        tried = int(agg.cells["n_settings"].max()) if not agg.cells.empty else 0
        if tried > 1:
            out.append(f"Best over {', '.join(display_name(k) for k in agg.setting_keys)} per cell (up to {tried} settings), chosen by validation mean; lr = the chosen learning rate, every setting in table.csv.")
    if not agg.cells.empty and agg.cells["n_chance"].sum():
        out.append(f"{DAGGER} some runs of the cell never left the majority-class / chance / untrained-model level on validation (listed below).")
    if not agg.cells.empty and agg.cells["n_unfinished"].sum():
        out.append(f"{STAR} the cell has failed, cancelled, unfinished or missing trials, or runs without its score, never averaged in (listed below).")
    ours = [r for r in table.rows if not r["reference"]]
    if any(r["params_n"] is not None and r["params_init"] is not None and r["params_n"] != r["params_init"] for r in ours):
        out.append("#Params = the adapter as trained: for a method that prunes in training, the parameters it keeps "
                   "(the allocation: params_init in table.csv, adapter_params in trials.csv).")
    if any(r["params_n"] is None and r["params_init"] is not None for r in ours):  # shown as the allocation
        out.append(f"{ALLOCATED}: the runs' result files do not give the trained adapter's parameter count (written before methods "
                   "reported it) and the method's count changes in training; the allocated count is shown.")
    if any(c.kind == "cost" for c in table.columns):
        memory = {"cuda": "GPU max allocated", "cpu": "process max RSS (CPU runs)", "mixed": "GPU max allocated or CPU max RSS (mixed runs)"}[table.cost_kind]
        out.append(f"Cost columns, per task: median over the cell's runs at its selected setting (the numbers of the Pareto figure); "
                   f"#Trainable = adapter + head parameters; s / 1k steps = whole-trial wall time per 1000 "
                   f"optimizer steps (evaluation included); Peak MiB = {memory}; Adapter KiB = size of the saved adapter directory. "
                   "Shown because the study declares its timings comparable (--cost).")
    out += code_version_notes(agg)
    return out


def code_version_notes(agg: Aggregate) -> list[str]:
    """A note when the averaged runs come from more than one git SHA or from a dirty tree."""
    runs = agg.chosen
    if runs.empty or "git_sha" not in runs:
        return []
    shas = sorted(runs["git_sha"].dropna().astype(str).unique())
    dirty = int(runs["git_dirty"].fillna(False).astype(bool).sum()) if "git_dirty" in runs else 0
    if len(shas) <= 1 and not dirty:
        return []
    text = f"Code versions: the averaged runs come from {len(shas)} git SHA(s) ({', '.join(s[:10] for s in shas)})"
    mixed = [key for key, group in runs.groupby(agg.row_keys + ["task"], dropna=False) if group["git_sha"].nunique() > 1]
    if len(shas) > 1:
        text += f"; {len(mixed)} cell(s) average runs of different SHAs" if mixed else "; no cell mixes SHAs"
    if dirty:
        text += f"; {dirty} run(s) from a dirty tree (uncommitted changes)"
    return [text + ". See trials.csv (git_sha, git_dirty)."]


def key_value(table: Table, row: dict, column: Column) -> str:
    if column.id == "method":
        return row["label"]
    return fmt_key(row["keys"][table.key_names.index(column.id)]) if not row["reference"] else ""


def cell_values(table: Table, row: dict, pm: str, emphasis) -> list[str]:
    """The row's shown values, in column order; ``emphasis(text, rank)`` decorates ranked means."""
    out = []
    for col in table.columns:
        if col.kind == "key":
            out.append(key_value(table, row, col))
        elif col.id == "params":
            out.append(row["params"])
        elif col.id == "lr":
            out.append(row["lr"])
        elif col.kind == "task":
            mean, tail = row["cells"][col.id].parts(table.usual_n, pm, table.spread)
            out.append(emphasis(mean, row["cells"][col.id].rank) + tail)
        elif col.kind == "avg":
            out.append("–" if row["avg"] is None else emphasis(f"{100 * row['avg']:.2f}", row["avg_rank"]))
        else:
            out.append(fmt_cost(col.cost, row["costs"].get(col.id)))
    return out


def _md_emphasis(text: str, rank: int | None) -> str:
    return f"**{text}**" if rank == 1 else f"<ins>{text}</ins>" if rank == 2 else text


def md_header(table: Table) -> list[str]:
    return [f"{c.group} ({c.header})" + (f" {AT_CHANCE}" if c.at_chance else "") if c.kind == "task" else f"{c.group} {c.header}" if c.kind == "cost"
            else c.header for c in table.columns]


def to_markdown(table: Table) -> str:
    header = md_header(table)
    n_keys = sum(c.kind == "key" for c in table.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * n_keys + ["---:"] * (len(header) - n_keys)) + "|"]
    for row in table.rows:
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in cell_values(table, row, " ± ", _md_emphasis)) + " |")
    return "\n".join(lines)


def _f(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))


def to_csv(table: Table) -> str:
    """Every shown column at full precision, plus n, interval, rank mark and comparison per task."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    shown = {c.id for c in table.columns}
    keys = [k for k in table.key_names if k == "method" or k in shown or k in ("init", "rslora")]
    cols = keys + ["label"] + (["params", "adapter_params", "params_init"] if "params" in shown else []) + (["lr"] if "lr" in shown else [])
    cols += ["trainable_params", "reference"]
    for t in table.tasks:
        cols += [f"{t}_{k}" for k in ("mean", "std", "n", "ci_low", "ci_high", "rank", "vs_baseline", "diff", "p_seed", "p_bootstrap", "p_holm",
                                       "at_chance", "unfinished", "setting")]
    cols += (["avg", "avg_rank"] if "avg" in shown else []) + [c.id for c in table.columns if c.kind == "cost"]
    writer.writerow(cols)
    for row in table.rows:
        exact = ["" if row[k] is None else int(row[k]) for k in ("params_n", "params_init", "trainable")]
        named = dict(zip(table.key_names, row["keys"]))
        values = [exact_key(named.get(k)) for k in keys] + [row["label"]]
        values += [row["params"], exact[0], exact[1]] if "params" in shown else []
        values += [row["lr"]] if "lr" in shown else []
        values += [exact[2], int(row["reference"])]
        for t in table.tasks:
            c = row["cells"][t]
            comp = c.comparison
            values += [_f(c.mean), _f(c.std), c.n, _f(c.ci[0]) if c.ci else "", _f(c.ci[1]) if c.ci else "", c.rank or "", c.verdict or "",
                       _f(comp.diff) if comp else "", _f(comp.p_seed) if comp else "", _f(comp.boot["p"]) if comp and comp.boot else "",
                       _f(comp.p_holm) if comp else "", c.n_chance, c.n_unfinished, c.setting]
        values += [_f(row["avg"]), row["avg_rank"] or ""] if "avg" in shown else []
        values += [_f(row["costs"].get(c.id)) for c in table.columns if c.kind == "cost"]
        writer.writerow(values)
    return buf.getvalue()
