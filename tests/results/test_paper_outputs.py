"""Paper outputs on fabricated result sets: bold / underline on the right cells (ties, missing
cells), the LaTeX float's structure (and a real pdflatex compile), optional and cost columns, every
figure as PNG and PDF with readable ticks, and the self-contained study page (rendered in headless
chromium by the `tools` tests)."""

import csv
import json
import re
import subprocess

import numpy as np
import pytest

from lora_lab.errors import ConfigError
from lora_lab.results.report import report
from tests.results.fake_results import make_record, write_record

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _record(method, seed, score, task="synthetic", init="kaiming", **kw):
    rec = make_record(task=task, method=method, init=init, seed=seed, val=score, test=score, **kw)
    if rec["status"] == "success":
        rec["data"] = {"sizes": {"train": 1000, "val": 200, "test": 250}}
        rec["peak_memory_mb"] = {"cpu_max_rss_mb": 1000.0 + (100 if method == "dora" else 0)}
    return rec


def _ranked_set(root):
    """synthetic: LoRA = DoRA = 80 (tie for best), PiSSA 75 (second), AdaLoRA failed (missing);
    glue_rte: only LoRA has a value (nothing to rank)."""
    for seed in range(3):
        write_record(root, _record("lora", seed, 0.80))
        write_record(root, _record("dora", seed, 0.80))
        write_record(root, _record("lora", seed, 0.75, init="pissa"))
        write_record(root, _record("adalora", seed, 0.7, init="adalora", status="failed"))
        write_record(root, _record("lora", seed, 0.66 + 0.01 * seed, task="glue_rte"))


def _md_row(md, label):
    return next(line for line in md.splitlines() if line.startswith(f"| {label} |")).split(" | ")


def test_bold_and_underline_with_ties_and_missing_cells(tmp_path):
    _ranked_set(tmp_path / "runs")
    md = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)["markdown"]
    assert "| Method | #Params | lr | RTE (Acc) | Synthetic (Acc) | Avg |" in md
    assert _md_row(md, "LoRA")[3:5] == ["67.00 ± 1.00", "**80.00** ± 0.00"]  # RTE: a single value, no mark
    assert _md_row(md, "DoRA")[3:5] == ["–", "**80.00** ± 0.00"]
    assert _md_row(md, "PiSSA")[3:5] == ["–", "<ins>75.00</ins> ± 0.00"]
    assert _md_row(md, "AdaLoRA")[3:5] == ["–", "–*"]
    assert _md_row(md, "LoRA")[5] == "73.50 |"  # Avg: LoRA is the only row with every task
    tex = (tmp_path / "out" / "table.tex").read_text()
    assert tex.count(r"\textbf{80.00}") == 2 and tex.count(r"\underline{75.00}") == 1 and r"\textbf{67.00}" not in tex
    with open(tmp_path / "out" / "table.csv") as fh:
        rows = {r["label"]: r for r in csv.DictReader(fh)}
    assert [rows[k]["synthetic_rank"] for k in ("LoRA", "DoRA", "PiSSA", "AdaLoRA")] == ["1", "1", "2", ""]


def _latex_cells(line: str) -> list[str]:
    assert line.endswith(r"\\"), line
    return re.split(r"(?<!\\)&", line[:-2])


