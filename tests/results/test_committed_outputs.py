"""What the repository commits as study results is what a paper can take as it is: every committed
`results/*/table.tex` compiles in a two-column article with no overfull box (a wide table is a
`table*`), and every committed PDF figure embeds TrueType (Type 42) fonts, never Type 3 (pdffonts)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_TABLES = sorted((ROOT / "results").glob("*/table.tex"))
COMMITTED_PDFS = sorted((ROOT / "results").rglob("*.pdf"))


def test_the_repository_commits_tables_and_pdf_figures():
    assert {p.parent.name for p in COMMITTED_TABLES} >= {"quick", "glue_minilm", "analysis_minilm"}
    assert len(COMMITTED_PDFS) >= 10


@pytest.mark.tools
@pytest.mark.parametrize("table", COMMITTED_TABLES, ids=lambda p: p.parent.name)
def test_a_committed_table_compiles_on_a_two_column_page(table, tmp_path):
    (tmp_path / "table.tex").write_text(table.read_text())
    (tmp_path / "paper.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
                                        "\\usepackage{graphicx}\n\\begin{document}\nSome text.\n\\input{table.tex}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)


@pytest.mark.tools
def test_every_committed_pdf_figure_embeds_truetype_fonts():
    type3 = {}
    for pdf in COMMITTED_PDFS:
        fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
        if not fonts or not all("TrueType" in line for line in fonts):
            type3[str(pdf.relative_to(ROOT))] = fonts
    assert not type3, type3


def _rebuilt_from_records():
    """(study dir, the report command its meta.json records) for each committed study built from kept
    records (one records dir or several, or a part of one)."""
    import json

    out = []
    for meta in sorted((ROOT / "results").glob("*/meta.json")):
        command = json.loads(meta.read_text()).get("command", "")
        if re.fullmatch(r"lora-lab report( results/\S+_records\S*)+ --out results/\S+( --baseline \S+)?", command):
            out.append((meta.parent, command))
    return out


@pytest.mark.parametrize("study, command", _rebuilt_from_records(), ids=lambda v: getattr(v, "name", ""))
def test_a_committed_table_is_the_tools_output_of_the_committed_records(study, command, tmp_path, monkeypatch):
    """No hand edit, and no code change that moves a committed number or note unnoticed: the report run
    again on the kept records writes the committed table.csv, table.tex and table.md (its command line aside)."""
    from lora_lab.results.report import report

    args = command.split()
    baseline = args[args.index("--baseline") + 1] if "--baseline" in args else None
    monkeypatch.chdir(ROOT)  # the committed report ran from the repository root (it names the records relative to it)
    report(args[2:args.index("--out")], out=tmp_path / "out", plots=False, page=False, baseline=baseline, command=command)
    for name in ("table.csv", "table.tex", "table.md"):
        assert (tmp_path / "out" / name).read_text() == (study / name).read_text(), f"{study.name}/{name}"


def test_the_studies_built_from_records_are_found():
    assert {s.name for s, _ in _rebuilt_from_records()} >= {"quick", "glue_minilm", "analysis_minilm", "glue_minilm_reference"}
