"""Build the paper table from an `Aggregate` and render it as Markdown and CSV (the table as data:
`lora_lab.results.table_model`; the notes under it: `lora_lab.results.table_notes`; LaTeX: `lora_lab.results.latex`).

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

from lora_lab.errors import ConfigError
from lora_lab.results.aggregate import Aggregate, cell_index, display_name, table_rows
from lora_lab.results.costs import COST_COLUMNS, COST_HEADERS, cell_costs, fmt_cost, fmt_params
from lora_lab.results.metric_ranges import clip_interval
from lora_lab.results.names import LABEL_KEYS, metric_name, ordered_rows, row_label, task_name
from lora_lab.results.stats import cell_runs, compare, seed_interval
from lora_lab.results.table_model import ALLOCATED, AT_CHANCE, MIN_SEEDS, SPREADS, Cell, Column, Table, exact_key, fmt_key
from lora_lab.results.table_notes import backbones, cost_kind, notes, split_tasks


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


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
        return False, (f"No Avg column: the columns report different metrics ({', '.join(sorted(metric_name(str(m)) for m in metrics))}), which a plain mean "
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
                  _n_examples(agg), cost_kind(agg), chance_columns, avg_note, backbones(agg))
    table.cost = cost
    table.notes = notes(agg, table)
    return table


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
