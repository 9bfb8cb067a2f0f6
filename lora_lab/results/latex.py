r"""The paper table as a LaTeX ``table`` float (booktabs).

::

    % requires \usepackage{booktabs}
    \begin{table}[t]
    \centering\small
    \caption{...task, metric, split, n, what ± means, marks...}
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
task's runs report several), with a ``\cmidrule`` under it. Best per column ``\textbf``, second
``\underline``; the caption states the task(s), metric and split of each column, the number of
evaluation examples where known, the number of seeds and what ``±`` means, and explains every mark
used. Needs only ``booktabs`` (the marks are math-mode symbols of plain LaTeX).
"""

from __future__ import annotations

import re

from lora_lab.results.names import SPLIT_NAMES, metric_name, task_name
from lora_lab.results.tables import DAGGER, DOWN, STAR, UP, Table, cell_values, significance_note, spread_text

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


def caption(table: Table, study: str) -> str:
    parts = []
    for t in table.tasks:
        info = table.task_info.get(t, {})
        n = table.n_examples.get(t)
        split = SPLIT_NAMES.get(info.get("split"), info.get("split") or "no finished run")
        parts.append(f"{task_name(t)}: {metric_name(info.get('metric'))} on {split}" + (f" (n={n} examples)" if n else ""))
    text = f"{study}: " if study else ""
    text += "; ".join(parts) + ". Scores x100, " + spread_text(table) + "."
    if any(table.task_info.get(t, {}).get("split") == "val" for t in table.tasks):
        text += " Dev columns: the value at the evaluation chosen on dev (optimistic)."
    if any(r["cells"][t].rank for r in table.rows for t in table.tasks):
        text += " Best per column in bold, second underlined."
    sig = significance_note(table)
    if sig:
        text += " " + sig.replace("table.csv", "the CSV")
    used = "".join(r["cells"][t].text(table.usual_n) for r in table.rows for t in table.tasks)
    if DAGGER in used:
        text += f" {DAGGER}: some runs stayed at chance level."
    if STAR in used:
        text += f" {STAR}: the cell has failed or unfinished trials, not averaged in."
    return latex_escape(text)


def _header_rows(table: Table) -> list[str]:
    groups, spans = [], []  # (label, first column index 1-based, last)
    for i, col in enumerate(table.columns, start=1):
        if col.kind == "task" and groups and groups[-1][0] == col.group and groups[-1][2] == i - 1:
            groups[-1] = (col.group, groups[-1][1], i)
        elif col.kind == "task":
            groups.append((col.group, i, i))
    top, i = [], 1
    for label, first, last in groups:
        top += [""] * (first - i) + [rf"\multicolumn{{{last - first + 1}}}{{c}}{{{latex_escape(label)}}}"]
        i = last + 1
    top += [""] * (len(table.columns) + 1 - i)
    rules = " ".join(rf"\cmidrule(lr){{{first}-{last}}}" for _, first, last in groups)
    second = [latex_escape(c.header) for c in table.columns]
    return [" & ".join(top) + r" \\", rules, " & ".join(second) + r" \\"] if groups else [" & ".join(second) + r" \\"]


def to_latex(table: Table, study: str = "", label: str | None = None) -> str:
    spec = "".join("l" if c.kind == "key" else "r" for c in table.columns)
    label = label or "tab:" + re.sub(r"[^A-Za-z0-9:_-]+", "-", study or "results")
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption(table, study)}}}",
             rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *_header_rows(table), r"\midrule"]
    in_refs = False
    for row in table.rows:
        if row["reference"] and not in_refs:
            lines.append(r"\midrule")
            in_refs = True
        lines.append(" & ".join(_cell(v) for v in cell_values(table, row, " ± ", _mark)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)
