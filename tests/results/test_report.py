"""`lora-lab report` on fabricated result sets written by the tests: the numbers in the table are the
statistics of the files, model selection uses validation only, bad files are listed and excluded."""

import csv
import json
import re
import statistics

import pytest

from lora_lab.errors import ConfigError
from lora_lab.results.report import main, report
from tests.results.fake_results import make_record, write_record


def _csv_rows(out):
    with open(out / "table.csv") as fh:
        return list(csv.DictReader(fh))


def _write_method_grid(root):
    """lora and dora x 2 tasks x 2 lrs x 3 seeds with known values; returns {(method, task, lr): [(val, test)]}."""
    truth = {}
    for method, base in (("lora", 0.70), ("dora", 0.74)):
        for task in ("synthetic", "glue_rte"):
            for lr, bump in ((1e-4, 0.0), (1e-3, 0.05)):
                for seed in range(3):
                    val = base + bump + 0.013 * seed + (0.002 if task == "glue_rte" else 0.0)
                    test = val - 0.03 + 0.007 * seed
                    write_record(root, make_record(task=task, method=method, seed=seed, lr=lr, val=val, test=test))
                    truth.setdefault((method, task, lr), []).append((val, test))
    return truth


def test_mean_std_and_best_lr_match_the_files(tmp_path):
    truth = _write_method_grid(tmp_path / "runs")
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False)
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert set(rows) == {"lora", "dora"}
    for method in ("lora", "dora"):
        # synthetic has labelled test data: score = test at the lr with the best validation mean
        tests = [t for _, t in truth[(method, "synthetic", 1e-3)]]
        assert float(rows[method]["synthetic_mean"]) == pytest.approx(statistics.mean(tests), abs=1e-12)
        assert float(rows[method]["synthetic_std"]) == pytest.approx(statistics.stdev(tests), abs=1e-12)
        assert rows[method]["synthetic_n"] == "3" and rows[method]["synthetic_setting"].startswith("optim.lr=0.001")
        # GLUE has no test labels: score = validation (dev), as the papers report
        vals = [v for v, _ in truth[(method, "glue_rte", 1e-3)]]
        assert float(rows[method]["glue_rte_mean"]) == pytest.approx(statistics.mean(vals), abs=1e-12)
        avg = (float(rows[method]["synthetic_mean"]) + float(rows[method]["glue_rte_mean"])) / 2
        assert float(rows[method]["avg"]) == pytest.approx(avg)
    md = result["markdown"]
    lora_tests = [t for _, t in truth[("lora", "synthetic", 1e-3)]]
    assert f"<ins>{100 * statistics.mean(lora_tests):.2f}</ins> ± {100 * statistics.stdev(lora_tests):.2f}" in md  # second of 2: underlined
    assert "Synthetic = test Acc" in md and "RTE = dev Acc" in md


def test_best_setting_is_chosen_on_validation_not_test(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):  # lr 1e-4: better validation, worse test; lr 1e-3: the reverse
        write_record(root, make_record(lr=1e-4, seed=seed, val=0.80 + 0.01 * seed, test=0.60))
        write_record(root, make_record(lr=1e-3, seed=seed, val=0.70 + 0.01 * seed, test=0.95))
    report([root], out=tmp_path / "out", plots=False)
    (row,) = _csv_rows(tmp_path / "out")
    assert float(row["synthetic_mean"]) == pytest.approx(0.60)
    assert row["synthetic_setting"].startswith("optim.lr=0.0001")