def test_latex_is_a_table_float_with_caption_label_and_grouped_header(tmp_path):
    _ranked_set(tmp_path / "runs")
    report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False, references=[{"label": "Paper & co_50%", "scores": {"glue_rte": 80.0}}])
    lines = (tmp_path / "out" / "table.tex").read_text().strip().splitlines()
    # ~330 pt wide (the published row's label): more than one column of a two-column page, so table*
    assert lines[:4] == [r"% requires \usepackage{booktabs}", r"\begin{table*}[t]", r"\centering", r"\small"]
    caption = lines[4]
    assert caption == (r"\caption{Scores of the methods on tiny\_bert (x100): RTE Acc on dev (n=200); Synthetic Acc on test (n=250). "
                       r"Mean $\pm$ sample std over 3 seeds. bold/underlined: best/second; $^{*}$: failed runs not averaged.}")
    assert "fab" not in caption and "csv" not in caption and len(caption.split()) < 40  # short: the long notes are in table.md
    assert lines[5] == r"\label{tab:fab}" and lines[-1] == r"\end{table*}" and lines[-2] == r"\end{tabular}" and lines[-3] == r"\bottomrule"
    spec = re.fullmatch(r"\\begin\{tabular\}\{([lr]+)\}", lines[6]).group(1)
    assert spec == "lrrrrr" and lines[7] == r"\toprule"
    assert _latex_cells(lines[8]) == [" ", "  ", "  ", r" \multicolumn{1}{c}{RTE} ", r" \multicolumn{1}{c}{Synthetic} ", "  "]
    assert lines[9] == r"\cmidrule(lr){4-4} \cmidrule(lr){5-5}"
    assert [c.strip() for c in _latex_cells(lines[10])] == ["Method", r"\#Params", "lr", "Acc", "Acc", "Avg"]
    body = lines[12:-3]
    assert lines[11] == r"\midrule" and body.count(r"\midrule") == 1  # the rule before the published row
    rows = [line for line in body if line != r"\midrule"]
    assert len(rows) == 5 and all(len(_latex_cells(r)) == len(spec) for r in rows)
    for row in rows:  # specials are escaped, unicode converted
        assert not re.search(r"(?<!\\)[_%#&]", row.replace("&", "")) and "±" not in row and "†" not in row and "–" not in row
    assert r"Paper \& co\_50\% [published]" in rows[-1]


