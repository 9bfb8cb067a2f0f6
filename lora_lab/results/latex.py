r"""The paper table as a LaTeX ``table`` float (booktabs).

::

    % requires \usepackage{booktabs}
    \begin{table}[t]
    \centering\small
    \caption{...what, metric, split, n, what ± means, marks...}
    \label{tab:<study>}
    \begin{tabular}{ll rr rr r}
    \toprule
     &  &  &  & \multicolumn{1}{c}{CoLA} & \multicolumn{1}{c}{RTE} &  \\
    \cmidrule(lr){5-5} \cmidrule(lr){6-6}
    Method & #Params & lr & MCC & Acc & Avg \\
    \midrule
    LoRA & ... & \textbf{63.10} $\pm$ 1.20 & \underline{70.40} $\pm$ 2.10$^{\uparrow}$ ... \\
    \bottomrule
    \end{tabular}
    \end{table}

The header is grouped: each task's display name spans its metric column(s) (one per metric when a
task's runs report several) and its cost columns, with a ``\cmidrule`` under it. Best per column ``\textbf``,
second ``\underline``. The caption is short: what (the methods, the backbone), each column's metric,
split and number of evaluation examples, the number of seeds and what ``±`` means, and the marks used;
the long notes (selection, tie rule, Avg rule, statistics) stay under the table in ``table.md`` and
``index.html``. Width: the tabular's natural width is estimated from its longest texts (`estimated_width`);
wider than one column of a two-column page it becomes a ``table*`` (both columns), wider than the text
it is also scaled to ``\textwidth`` (``\resizebox``, graphicx). Needs only ``booktabs`` (and then
``graphicx``); the marks are math-mode symbols of plain LaTeX.
"""

from __future__ import annotations

import re

from lora_lab.results.names import SPLIT_NAMES, metric_name, task_name
from lora_lab.results.table_model import AT_CHANCE, DAGGER, DOWN, MIN_SEEDS, STAR, UP, Table
from lora_lab.results.tables import cell_values

LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
SYMBOLS = {DAGGER: r"$^\dagger$", "–": "--", "±": r"$\pm$", STAR: r"$^{*}$", UP: r"$^{\uparrow}$", DOWN: r"$^{\downarrow}$", "≤": r"$\leq$"}
EMPHASIS = re.compile("\x00(1|2)(.*?)\x00")


def latex_escape(text: str) -> str:
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, tex in SYMBOLS.items():
        out = out.replace(symbol, tex)
    return out


def _mark(text: str, rank: int | None) -> str:
    return f"\x00{rank}{text}\x00" if rank in (1, 2) else text


def _cell(text: str) -> str:
    """Escape a shown value, then turn the rank placeholders into \\textbf / \\underline."""
    escaped = latex_escape(text)
    return EMPHASIS.sub(lambda m: (r"\textbf{%s}" if m.group(1) == "1" else r"\underline{%s}") % m.group(2), escaped)


def caption(table: Table) -> str:
    """What the table shows, its metric, split and n, and what ``±`` and the marks mean: a few lines (the
    long notes stay under the table in table.md / index.html)."""
    parts = []
    for t in table.tasks:
        info = table.task_info.get(t, {})
        n = table.n_examples.get(t)
        where = f"on {SPLIT_NAMES.get(info['split'], info['split'])}" if info.get("split") else "(no finished run)"
        parts.append(f"{task_name(t)} {metric_name(info.get('metric'))} {where}" + (f" (n={n})" if n else ""))
    methods = "the methods" + (f" on {', '.join(b.split(' with ')[0] for b in table.backbones)}" if table.backbones else "")
    text = f"Scores of {methods} (x100): " + "; ".join(parts) + ". "
    seeds = f"{table.usual_n} seed{'s' if table.usual_n != 1 else ''}"
    if table.usual_n < MIN_SEEDS:
        text += f"Mean over {seeds} (no spread below {MIN_SEEDS} seeds)."
    elif table.spread == "ci":
        text += f"Mean [95 % t-interval of the mean] over {seeds}."
    else:
        text += f"Mean ± sample std over {seeds}."
    marks = []
    if any(r["cells"][t].rank for r in table.rows for t in table.tasks):
        marks.append("bold/underlined: best/second")
    used = "".join(r["cells"][t].text(table.usual_n) for r in table.rows for t in table.tasks)
    if table.comparisons is not None and (UP in used or DOWN in used):
        marks.append(f"{UP}/{DOWN}: significantly better/worse than {table.comparisons.baseline_label} (Holm, alpha = 0.05)")
    if DAGGER in used:
        marks.append(f"{DAGGER}: some runs at chance")
    if table.chance_columns:
        marks.append(f"{AT_CHANCE}: every run at chance")
    if STAR in used:
        marks.append(f"{STAR}: failed runs not averaged")
    if marks:
        text += " " + "; ".join(marks) + "."
    return latex_escape(text)


