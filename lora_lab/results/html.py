"""The study page: ``results/<study>/index.html``, one self-contained file (inline CSS, figures as
``data:`` URIs; no script, no network) with the table (grouped header, bold best / underlined second,
significance marks), its notes, the figures with captions, every trial with its status and failure
reason, and the provenance (report command, inputs, creation time, git SHA of the report and of
the runs, package versions)."""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path

from lora_lab.results.names import row_label
from lora_lab.results.record import RESULT_NAME, atomic_write_text
from lora_lab.results.run_summary import fmt_duration
from lora_lab.results.table_model import AT_CHANCE, Table
from lora_lab.results.tables import cell_values, key_value

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{padding:.25em .6em;text-align:right;white-space:nowrap}
th.key,td.key{text-align:left}
thead tr:first-child th{border-top:2px solid #222}thead tr:last-child th{border-bottom:1px solid #222}
tbody tr:last-child td{border-bottom:2px solid #222}th.group{border-bottom:1px solid #888}
tr.reference td{color:#555;font-style:italic}
table.trials td,table.trials th{text-align:left;font-size:.85em;border-bottom:1px solid #eee}
tr.failed td,tr.corrupt td,tr.missing td,tr.cancelled td,tr.running td{background:#fdecea}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
code,pre{background:#f6f8fa;padding:.1em .3em;border-radius:3px}pre{padding:.6em;overflow-x:auto}
"""
TRIAL_COLUMNS = ("status", "task", "method", "seed", "lr", "val", "test", "wall_time_s", "reason", "run_dir")
TRIAL_HEADERS = {"wall_time_s": "wall time"}
#: a trial's files the page links to, where they exist when the report runs (relative links: the page
#: and a study's committed records move together)
RUN_FILES = ((RESULT_NAME, "result"), ("train.log", "log"))
MAX_SUCCESS_LISTED = 300  # every unsuccessful trial is listed; successful ones up to this many (all in trials.csv)


def _emphasis(text: str, rank: int | None) -> str:
    return f"<b>{text}</b>" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text


def table_html(table: Table) -> str:
    """The paper table as HTML: task names over their metric columns, marks as in Markdown."""
    groups, i = [], 0
    while i < len(table.columns):
        col = table.columns[i]
        span = 1
        while (col.kind in ("task", "cost") and i + span < len(table.columns) and table.columns[i + span].kind == col.kind
               and table.columns[i + span].group == col.group):
            span += 1
        groups.append((col.group if col.kind in ("task", "cost") else "", span))
        i += span
    top = "".join(f'<th colspan="{s}" class="group">{escape(g)}</th>' if g else f'<th colspan="{s}"></th>' for g, s in groups)
    second = "".join(f'<th class="{"key" if c.kind == "key" else ""}">{escape(c.header + (f" {AT_CHANCE}" if c.at_chance else ""))}</th>'
                     for c in table.columns)
    body = []
    for row in table.rows:
        values = cell_values(table, row, " ± ", lambda text, rank: "\x00" + str(rank or 0) + text + "\x00")
        cells = []
        for col, value in zip(table.columns, values):
            shown = escape(value)
            for rank in (0, 1, 2):
                while f"\x00{rank}" in shown:
                    start = shown.index(f"\x00{rank}")
                    end = shown.index("\x00", start + 2)
                    shown = shown[:start] + _emphasis(shown[start + 2 : end], rank) + shown[end + 1 :]
            cells.append(f'<td class="{"key" if col.kind == "key" else ""}">{shown}</td>')
        body.append(f'<tr class="{"reference" if row["reference"] else ""}">{"".join(cells)}</tr>')
    return f'<table class="paper"><thead><tr>{top}</tr><tr>{second}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def comparisons_html(table: Table) -> str:
    """Every tested cell against the baseline: the cell's mean and the 95 % t-interval of that mean (not of
    the difference), the difference of means, p-values, verdict."""
    comp = table.comparisons
    if comp is None or not comp.by_cell:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("row", "task", "seeds", "the cell's own mean, 95 % t-interval (x100; clipped to the metric's range; n &ge; 3)",
                                                f"difference of means vs {escape(comp.baseline_label)} (x100)",
                                                "p (t-test, seeds)", "p (bootstrap, examples)", "p (Holm)", "verdict"))
    body = []
    for row in table.rows:
        for task in table.tasks:
            cell = row["cells"][task]
            c = cell.comparison
            if c is None:
                continue
            fmt = lambda v: "–" if v is None else f"{v:.3g}"  # noqa: E731
            ci = f"{100 * cell.mean:.2f} [{100 * cell.ci[0]:.2f}, {100 * cell.ci[1]:.2f}]" if cell.ci else f"{100 * cell.mean:.2f} (n={cell.n})"
            values = [row["label"] + "".join(f" {k}" for k in key_suffix(table, row)), task, c.n_pairs, ci, f"{100 * c.diff:+.2f}", fmt(c.p_seed),
                      fmt(c.boot["p"] if c.boot else None), fmt(c.p_holm), c.verdict or "not significant"]
            body.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in values) + "</tr>")
    return f'<h3>Comparisons with {escape(comp.baseline_label)}</h3><table class="trials"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def key_suffix(table: Table, row: dict) -> list[str]:
    """``r=8`` etc. for the row keys shown beside the method label."""
    keys = [c for c in table.columns if c.kind == "key" and c.id != "method"]
    return [f"{c.id}={key_value(table, row, c)}" for c in keys]


def _md_inline(text: str) -> str:
    """Escape, then render the `code` spans of a note or problem line."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def figures_html(out: Path, plot_paths: list[Path]) -> str:
    captions_path = out / "plots" / "captions.json"
    captions = json.loads(captions_path.read_text()) if captions_path.is_file() else {}
    blocks = []
    for path in [p for p in plot_paths if p.suffix == ".png"]:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        pdf = path.with_suffix(".pdf")
        link = f' (vector: <code>{escape(str(pdf.relative_to(out)))}</code>)' if pdf.is_file() else ""
        blocks.append(f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'
                      f"<figcaption><b>{escape(path.stem)}</b>: {escape(captions.get(path.stem, ''))}{link}</figcaption></figure>")
    return "".join(blocks) or "<p>No figures (run without --no-plots).</p>"


def run_links(run_dir, out: Path | None) -> str:
    """Links from the page in ``out`` to the run's result.json and train.log (those that exist)."""
    if out is None or not isinstance(run_dir, str):
        return ""
    links = []
    for name, label in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_file():
            href = Path(os.path.relpath(path.resolve(), Path(out).resolve())).as_posix()
            links.append(f'<a href="{escape(href)}">{label}</a>')
    return " ".join(links)


def trials_html(trials, out: Path | None = None) -> str:
    """Every trial (successful ones up to `MAX_SUCCESS_LISTED`): status, cell, score, wall time summed
    over its processes, why it did not finish, and links to its result.json and train.log."""
    head = "".join(f"<th>{TRIAL_HEADERS.get(c, c)}</th>" for c in TRIAL_COLUMNS) + "<th>files</th>"
    rows = []
    ok = trials["status"] == "success"
    shown = trials[~ok | (ok.cumsum() <= MAX_SUCCESS_LISTED)]
    for rec in shown.to_dict("records"):
        cells = []
        for c in TRIAL_COLUMNS:
            v = rec.get(c)
            if c == "method" and isinstance(v, str):
                v = row_label(["method", "cfg.adapter.init", "cfg.adapter.rslora"], (v, rec.get("cfg.adapter.init"), rec.get("cfg.adapter.rslora")))
            if c == "wall_time_s":
                v = fmt_duration(v) if isinstance(v, (int, float)) and v == v else ""
            if isinstance(v, float):
                v = "" if v != v else f"{v:.4g}"
            cells.append(f"<td>{escape('' if v is None else str(v))}</td>")
        cells.append(f"<td>{run_links(rec.get('run_dir'), out)}</td>")
        rows.append(f'<tr class="{escape(str(rec.get("status")))}">{"".join(cells)}</tr>')
    more = len(trials) - len(shown)
    note = f"<p>... and {more} more successful trials (all in trials.csv).</p>" if more else ""
    return f'<table class="trials"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}'


def provenance_html(meta: dict) -> str:
    git = meta.get("git") or {}
    items = [("command", f"<code>{escape(meta.get('command', ''))}</code>"), ("inputs", escape(", ".join(meta.get("inputs", [])))),
             ("created", escape(str(meta.get("created")))), ("report git SHA", escape(f"{git.get('sha')} (dirty: {git.get('dirty')})")),
             ("runs' git SHAs", escape(", ".join(meta.get("run_git_shas", [])) or "–")),
             ("versions", escape(", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items() if v)))]
    return "<dl>" + "".join(f"<dt><b>{k}</b></dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def page(table: Table, markdown: str, trials, meta: dict, figures: str, extra: str = "", out: Path | None = None) -> str:
    title = escape(" + ".join(meta.get("studies") or []) or "report")
    notes = "".join(f"<li>{_md_inline(n)}</li>" for n in table.notes)
    problems = [line for line in markdown.split("\n\n")[-1].splitlines() if line.strip()]
    problem_html = "".join(f"<p>{_md_inline(line)}</p>" if not line.startswith("- ") else f"<li>{_md_inline(line[2:])}</li>" for line in problems)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{CSS}</style></head><body>'
            f"<h1>Study: {title}</h1><p><code>{escape(meta.get('command', ''))}</code></p>"
            f"<h2>Table</h2>{table_html(table)}<ul class=\"notes\">{notes}</ul>{comparisons_html(table)}"
            f"<h2>Figures</h2>{figures}{extra}"
            f"<h2>Trials</h2>{problem_html}{trials_html(trials, out)}"
            f"<h2>Provenance</h2>{provenance_html(meta)}</body></html>\n")


def write_page(out: Path, table: Table, markdown: str, trials, meta: dict, plot_paths: list[Path], extra: str = "") -> Path:
    """``extra``: HTML sections placed after the figures (the analysis section, `lora_lab.results.analysis_section`)."""
    path = Path(out) / "index.html"
    atomic_write_text(path, page(table, markdown, trials, meta, figures_html(Path(out), plot_paths), extra, Path(out)))
    return path