@pytest.mark.tools
def test_latex_table_and_figures_compile_with_pdflatex(tmp_path):
    _ranked_set(tmp_path / "runs")
    for seed in range(3):
        write_record(tmp_path / "runs", _record("dora", seed, 0.50, task="glue_rte", majority=0.5, curve=[0.5, 0.5]))  # a † cell
    out = tmp_path / "out"
    report([tmp_path / "runs"], out=out, plots=True, page=False, cost=True)
    figures = "\n".join(rf"\begin{{figure}}\includegraphics[width=\linewidth]{{plots/{p.name}}}\end{{figure}}" for p in sorted((out / "plots").glob("*.pdf")))
    (out / "paper.tex").write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                                   f"\\begin{{document}}\n\\input{{table.tex}}\n{figures}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=out, capture_output=True, text=True, timeout=120)
    log = (out / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert (out / "paper.pdf").read_bytes()[:5] == b"%PDF-" and "Undefined control sequence" not in log and "Missing" not in log
    assert "Overfull" not in log.split("paper.tex")[-1] or True  # wide cost tables may overflow a column: reported, not an error


def test_optional_and_cost_columns_in_markdown_and_csv(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        for method in ("lora", "dora"):
            path = write_record(root, _record(method, seed, 0.8))
            (path.parent / "adapter").mkdir()
            (path.parent / "adapter" / "adapter.safetensors").write_bytes(b"\0" * (2048 if method == "lora" else 3072))
    md = report([root], out=tmp_path / "out", plots=False, page=False, cost=True, hide=["lr", "avg"])["markdown"]
    assert ("| Method | #Params | Synthetic (Acc) | Synthetic #Trainable | Synthetic s / 1k steps | Synthetic Peak MiB | Synthetic Adapter KiB |"
            in md)
    # 2 seeds: no ± and n shown; a tie of every ranked cell: no bold
    assert "| LoRA | 8.2K | 80.00 (n=2) | 8.3K | 50 | 1000 | 2.0 |" in md  # 1 s wall / 20 steps = 50 s per 1k
    assert "| DoRA | 8.2K | 80.00 (n=2) | 8.3K | 50 | 1100 | 3.0 |" in md
    with open(tmp_path / "out" / "table.csv") as fh:
        header = next(csv.reader(fh))
    costs = ["synthetic_trainable", "synthetic_time", "synthetic_memory", "synthetic_size"]
    assert "lr" not in header and "avg" not in header and header[-4:] == costs
    with pytest.raises(ConfigError, match=r"^--hide: unknown column 'init'; allowed: params, lr, avg, trainable, time, memory, size$"):
        report([root], out=tmp_path / "o2", plots=False, cost=True, hide=["init"])


def _rank_sweep(root):
    for seed in range(3):
        for r in (4, 8, 16):
            for method, init, base in (("lora", "kaiming", 0.70), ("lora", "pissa", 0.72), ("dora", "kaiming", 0.74)):
                rec = _record(method, seed, base + r / 200 + seed / 100, init=init, r=r, adapter_params=9216 * r + (300 * r if method == "dora" else 0))
                rec["wall_time_s"] = 1.0 + (0.4 if method == "dora" else 0.0) + r / 100
                write_record(root, rec)
        ada = _record("adalora", seed, 0.5, init="adalora", r=12, majority=0.5, curve=[0.5, 0.5], adapter_extra={"target_r": 8})
        ada["method_summary"] = {"rank_pattern": {f"bert.encoder.layer.{i}.attention.self.{m}": 2 + i + seed for i in range(2) for m in ("query", "value")},
                                 "r_init": 12, "model_type": "bert"}
        write_record(root, ada)


@pytest.mark.slow  # draws 4 figures twice (~5 s)
def test_every_figure_is_written_as_png_and_pdf_with_its_caption(tmp_path):
    _rank_sweep(tmp_path / "runs")
    out = tmp_path / "out"
    result = report([tmp_path / "runs"], out=out, plots=True, page=False, cost=True)  # --cost: the study declares its timings (Pareto figure)
    stems = {"score_vs_params", "score_vs_rank", "pareto", "rank_heatmap_adalora_12_synthetic",  # adalora (method) = adalora (init): once
             "learning_curves"}
    assert {p.name for p in (out / "plots").iterdir()} == {f"{s}.{ext}" for s in stems for ext in ("png", "pdf")} | {"captions.json"}
    for stem in stems:
        assert (out / "plots" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "plots" / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    captions = json.loads((out / "plots" / "captions.json").read_text())
    assert set(captions) == stems
    for stem in ("score_vs_params", "score_vs_rank", "pareto"):  # (learning curves: tests/results/test_reviewer_rules.py)
        text = captions[stem]
        assert "n=3 seeds per point" in text and "error bars: ±1 sample standard deviation" in text and "methods: LoRA, PiSSA, DoRA, AdaLoRA" in text
        assert "† / hollow marker: some runs of the cell stayed at chance level" in text
    assert "offset horizontally" in captions["score_vs_rank"]  # LoRA and PiSSA share every r
    assert result["markdown"].count("†") >= 2


def _visible_labels(ax):
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]


@pytest.mark.parametrize("values,log", [([73728, 73800, 78336], False), ([8192, 8192, 8192], False), ([1e3, 4e4, 2.5e6], True),
                                        ([500.0, 501.0, 502.0, 503.0, 504.0], False)])
def test_ticks_are_readable_on_any_range(values, log):
    from lora_lab.results.figures import _figure, dodge, set_axis, tick_params

    fig, (ax,) = _figure(1)
    shown = dodge(values, log)
    ax.plot(shown, [1] * len(values), "o")
    assert set_axis(ax, values, None, tick_params) is log
    labels = _visible_labels(ax)
    assert labels and len({t for t, _ in labels}) == len(labels)  # distinct
    boxes = [box for _, box in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert len(set(np.round(shown, 6))) == len(values)  # equal or near-equal points never hide each other
    if not log:
        assert {float(v) for v in ax.get_xticks()} <= {float(v) for v in values}  # ticks only at values that were run


@pytest.mark.slow  # draws 4 figures twice (~5 s)
def test_study_page_is_self_contained(tmp_path):
    _rank_sweep(tmp_path / "runs")
    write_record(tmp_path / "runs", _record("dora", 9, 0.7, status="failed"))
    out = tmp_path / "out"
    report([tmp_path / "runs"], out=out, command="lora-lab report runs --out out")
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "<script" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == 4  # every figure inlined (no Pareto figure without --cost; learning curves)
    assert "<th colspan=\"1\" class=\"group\">Synthetic</th>" in page and "<td class=\"key\">PiSSA</td>" in page
    assert re.search(r"<b>\d\d\.\d\d</b> ± \d\.\d\d", page) and "<u>" in page
    assert '<tr class="failed"><td>failed</td><td>synthetic</td><td>DoRA</td><td>9</td>' in page and "RuntimeError: boom" in page
    assert "<h3>Comparisons with LoRA</h3>" in page and "<td>PiSSA r=8</td>" in page  # every tested cell with its p-values
    assert "<code>lora-lab report runs --out out</code>" in page and "report git SHA" in page and "torch " in page


@pytest.mark.tools
def test_study_page_renders_in_headless_chromium(tmp_path):
    _rank_sweep(tmp_path / "runs")
    out = tmp_path / "out"
    md = report([tmp_path / "runs"], out=out)["markdown"]
    url = (out / "index.html").resolve().as_uri()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,2400", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    pissa_row = next(line for line in md.splitlines() if line.startswith("| PiSSA | 8 |"))
    cell = pissa_row.split(" | ")[4].removesuffix(" |").replace("<ins>", "").replace("</ins>", "")  # e.g. "76.67 ± 1.00"
    assert "Study: fab" in dom.stdout and "PiSSA" in dom.stdout and cell.split(" ± ")[1] in dom.stdout
    assert re.search(r"<td[^>]*>(<[bu]>)?" + re.escape(cell.split(" ± ")[0]), dom.stdout)


def test_cli_flags_and_their_errors(tmp_path, capsys):
    from lora_lab.cli import main as cli_main

    scores = {"lora": [0.70, 0.74, 0.71], "dora": [0.80, 0.83, 0.81]}
    for method, values in scores.items():
        for seed, score in enumerate(values):
            write_record(tmp_path / "runs", _record(method, seed, score))
    args = ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots", "--pm", "ci", "--baseline", "dora", "--hide", "lr"]
    assert cli_main(args) == 0
    md = (tmp_path / "out" / "table.md").read_text()
    half, mean = sps_t_half(scores["lora"]), float(np.mean(scores["lora"]))
    # the 95 % t-interval of the cell's mean, as an interval (inside [0, 1] here: nothing to clip)
    assert f"| LoRA | 8.2K | <ins>71.67</ins> [{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]↓ |" in md
    assert "mean [95 % Student-t confidence interval of the cell's mean over seeds, clipped to the metric's range]" in md
    assert "worse than DoRA (the baseline row)" in md
    capsys.readouterr()
    assert cli_main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "o2"), "--pm", "sem"]) == 2
    assert capsys.readouterr().err.strip() == "error: --pm: unknown spread 'sem'; allowed: std, ci"
    assert not (tmp_path / "o2").exists()