#: page widths in pt: one column of a two-column page (ACL, IEEE, ICML: 3.25-3.3 in) and the full text
#: width of the narrowest common two-column layout (~6.75-7 in); wider tables go into ``table*`` and are
#: scaled down to the text width when even that is too narrow
COLUMN_PT, TEXT_PT = 234.0, 487.0
CHAR_PT, COLSEP_PT = 4.6, 12.0  # \small Computer Modern: ~0.51 em per character; 2 \tabcolsep


def estimated_width(table: Table, body: list[list[str]]) -> float:
    """The tabular's natural width in pt, estimated from the longest shown text of each column."""
    widths = []
    for i, col in enumerate(table.columns):
        texts = [col.header, *(row[i] for row in body)]
        widths.append(max(len(t) for t in texts) * CHAR_PT + COLSEP_PT)
    return sum(widths)


def _header_rows(table: Table) -> list[str]:
    groups = []  # (label, first column index 1-based, last)
    for i, col in enumerate(table.columns, start=1):
        if col.kind in ("task", "cost") and groups and groups[-1][0] == col.group and groups[-1][2] == i - 1:
            groups[-1] = (col.group, groups[-1][1], i)
        elif col.kind in ("task", "cost"):
            groups.append((col.group, i, i))
    top, i = [], 1
    for label, first, last in groups:
        top += [""] * (first - i) + [rf"\multicolumn{{{last - first + 1}}}{{c}}{{{latex_escape(label)}}}"]
        i = last + 1
    top += [""] * (len(table.columns) + 1 - i)
    rules = " ".join(rf"\cmidrule(lr){{{first}-{last}}}" for _, first, last in groups)
    second = [latex_escape(c.header + (f" {AT_CHANCE}" if c.at_chance else "")) for c in table.columns]
    return [" & ".join(top) + r" \\", rules, " & ".join(second) + r" \\"] if groups else [" & ".join(second) + r" \\"]


def to_latex(table: Table, study: str = "", label: str | None = None) -> str:
    spec = "".join("l" if c.kind == "key" else "r" for c in table.columns)
    label = label or "tab:" + re.sub(r"[^A-Za-z0-9:_-]+", "-", study or "results")
    shown = [cell_values(table, row, " ± ", lambda text, rank: text) for row in table.rows]
    width = estimated_width(table, shown)
    env = "table*" if width > COLUMN_PT else "table"
    tabular = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *_header_rows(table), r"\midrule"]
    in_refs = False
    for row in table.rows:
        if row["reference"] and not in_refs:
            tabular.append(r"\midrule")
            in_refs = True
        tabular.append(" & ".join(_cell(v) for v in cell_values(table, row, " ± ", _mark)) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    if width > TEXT_PT:  # scaled to the text width: needs graphicx
        tabular = [r"\resizebox{\textwidth}{!}{%", *tabular, "}"]
    requires = r"% requires \usepackage{booktabs}" + (r" and \usepackage{graphicx}" if width > TEXT_PT else "")
    return "\n".join([requires, rf"\begin{{{env}}}[t]", r"\centering", r"\small", rf"\caption{{{caption(table)}}}", rf"\label{{{label}}}",
                      *tabular, rf"\end{{{env}}}"])
