"""Render an `Aggregate` as the paper table: Markdown, LaTeX (booktabs tabular) and CSV.

Layout (LoRA / AdaLoRA paper style): one row per method (+ the knobs that vary), a ``#Params``
column (adapter parameters, heads excluded, as the papers count them; for AdaLoRA the parameters of
the final rank pattern, as its paper counts a budget, or the ``r_init`` allocation marked ``(r_init)``
when the result files cannot give the final count; a note says so), ``lr`` (the learning rate the
cells used: chosen on validation where lr is a nuisance axis), one column per task, ``Avg`` (mean
over the task columns, only for rows with every task cell: blank "–" otherwise, never an average
over fewer tasks). Cells show ``mean ± std`` x 100 over seeds at the best nuisance setting; an
empty cell is "–"; markers: ``†`` some runs of the cell never left chance level, ``*`` the cell
has failed / cancelled / unfinished / missing trials or runs without its score, ``(n=k)`` fewer seeds than
the table's usual count. A row key a method lacks is "–". Notes under the table name each
column's split and metric, and the code versions when the runs come from several git SHAs or a
dirty tree. Published reference rows (from the experiment configs or ``--reference``) follow our
rows. The CSV holds the unscaled numbers at full precision plus n and the chosen setting, and the
exact shown and recorded (AdaLoRA: ``r_init``) parameter counts.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from lora_lab.results.aggregate import Aggregate, cell_index, display_name, table_rows

DAGGER, STAR = "†", "*"


def fmt_params(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    n = float(n)
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return f"{n:.0f}"


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def fmt_key(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass
class Cell:
    mean: float | None
    std: float | None = None
    n: int = 0
    n_chance: int = 0
    n_unfinished: int = 0
    setting: str = ""

    def text(self, usual_n: int, pm: str = " ± ") -> str:
        if self.mean is None:
            return "–" + (STAR if self.n_unfinished else "")
        out = f"{100 * self.mean:.2f}"
        if self.std is not None and not math.isnan(self.std):
            out += f"{pm}{100 * self.std:.2f}"
        if self.n and self.n != usual_n:
            out += f" (n={self.n})"
        return out + (DAGGER if self.n_chance else "") + (STAR if self.n_unfinished else "")


@dataclass
class Table:
    """Display-ready rows: key columns, params, one `Cell` per task, average."""

    key_names: list[str]
    tasks: list[str]
    rows: list[dict]  # {"keys": [...], "params": str, "lr": str, "trainable": float, "cells": {task: Cell}, "avg": float|None, "reference": bool}
    usual_n: int
    notes: list[str]


def build_table(agg: Aggregate, references: list[dict] = ()) -> Table:
    index = cell_index(agg)
    ns = [int(n) for n in agg.cells["n"] if n] if not agg.cells.empty else []
    usual_n = max(set(ns), key=ns.count) if ns else 0
    averageable = not split_tasks(agg)  # one column per task: otherwise Avg would count a task twice
    rows = []
    for keys in table_rows(agg):
        row_cells, params, params_init, trainable, lrs = {}, None, None, None, set()
        for task in agg.tasks:
            rec = index.get(tuple(keys) + (task,))
            if rec is None:
                row_cells[task] = Cell(None)
                continue
            n = int(rec["n"])
            std = _num(rec["std"]) if n > 1 else None
            row_cells[task] = Cell(_num(rec["mean"]) if n else None, std, n, int(rec["n_chance"]), int(rec["n_unfinished"]), rec.get("setting") or "")
            params = _num(rec["params"]) if params is None else params
            params_init = _num(rec.get("params_init")) if params_init is None else params_init
            trainable = _num(rec["trainable"]) if trainable is None else trainable
            if n and _num(rec.get("lr")) is not None:
                lrs.add(float(rec["lr"]))
        means = [c.mean for c in row_cells.values()]
        avg = sum(means) / len(means) if averageable and means and all(m is not None for m in means) else None
        lr = f"{lrs.pop():g}" if len(lrs) == 1 else ("per task" if lrs else "–")
        shown = fmt_params(params) if params is not None or params_init is None else fmt_params(params_init) + " (r_init)"
        rows.append({"keys": list(keys), "params": shown, "params_n": params, "params_init": params_init, "lr": lr, "trainable": trainable,
                     "cells": row_cells, "avg": avg, "reference": False})
    for ref in references:
        scores = {t: ref["scores"].get(agg.task_info.get(t, {}).get("task", t)) for t in agg.tasks}
        if not any(v is not None for v in scores.values()):
            continue
        ref_cells = {t: Cell(None if v is None else float(v) / 100.0) for t, v in scores.items()}
        means = [c.mean for c in ref_cells.values()]
        avg = sum(means) / len(means) if all(m is not None for m in means) else None
        label = f"{ref.get('label', 'published')} [published]"
        rows.append({"keys": [label] + [""] * (len(agg.row_keys) - 1), "params": str(ref.get("params", "–")), "params_n": None, "params_init": None,
                     "lr": str(ref.get("lr", "–")), "trainable": None, "cells": ref_cells, "avg": avg, "reference": True})
    return Table([display_name(k) for k in agg.row_keys], list(agg.tasks), rows, usual_n, notes(agg, usual_n))


def split_tasks(agg: Aggregate) -> dict[str, list[str]]:
    """{task: [its columns]} for tasks whose runs report different primary metrics."""
    by_task: dict[str, list[str]] = {}
    for t in agg.tasks:
        by_task.setdefault(agg.task_info[t].get("task", t), []).append(t)
    return {task: cols for task, cols in by_task.items() if len(cols) > 1}


def notes(agg: Aggregate, usual_n: int) -> list[str]:
    out = []
    info = agg.task_info
    parts = [f"{t} = {info[t]['split']} {info[t]['metric']}" if info[t]["split"] else f"{t} = no finished run" for t in agg.tasks]
    out.append("Scores x100: " + "; ".join(parts) + ". Model selection (best evaluation, nuisance setting) on validation only.")
    on_val = [t for t in agg.tasks if info[t]["split"] == "val"]
    if on_val:
        out.append(f"{', '.join(on_val)}: no labelled test split, so the score is the validation (GLUE: dev) value at the evaluation "
                   "and setting chosen on that same split -- the LoRA/AdaLoRA papers' convention, optimistic as an estimate of held-out accuracy.")
    for task, cols in split_tasks(agg).items():
        out.append(f"{task}: the runs report different primary metrics ({', '.join(info[c]['metric'] for c in cols)}), one column each, "
                   "never averaged together; Avg left blank.")
    out.append(f"Cells: mean ± sample std over seeds (n={usual_n} unless marked); #Params = adapter parameters (heads excluded).")
    if agg.setting_keys:
        tried = int(agg.cells["n_settings"].max()) if not agg.cells.empty else 0
        if tried > 1:
            out.append(f"Best over {', '.join(display_name(k) for k in agg.setting_keys)} per cell (up to {tried} settings), chosen by validation mean; lr = the chosen learning rate, every setting in table.csv.")
    if not agg.cells.empty and agg.cells["n_chance"].sum():
        out.append(f"{DAGGER} some runs of the cell never left the majority-class / chance / untrained-model level on validation (listed below).")
    if not agg.cells.empty and agg.cells["n_unfinished"].sum():
        out.append(f"{STAR} the cell has failed, cancelled, unfinished or missing trials, or runs without its score, never averaged in (listed below).")
    if not agg.cells.empty and ((agg.cells[agg.row_keys[0]] == "adalora") & (agg.cells["n"] > 0)).any():
        out.append("AdaLoRA #Params = parameters of the final rank pattern, sum of r_i (in_i + out_i + 1) over the adapted matrices "
                   "(the r_init allocation: params_init in table.csv, adapter_params in trials.csv).")
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


def _header(table: Table) -> list[str]:
    return table.key_names + ["#Params", "lr"] + table.tasks + ["Avg"]


def _row_values(table: Table, row: dict, pm: str) -> list[str]:
    avg = "–" if row["avg"] is None else f"{100 * row['avg']:.2f}"
    return [fmt_key(k) for k in row["keys"]] + [row["params"], row["lr"]] + [row["cells"][t].text(table.usual_n, pm) for t in table.tasks] + [avg]


def to_markdown(table: Table) -> str:
    header = _header(table)
    n_keys = len(table.key_names)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * n_keys + ["---:"] * (len(header) - n_keys)) + "|"]
    for row in table.rows:
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in _row_values(table, row, " ± ")) + " |")
    return "\n".join(lines)


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    return out.replace(DAGGER, r"$^\dagger$").replace("–", "--").replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    header = _header(table)
    spec = "l" * len(table.key_names) + "r" * (len(header) - len(table.key_names))
    lines = [r"% requires \usepackage{booktabs}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    in_refs = False
    for row in table.rows:
        if row["reference"] and not in_refs:
            lines.append(r"\midrule")
            in_refs = True
        values = [latex_escape(v).replace(STAR, r"$^{*}$") for v in _row_values(table, row, " ± ")]
        lines.append(" & ".join(values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = table.key_names + ["params", "adapter_params", "params_init", "lr", "trainable_params", "reference"]
    for t in table.tasks:
        cols += [f"{t}_mean", f"{t}_std", f"{t}_n", f"{t}_at_chance", f"{t}_unfinished", f"{t}_setting"]
    writer.writerow(cols + ["avg"])
    for row in table.rows:
        exact = ["" if row[k] is None else int(row[k]) for k in ("params_n", "params_init", "trainable")]
        values = [fmt_key(k) for k in row["keys"]] + [row["params"], exact[0], exact[1], row["lr"], exact[2], int(row["reference"])]
        for t in table.tasks:
            c = row["cells"][t]
            values += ["" if c.mean is None else repr(float(c.mean)), "" if c.std is None else repr(float(c.std)), c.n, c.n_chance, c.n_unfinished, c.setting]
        writer.writerow(values + ["" if row["avg"] is None else repr(float(row["avg"]))])
    return buf.getvalue()