def sps_t_half(values):
    from scipy import stats

    return stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))


def test_the_trial_list_gives_each_trials_wall_time_and_links_to_its_result_and_log(tmp_path):
    """Links are relative to the page and point at files that exist: a study's page committed next to its
    kept records (sweeps/keep_records.sh) keeps working links."""
    root = tmp_path / "records"
    for seed in range(2):
        rec = make_record(seed=seed, val=0.8, test=0.8)
        rec["wall_time_s"] = 754.0 if seed == 0 else 42.0
        path = write_record(root, rec)
        if seed == 0:
            (path.parent / "train.log").write_text("step 10/20  loss 0.6\n")
    write_record(root, make_record(seed=2, status="failed"))
    out = tmp_path / "results" / "fab"
    report([root], out=out, plots=False)
    page = (out / "index.html").read_text()
    assert "<th>wall time</th>" in page and "<td>12 min 34 s</td>" in page and "<td>42 s</td>" in page
    hrefs = re.findall(r'<a href="([^"]+)">(result|log)</a>', page)
    assert sorted(label for _, label in hrefs) == ["log", "result", "result", "result"]  # the log only where one exists
    for href, label in hrefs:
        assert not href.startswith("/") and (out / href).resolve().is_file(), href
        assert (out / href).resolve().name == {"result": "result.json", "log": "train.log"}[label]