def test_failed_corrupt_truncated_missing_are_listed_and_never_averaged(tmp_path):
    root = tmp_path / "runs"
    good = [0.80, 0.84]
    for seed, val in enumerate(good):
        write_record(root, make_record(seed=seed, val=val, test=val))
    write_record(root, make_record(seed=2, status="failed"))
    write_record(root, make_record(seed=3, status="running"))
    truncated = write_record(root, make_record(seed=4, val=0.99, test=0.99))
    truncated.write_text(truncated.read_text()[:150])  # a half-written file
    garbage = write_record(root, make_record(seed=5, val=0.99, test=0.99))
    garbage.write_bytes(b"\xff\xfe not json")
    (root / "fab" / "sweep_plan.json").write_text(json.dumps({"study": "fab", "trials": [
        {"index": 0, "subdir": "synthetic/tiny_bert/lora-r8-a16-kaiming-qv/lr0.0005-seed0", "overrides": ["seed=0"]},
        {"index": 9, "subdir": "synthetic/tiny_bert/lora-r8-a16-kaiming-qv/lr0.0005-seed9", "overrides": ["seed=9"]},
    ]}))
    result = report([root], out=tmp_path / "out", plots=False)
    (row,) = _csv_rows(tmp_path / "out")
    assert float(row["synthetic_mean"]) == pytest.approx(statistics.mean(good)) and row["synthetic_n"] == "2"
    assert row["synthetic_unfinished"] == "2"  # the failed and the running trial of this cell
    counts = result["trials"]["status"].value_counts().to_dict()
    assert counts == {"success": 2, "failed": 1, "running": 1, "corrupt": 2, "missing": 1}
    md = result["markdown"]
    assert "Trials: 7 (2 success, 1 failed, 0 cancelled, 1 running, 2 corrupt, 1 missing" in md
    assert re.search(r"- failed: `.*seed2` -- RuntimeError: boom", md)
    assert re.search(r"- corrupt: `.*seed4` -- JSONDecodeError", md) and re.search(r"- corrupt: `.*seed5` -- UnicodeDecodeError", md)
    assert re.search(r"- missing: `.*seed9` -- no result.json; planned as: seed=9", md)
    assert "| LoRA | 8.2K | 0.0005 | 82.00 (n=2)* |" in md  # 2 seeds: no ±; one column: no Avg
    with open(tmp_path / "out" / "trials.csv") as fh:
        assert sorted(r["status"] for r in csv.DictReader(fh)) == sorted(["success"] * 2 + ["failed", "running", "corrupt", "corrupt", "missing"])


def test_run_at_chance_is_flagged(tmp_path):
    root = tmp_path / "runs"
    write_record(root, make_record(method="adalora", seed=0, val=0.52, test=0.5, majority=0.52, curve=[0.52, 0.52]))
    write_record(root, make_record(method="adalora", seed=1, val=0.70, test=0.7, majority=0.52, curve=[0.52, 0.70]))
    write_record(root, make_record(method="lora", seed=0, val=0.80, test=0.8, majority=0.52))
    result = report([root], out=tmp_path / "out", plots=False)
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert rows["adalora"]["synthetic_at_chance"] == "1" and rows["lora"]["synthetic_at_chance"] == "0"
    assert "<ins>60.00</ins> (n=2)† |" in result["markdown"]  # 2 seeds: no ±
    assert re.search(r"At chance level on validation \(1 run\(s\).*\n- `.*adalora.*seed0`: best val 52.00 vs chance 52.00", result["markdown"])


def test_rows_split_by_varying_knobs_and_init(tmp_path):
    root = tmp_path / "runs"
    for r in (2, 8):
        write_record(root, make_record(r=r, val=0.6 + r / 100, test=0.6))
    write_record(root, make_record(init="pissa", val=0.9, test=0.9))
    agg = report([root], out=tmp_path / "out", plots=True)["aggregate"]
    assert agg.row_keys == ["method", "cfg.adapter.r", "cfg.adapter.init"]
    keys = [tuple(r[:3]) for r in agg.cells[agg.row_keys].itertuples(index=False, name=None)]
    assert keys == [("lora", 2, "kaiming"), ("lora", 8, "kaiming"), ("lora", 8, "pissa")]
    assert (tmp_path / "out" / "plots" / "score_vs_rank.png").stat().st_size > 1000
    assert (tmp_path / "out" / "plots" / "score_vs_params.png").stat().st_size > 1000
    by_r = report([root], out=tmp_path / "out2", plots=False, by=["r"])["aggregate"]
    # the init names the method (PiSSA): a row key whatever --by says, unless asked for as a nuisance
    assert by_r.row_keys == ["method", "cfg.adapter.init", "cfg.adapter.r"] and "cfg.adapter.init" not in by_r.setting_keys
    best_init = report([root], out=tmp_path / "out4", plots=False, by=["r"], nuisance=("optim.lr", "lr_scale", "adapter.init"))["aggregate"]
    assert best_init.row_keys == ["method", "cfg.adapter.r"] and "cfg.adapter.init" in best_init.setting_keys  # best over init, as asked
    with pytest.raises(ConfigError, match=r"^--by: unknown key 'rank'; allowed: .*\br\b"):
        report([root], out=tmp_path / "out3", plots=False, by=["rank"])


