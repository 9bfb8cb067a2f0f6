"""Tables in a Markdown document are the report's own, never a hand-edited copy.

A document (the README, a study's reading) shows a table that ``lora-lab report`` wrote by embedding it
between two markers::

    <!-- table: results/quick/table.md -->
    | Method | ... |
    <!-- /table -->

The lines between the markers are the Markdown table of that file (its ``|`` lines, exactly as
written), with the path relative to the document. `stale_tables` lists the blocks that differ from
their file (a test keeps the README honest); ``python -m lora_lab.results.embed DOC...`` rewrites them
from the files (``--check``: only say which are stale, exit 1 if any).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- table: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_lines(table_md: Path) -> str:
    """The Markdown table of a report's ``table.md``: its ``|`` lines (the first table), newline-terminated."""
    lines, started = [], False
    for line in table_md.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            lines.append(line)
            started = True
        elif started:
            break
    if not lines:
        raise ValueError(f"{table_md}: no Markdown table in it")
    return "\n".join(lines) + "\n"


def embedded(doc: Path) -> list[tuple[str, str, str]]:
    """``(path as written, body in the document, body from the file)`` for every marked block of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    return [(m["path"], m["body"], table_lines(doc.parent / m["path"])) for m in BLOCK.finditer(text)]


def stale_tables(doc: Path) -> list[str]:
    """The paths whose embedded block in ``doc`` differs from the file's table."""
    return [path for path, body, fresh in embedded(doc) if body != fresh]


def refresh(doc: Path) -> list[str]:
    """Rewrite every marked block of ``doc`` from its file; returns the paths that changed."""
    text = doc.read_text(encoding="utf-8")
    changed = stale_tables(doc)
    new = BLOCK.sub(lambda m: m.group(1) + table_lines(doc.parent / m["path"]) + m.group(4), text)
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lora_lab.results.embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only list stale blocks (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for doc in args.docs:
        try:
            for path in stale_tables(doc) if args.check else refresh(doc):
                stale.append(f"{doc}: {path}")
        except (OSError, ValueError) as err:  # a document or a table.md it names is missing or holds no table: one line
            print(f"error: {doc}: {err}", file=sys.stderr)
            return 2
    for line in stale:
        print(("stale: " if args.check else "refreshed: ") + line)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
