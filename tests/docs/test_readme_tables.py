"""The README's tables are the report's own files, embedded (`lora_lab.results.embed`), not copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_lab.results.embed import BLOCK, embedded, refresh, stale_tables

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["README.md", "docs/quick-study.md"])
def test_embedded_tables_are_current(doc):
    assert embedded(REPO / doc), f"{doc} embeds no report table"
    assert stale_tables(REPO / doc) == [], f"run: python -m lora_lab.results.embed {doc}"


def test_every_table_in_the_readme_is_embedded_from_a_report_and_current():
    blocks = embedded(REPO / "README.md")
    assert {path for path, _, _ in blocks} >= {"results/quick/table.md"}
    assert stale_tables(REPO / "README.md") == [], "run: python -m lora_lab.results.embed README.md"
    text = (REPO / "README.md").read_text()
    outside = [line for line in BLOCK.sub("", text).splitlines() if line.startswith("| Method")]
    assert outside == [], "a results table outside an embedded block is a hand-edited copy"


def test_a_stale_block_is_found_and_refreshed(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "table.md").write_text("# s\n\n| Method | A |\n|---|---:|\n| LoRA | 1.00 |\n\n- note\n")
    doc = tmp_path / "doc.md"
    doc.write_text("text\n<!-- table: r/table.md -->\n| Method | A |\n|---|---:|\n| LoRA | 9.99 |\n<!-- /table -->\nmore\n")
    assert stale_tables(doc) == ["r/table.md"]
    assert refresh(doc) == ["r/table.md"]
    assert doc.read_text() == "text\n<!-- table: r/table.md -->\n| Method | A |\n|---|---:|\n| LoRA | 1.00 |\n<!-- /table -->\nmore\n"
    assert stale_tables(doc) == [] and refresh(doc) == []
    (tmp_path / "r" / "table.md").write_text("no table\n")
    with pytest.raises(ValueError, match="no Markdown table"):
        stale_tables(doc)
