"""The study page's "Analysis" section: what `lora-lab analyze` wrote, shown by `lora-lab report`.

`lora-lab report PATH... --out OUT` looks for an ``analysis.json`` (`lora_lab.analysis.command`) in
``OUT/analysis/`` (``lora-lab analyze RUNS --out OUT/analysis``, before or after the report) and in each
``PATH`` and ``PATH/analysis/``; for each found it adds one section:
per measure its caption, its CSV tables (paths), the first rows of its summary and its figures
(PNG inlined as ``data:`` URIs, like the page's other figures; the PDF beside each is named).
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

INDEX_NAME = "analysis.json"
SUMMARY_ROWS = 12


def find_analysis_dirs(paths, out) -> list[Path]:
    candidates = [Path(out) / "analysis"] + [q for p in map(Path, paths) for q in (p, p / "analysis")]
    found = [c.resolve() for c in candidates if (c / INDEX_NAME).is_file()]
    return list(dict.fromkeys(found))


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


def _summary_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows[:SUMMARY_ROWS])
    more = f"<p>... {len(rows) - SUMMARY_ROWS} more rows in the CSV.</p>" if len(rows) > SUMMARY_ROWS else ""
    return f'<table class="trials"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}'


def analysis_html(directory: Path) -> str:
    index = json.loads((directory / INDEX_NAME).read_text())
    parts = [f"<p>From <code>{escape(index.get('command', ''))}</code> ({escape(str(directory))}).</p>"]
    for name, entry in index.get("measures", {}).items():
        if entry.get("skipped"):
            parts.append(f"<h3>{escape(name)}</h3><p>Not applicable to these runs.</p>")
            continue
        tables = ", ".join(f"<code>{escape(t)}</code>" for t in entry.get("tables", []))
        parts.append(f"<h3>{escape(name)}</h3><p>{escape(entry.get('caption', ''))}</p><p>Tables: {tables}</p>{_summary_table(entry.get('summary') or [])}")
        for fig in entry.get("figures", []):
            path = directory / fig
            if path.suffix != ".png" or not path.is_file():
                continue
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption><b>{escape(path.stem)}</b> (vector: <code>{escape(str(Path(fig).with_suffix('.pdf')))}</code>)</figcaption></figure>")
    return "".join(parts)


def analysis_section(paths, out) -> str:
    """The page's Analysis section ("" when no analysis output is found)."""
    dirs = find_analysis_dirs(paths, out)
    return "".join(f'<h2 id="analysis">Analysis</h2>{analysis_html(d)}' for d in dirs)