@pytest.mark.parametrize("older,newer,kept,mean", [
    ("2026-01-01T00:00:00", "2026-02-01T00:00:00", "b", 0.9),
    # 00:30+01:00 is 23:30 UTC the day before: older than 00:00 UTC although it sorts later as text
    ("2026-01-01T00:30:00+0100", "2026-01-01T00:00:00+0000", "a", 0.7),
])
def test_duplicate_runs_keep_the_one_written_last_in_real_time(tmp_path, older, newer, kept, mean):
    write_record(tmp_path / "a", make_record(val=0.7, test=0.7, written_at=newer if kept == "a" else older))
    write_record(tmp_path / "b", make_record(val=0.9, test=0.9, written_at=newer if kept == "b" else older))
    result = report([tmp_path / "a", tmp_path / "b"], out=tmp_path / "out", plots=False)
    (row,) = _csv_rows(tmp_path / "out")
    assert float(row["synthetic_mean"]) == pytest.approx(mean) and row["synthetic_n"] == "1"
    ignored = "b" if kept == "a" else "a"
    assert re.search(rf"duplicate .*: `.*/{ignored}/.*` ignored, `.*/{kept}/.*` used", result["markdown"])


def test_reference_rows_from_configs(tmp_path):
    ref = {"label": "LoRA (paper)", "params": "0.3M", "scores": {"glue_rte": 86.6, "synthetic": 90.0}}
    write_record(tmp_path / "runs", make_record(task="glue_rte", val=0.8, extra_cfg={"reference": ref}))
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False)
    assert "| LoRA (paper) [published] | 0.3M | – | 86.60 |" in result["markdown"]
    rows = _csv_rows(tmp_path / "out")
    assert [r["reference"] for r in rows] == ["0", "1"] and float(rows[1]["glue_rte_mean"]) == pytest.approx(0.866)


def test_markdown_renders_as_a_table(tmp_path):
    from markdown_it import MarkdownIt

    _write_method_grid(tmp_path / "runs")
    md = report([tmp_path / "runs"], out=tmp_path / "out", plots=False)["markdown"]
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == 1 and html.count("<tr>") == 3  # header + lora + dora
    header = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    assert re.findall(r"<th[^>]*>(.*?)</th>", header) == ["Method", "#Params", "lr", "RTE (Acc)", "Synthetic (Acc)", "Avg"]
    for body_row in re.findall(r"<tr>(.*?)</tr>", re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1), re.S):
        assert len(re.findall(r"<td", body_row)) == 6


def test_cli_errors_are_one_line(tmp_path, capsys):
    from lora_lab.cli import main as cli_main

    assert cli_main(["report", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: PATH: ")
    (tmp_path / "empty").mkdir()
    assert cli_main(["report", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.strip() == f"error: PATH: no result.json under {tmp_path / 'empty'}"
    write_record(tmp_path / "runs", make_record(val=0.8, test=0.8))
    assert cli_main(["report", str(tmp_path / "runs"), "--format", "docx"]) == 2
    assert capsys.readouterr().err.strip() == "error: --format: unknown format 'docx'; allowed: md, latex, csv"
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--format", "md"]) == 0
    assert (tmp_path / "o" / "table.md").is_file() and not (tmp_path / "o" / "table.tex").exists()
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["status_counts"] == {"success": 1} and meta["git"]["sha"] and meta["versions"]["pandas"]


def test_only_bad_files_does_not_crash(tmp_path):
    bad = write_record(tmp_path / "runs", make_record(val=0.8))
    bad.write_text("{")
    write_record(tmp_path / "runs", make_record(seed=1, status="failed"))
    odd = make_record(seed=2, val=0.8)
    odd["metrics"]["best_val"] = {}  # e.g. a fast_dev_run: success but nothing evaluated
    write_record(tmp_path / "runs", odd)
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=True)
    (cell,) = result["aggregate"].cells.to_dict("records")  # the planned cell stays, empty, with both trials counted
    assert cell["n"] == 0 and cell["n_unfinished"] == 2 and cell["mean"] != cell["mean"]
    assert "| LoRA | – | – | –* |" in result["markdown"]
    assert "1 failed" in result["markdown"] and "1 corrupt" in result["markdown"]
    assert re.search(r"- success without a validation value \(not in the table\): `.*seed2`", result["markdown"])


def test_columns_without_test_split_say_the_score_is_the_selection_split(tmp_path):
    """GLUE has no labelled test: the cell is the dev value chosen on dev, and the notes say so (only for those columns)."""
    root = tmp_path / "runs"
    _write_method_grid(root)
    md = report([root], out=tmp_path / "out", plots=False)["markdown"]
    note = next(line for line in md.splitlines() if "no labelled test split" in line)
    assert note.startswith("- RTE: no labelled test split") and "Synthetic" not in note
    assert "RTE = dev Acc" in md and "Synthetic = test Acc" in md
