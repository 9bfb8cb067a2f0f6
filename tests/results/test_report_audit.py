"""Regressions from the report audit: every number the table shows is the statistic of the files,
nothing planned vanishes, nothing incomparable is averaged together, no file crashes the report."""

import csv
import json
import re
import statistics

import pytest

from lora_lab.results.report import report
from tests.results.fake_results import make_record, write_record


def _csv_rows(out):
    with open(out / "table.csv") as fh:
        return list(csv.DictReader(fh))


def test_rows_with_a_missing_key_value_show_their_numbers_once(tmp_path):
    """AdaLoRA's target_r is a row key; LoRA rows lack it (NaN) and must still be found (budget_matched)."""
    root = tmp_path / "runs"
    truth = {}
    for task in ("glue_sst2", "glue_rte"):
        for seed in range(2):
            for r in (4, 16):
                val = 0.7 + r / 100 + seed / 100 + (0.003 if task == "glue_rte" else 0)
                write_record(root, make_record(task=task, method="lora", r=r, seed=seed, val=val))
                truth.setdefault(("lora", str(r), "–", task), []).append(val)
            for tr in (2, 8):
                val = 0.6 + tr / 100 + seed / 100
                write_record(root, make_record(task=task, method="adalora", r=12, seed=seed, val=val, init="adalora", adapter_extra={"target_r": tr}))
                truth.setdefault(("adalora", "12", str(tr), task), []).append(val)
    result = report([root], out=tmp_path / "out", plots=False)
    rows = _csv_rows(tmp_path / "out")
    keys = [(r["method"], r["r"], r["target_r"]) for r in rows]
    assert sorted(keys) == sorted({k[:3] for k in truth}) and len(keys) == len(set(keys)) == 4
    for row in rows:
        for task in ("glue_sst2", "glue_rte"):
            vals = truth[(row["method"], row["r"], row["target_r"], task)]
            assert float(row[f"{task}_mean"]) == pytest.approx(statistics.mean(vals), abs=1e-12)
            assert row[f"{task}_n"] == "2"
        assert row["avg"] != ""
    lora4 = statistics.mean(truth[("lora", "4", "–", "glue_sst2")])
    assert re.search(rf"\| LoRA \| 4 \| – \| .* \| <ins>{100 * lora4:.2f}</ins> \(n=2\) \|", result["markdown"])  # 2 seeds: no ±


@pytest.mark.parametrize("bad", [
    {"status": "success", "metrics": ["x"]},
    {"config": {"task": "glue_rte"}},
    {"git": "abc"},
    {"status": "success", "config": {"task": {"name": "synthetic"}, "adapter": {"method": "lora"}}, "primary_metric": "val/accuracy",
     "metrics": {"best_val": [0.99]}},
    {"status": "success", "params": [8192]},
], ids=["metrics-list", "task-string", "git-string", "best-val-list", "params-list"])
def test_wrongly_shaped_result_json_is_a_listed_corrupt_trial(tmp_path, bad):
    root = tmp_path / "runs"
    for seed, val in enumerate((0.80, 0.84)):
        write_record(root, make_record(seed=seed, val=val, test=val))
    odd = root / "odd" / "result.json"
    odd.parent.mkdir(parents=True)
    odd.write_text(json.dumps(bad))
    result = report([root], out=tmp_path / "out", plots=False)
    assert result["trials"]["status"].value_counts().to_dict() == {"success": 2, "corrupt": 1}
    assert re.search(r"- corrupt: `.*/odd` -- malformed result\.json: ", result["markdown"])
    (row,) = _csv_rows(tmp_path / "out")
    assert float(row["synthetic_mean"]) == pytest.approx(0.82) and row["synthetic_n"] == "2"


def test_planned_cells_whose_runs_all_failed_stay_in_the_table(tmp_path):
    root = tmp_path / "runs"
    for method in ("lora", "dora"):
        for seed in range(2):
            write_record(root, make_record(task="glue_sst2", method=method, seed=seed, val=0.90 + 0.02 * seed))
            write_record(root, make_record(task="glue_cola", method=method, seed=seed, status="failed"))
    for seed in range(2):
        write_record(root, make_record(task="glue_sst2", method="adalora", seed=seed, status="cancelled"))
        write_record(root, make_record(task="glue_sst2", method="lora", r=64, seed=seed, status="failed"))  # a planned rank, all failed
    result = report([root], out=tmp_path / "out", plots=False)
    md = result["markdown"]
    assert "| Method | r | #Params | lr | SST-2 (Acc) | CoLA (?) |" in md  # no CoLA run finished: metric unknown, so no Avg
    assert "| AdaLoRA | 8 | – | – | –* | – |" in md
    assert "| DoRA | 8 | 8.2K | 0.0005 | 91.00 (n=2) | –* |" in md  # every ranked cell ties: no bold
    assert "| LoRA | 8 | 8.2K | 0.0005 | 91.00 (n=2) | –* |" in md
    assert "| LoRA | 64 | – | – | –* | – |" in md
    assert "CoLA = ? (no finished run)" in md
    rows = {(r["method"], r["r"]): r for r in _csv_rows(tmp_path / "out")}
    assert rows[("lora", "8")]["glue_cola_unfinished"] == "2" and rows[("lora", "8")]["glue_cola_n"] == "0"
    assert rows[("lora", "8")]["glue_cola_mean"] == "" and "avg" not in rows[("lora", "8")]
    assert rows[("adalora", "8")]["glue_sst2_unfinished"] == "2" and rows[("lora", "64")]["glue_sst2_unfinished"] == "2"


def _adalora_record(seed, val, summary, r_init=6, shapes=((32, 32),) * 4):
    init_params = sum(r_init * (i + o + 1) for i, o in shapes)
    rec = make_record(method="adalora", init="adalora", r=r_init, seed=seed, val=val, test=val, adapter_params=init_params, adapter_extra={"target_r": 2})
    rec["method_summary"] = summary
    return rec, init_params


def test_adalora_params_are_the_final_rank_pattern(tmp_path):
    root = tmp_path / "runs"
    shapes = {f"layer.{i}.{m}": [32, 32] if m == "query" else [32, 64] for i in range(2) for m in ("query", "value")}
    pattern = {"layer.0.query": 3, "layer.0.value": 1, "layer.1.query": 0, "layer.1.value": 4}
    final = sum(r * (shapes[k][0] + shapes[k][1] + 1) for k, r in pattern.items())  # 3*65 + 1*97 + 0 + 4*97 = 680
    for seed in range(2):
        summary = {"adapter_params_final": final, "rank_pattern": pattern, "module_shapes": shapes, "r_init": 6}
        rec, init_params = _adalora_record(seed, 0.8, summary, shapes=[tuple(v) for v in shapes.values()])
        write_record(root, rec)
        write_record(root, make_record(method="lora", seed=seed, val=0.8, test=0.8, adapter_params=1000))
    result = report([root], out=tmp_path / "out", plots=False)
    assert final == 680 and init_params == 6 * (65 + 97 + 65 + 97)
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert rows["adalora"]["params"] == "680" and rows["adalora"]["adapter_params"] == "680" and rows["adalora"]["params_init"] == str(init_params)
    assert rows["lora"]["params"] == "1.0K" and rows["lora"]["adapter_params"] == rows["lora"]["params_init"] == "1000"  # unchanged
    assert "#Params = the adapter as trained: for a method that prunes in training, the parameters it keeps" in result["markdown"]
    assert "(allocated)" not in result["markdown"]
    with open(tmp_path / "out" / "trials.csv") as fh:
        ada = [r for r in csv.DictReader(fh) if r["method"] == "adalora"]
    assert {(r["adapter_params"], r["adapter_params_final"]) for r in ada} == {(str(init_params), "680")}


def test_a_pruning_method_without_its_trained_count_is_marked_as_the_allocation(tmp_path):
    """A record written before methods reported ``adapter_params_final``: AdaLoRA's count changes in
    training, so the allocation is shown, marked; LoRA's cannot, so its recorded count is exact."""
    rec, init_params = _adalora_record(0, 0.8, {"rank_pattern": {"a": 1, "b": 2, "c": 3, "d": 4}, "r_init": 6})
    write_record(tmp_path / "runs", rec)
    lora = make_record(method="lora", seed=0, val=0.8, test=0.8, adapter_params=1000)
    lora.pop("method_summary", None)
    write_record(tmp_path / "runs", lora)
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False)
    assert init_params == 1560 and "| AdaLoRA | 1.6K (allocated) |" in result["markdown"] and "| LoRA | 1.0K |" in result["markdown"]
    assert "(allocated): the runs' result files do not give the trained adapter's parameter count" in result["markdown"]
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert rows["adalora"]["adapter_params"] == "" and rows["adalora"]["params_init"] == "1560"
    assert rows["lora"]["adapter_params"] == rows["lora"]["params_init"] == "1000"


def test_runs_with_different_primary_metrics_are_never_averaged_together(tmp_path):
    root = tmp_path / "runs"
    for seed, (metric, val) in enumerate([("accuracy", 0.80), ("accuracy", 0.82), ("f1", 0.40)]):
        rec = make_record(task="glue_mrpc", seed=seed, val=val)
        rec["primary_metric"] = f"val/{metric}"
        rec["metrics"]["best_val"] = {f"val/{metric}": val}
        rec["curve"] = [{f"val/{metric}": val}]
        write_record(root, rec)
    write_record(root, make_record(task="glue_mrpc", seed=3, status="failed"))
    result = report([root], out=tmp_path / "out", plots=False)
    (row,) = _csv_rows(tmp_path / "out")
    assert float(row["glue_mrpc:accuracy_mean"]) == pytest.approx(0.81) and row["glue_mrpc:accuracy_n"] == "2"
    assert float(row["glue_mrpc:f1_mean"]) == pytest.approx(0.40) and row["glue_mrpc:f1_n"] == "1"
    assert "avg" not in row  # the task is split by metric: no average over its two columns
    assert row["glue_mrpc:f1_unfinished"] == "1"  # a failed run counts towards the newest run's metric (f1, seed 2)
    assert "MRPC: the runs report different primary metrics (Acc, F1)" in result["markdown"]


def test_runs_from_several_code_versions_are_named_under_the_table(tmp_path):
    root = tmp_path / "runs"
    for seed in range(3):
        rec = make_record(seed=seed, val=0.8, test=0.8)
        rec["git"] = {"sha": "abc" if seed < 2 else "def", "dirty": seed == 0}
        write_record(root, rec)
    md = report([root], out=tmp_path / "out", plots=False)["markdown"]
    assert "- Code versions: the averaged runs come from 2 git SHA(s) (abc, def); 1 cell(s) average runs of different SHAs; " \
           "1 run(s) from a dirty tree (uncommitted changes). See trials.csv (git_sha, git_commits, git_dirty)." in md
    same = tmp_path / "same"
    write_record(same, make_record(val=0.8, test=0.8))
    assert "Code versions" not in report([same], out=tmp_path / "out2", plots=False)["markdown"]


def test_a_run_resumed_under_another_commit_or_begun_on_a_dirty_tree_says_so(tmp_path):
    """The record's top-level git is the last process's; each attempt keeps its own. A run that began on a
    dirty tree and finished on a clean commit is dirty, and a run that spans two commits mixes SHAs."""
    root = tmp_path / "runs"
    for seed in range(3):
        rec = make_record(seed=seed, val=0.8, test=0.8)
        rec["git"] = {"sha": "def", "dirty": False}
        first = {"sha": "abc" if seed == 0 else "def", "dirty": seed == 0}
        rec["attempts"] = [{"pid": 1, "wall_s": 5.0, "ended": "cancelled", "git": first}, {"pid": 2, "wall_s": 5.0, "ended": "success", "git": rec["git"]}]
        write_record(root, rec)
    result = report([root], out=tmp_path / "out", plots=False)
    assert "- Code versions: the averaged runs come from 2 git SHA(s) (abc, def); 1 cell(s) average runs of different SHAs; " \
           "1 run(s) resumed under another commit than the one they started with; 1 run(s) from a dirty tree (uncommitted changes)." in result["markdown"]
    trials = result["trials"].set_index("seed")
    assert trials.loc[0, "git_commits"] == "abc+def" and bool(trials.loc[0, "git_dirty"]) is True and trials.loc[0, "git_sha"] == "def"
    assert trials.loc[1, "git_commits"] == "def" and bool(trials.loc[1, "git_dirty"]) is False


def test_a_run_without_test_value_does_not_switch_the_column_to_validation(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_record(root, make_record(method="lora", seed=seed, val=0.70, test=0.90 + 0.02 * seed))
    write_record(root, make_record(method="dora", seed=0, val=0.70, test=0.95))
    write_record(root, make_record(method="dora", seed=1, val=0.70, test=None))  # test_after_fit=false
    result = report([root], out=tmp_path / "out", plots=False)
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert float(rows["lora"]["synthetic_mean"]) == pytest.approx(0.91) and rows["lora"]["synthetic_unfinished"] == "0"
    assert float(rows["dora"]["synthetic_mean"]) == pytest.approx(0.95) and rows["dora"]["synthetic_n"] == "1"
    assert rows["dora"]["synthetic_unfinished"] == "1"
    md = result["markdown"]
    assert "Synthetic = test Acc" in md and re.search(r"\| DoRA \| 8.2K \| 0.0005 \| \*\*95.00\*\* \(n=1\)\* \|", md)
    assert re.search(r"- incomplete \(success, not averaged in\): `.*dora.*seed1` -- no test metric", md)


def test_planned_trials_without_result_json_keep_their_cell(tmp_path):
    """A sweep plan records each trial's config: a method none of whose runs started is still a row."""
    root = tmp_path / "runs"
    planned = []
    for method in ("lora", "dora"):
        for seed in range(2):
            rec = make_record(task="glue_rte", method=method, seed=seed, val=0.8 + 0.02 * seed)
            if method == "lora":
                write_record(root, rec)
            planned.append({"index": len(planned), "subdir": rec["run_name"], "overrides": [f"seed={seed}"], "config": rec["config"]})
    (root / "fab" / "sweep_plan.json").write_text(json.dumps({"study": "fab", "trials": planned}))
    result = report([root], out=tmp_path / "out", plots=False)
    assert result["trials"]["status"].value_counts().to_dict() == {"success": 2, "missing": 2}
    assert "| DoRA | – | – | –* |" in result["markdown"] and "| LoRA | 8.2K | 0.0005 | 81.00 (n=2) |" in result["markdown"]
    rows = {r["method"]: r for r in _csv_rows(tmp_path / "out")}
    assert rows["dora"]["glue_rte_unfinished"] == "2" and rows["lora"]["glue_rte_unfinished"] == "0"


def test_a_task_with_only_planned_trials_is_labelled_with_the_metric_its_task_will_report(tmp_path):
    """No STS-B trial has run yet: its column and notes still name Pearson, the primary metric of the
    planned task config (known before any data is read), never '?'."""
    root = tmp_path / "runs"
    planned = []
    for seed in range(2):
        write_record(root, make_record(task="glue_cola", seed=seed, val=0.3 + 0.02 * seed))
        rec = make_record(task="glue_stsb", seed=seed)
        rec["config"]["task"] = {"name": "glue_stsb", "kind": "glue", "glue_task": "stsb", "batch_size": 32}
        planned.append({"index": seed, "subdir": rec["run_name"], "overrides": [f"seed={seed}"], "config": rec["config"]})
    (root / "fab" / "sweep_plan.json").write_text(json.dumps({"study": "fab", "trials": planned}))
    result = report([root], out=tmp_path / "out", plots=False)
    md = result["markdown"]
    assert "| Method | #Params | lr | CoLA (MCC) | STS-B (Pearson) |" in md
    assert "STS-B = Pearson (no finished run)" in md
    assert "STS-B Pearson (no finished run)" in (tmp_path / "out" / "table.tex").read_text()


def test_runs_on_several_kinds_of_machine_and_a_run_resumed_on_another_say_so(tmp_path):
    """Each attempt records its machine; a run whose attempts ran on two kinds lists both in trials.csv,
    and the note under the table counts the kinds and the runs that changed machine part-way."""
    epyc = {"cpu": "AMD EPYC 7763", "cpus": 2, "devices": "cpu"}
    xeon = {"cpu": "Intel(R) Xeon(R) Processor", "cpus": 2, "devices": "cpu"}
    root = tmp_path / "runs"
    for seed, machines in enumerate(([epyc, xeon], [epyc], [epyc, epyc])):
        rec = make_record(seed=seed, val=0.8, test=0.8)
        rec["attempts"] = [{"pid": i, "wall_s": 5.0, "ended": "success" if i == len(machines) - 1 else "cancelled", "git": rec["git"], "machine": m}
                           for i, m in enumerate(machines)]
        write_record(root, rec)
    result = report([root], out=tmp_path / "out", plots=False)
    assert "- Machines: the averaged runs ran on 2 kinds of machine (AMD EPYC 7763 (2 cpus; cpu); Intel(R) Xeon(R) Processor (2 cpus; cpu)); " \
           "1 run(s) resumed on another kind than the one they started with (a continuation, not bit for bit one machine's run). " \
           "See trials.csv (machines)." in result["markdown"]
    trials = result["trials"].set_index("seed")
    assert trials.loc[0, "machines"] == "AMD EPYC 7763 (2 cpus; cpu) + Intel(R) Xeon(R) Processor (2 cpus; cpu)"
    assert trials.loc[1, "machines"] == trials.loc[2, "machines"] == "AMD EPYC 7763 (2 cpus; cpu)"
    one = tmp_path / "one"
    for seed in range(2):
        rec = make_record(seed=seed, val=0.8, test=0.8)
        rec["attempts"] = [{"pid": 1, "wall_s": 5.0, "ended": "success", "git": rec["git"], "machine": xeon}]
        write_record(one, rec)
    assert "Machines" not in report([one], out=tmp_path / "out2", plots=False)["markdown"]  # one kind: nothing to say


def test_by_keeps_what_names_the_method_a_row_key_so_a_lora_row_never_shows_pissa(tmp_path):
    """``--by r`` over LoRA and PiSSA (LoRA with init=pissa) at two lrs: the init names the method, so it
    stays a row key (two rows), and each row's lr is chosen on dev among its own runs only."""
    root = tmp_path / "runs"
    for seed in range(3):
        for lr, lora_val, pissa_val in ((5e-4, 0.70, 0.90), (2e-3, 0.72, 0.60)):
            write_record(root, make_record(seed=seed, lr=lr, val=lora_val + seed / 100, test=lora_val + seed / 100))
            write_record(root, make_record(seed=seed, lr=lr, init="pissa", val=pissa_val + seed / 100, test=pissa_val + seed / 100))
    report([root], out=tmp_path / "out", plots=False, by=["r"])
    rows = {(r["method"], r["init"]): r for r in _csv_rows(tmp_path / "out")}
    assert set(rows) == {("lora", "kaiming"), ("lora", "pissa")}
    assert float(rows[("lora", "kaiming")]["synthetic_mean"]) == pytest.approx(0.73)  # LoRA's own best lr (2e-3), not PiSSA's 0.91
    assert float(rows[("lora", "pissa")]["synthetic_mean"]) == pytest.approx(0.91)


def test_by_a_nuisance_key_gives_one_row_per_value_and_by_an_axis_is_one_error_line(tmp_path, capsys):
    from lora_lab.cli import main as cli_main

    root = tmp_path / "runs"
    for seed in range(3):
        for lr, val in ((5e-4, 0.70), (2e-3, 0.80)):
            write_record(root, make_record(seed=seed, lr=lr, val=val, test=val))
    assert cli_main(["report", str(root), "--out", str(tmp_path / "o1"), "--by", "optim.lr", "--no-plots"]) == 0
    rows = _csv_rows(tmp_path / "o1")
    assert sorted((float(r["optim.lr"]), float(r["synthetic_mean"])) for r in rows) == [(5e-4, pytest.approx(0.70)), (2e-3, pytest.approx(0.80))]
    for key, what in (("task", "'task' is the table's column axis, not a row key"), ("seed", "'seed' is what a cell averages over, not a row key"),
                      ("val", "unknown key 'val'"), ("status", "unknown key 'status'")):
        capsys.readouterr()
        assert cli_main(["report", str(root), "--out", str(tmp_path / f"o_{key}"), "--by", key, "--no-plots"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: --by: {what}; allowed: ") and "optim.lr" in err[0], err
        assert not (tmp_path / f"o_{key}").exists()


def test_nuisance_on_an_axis_is_one_error_line_naming_its_role(tmp_path, capsys):
    from lora_lab.cli import main as cli_main

    root = tmp_path / "runs"
    for seed in range(2):
        write_record(root, make_record(seed=seed, val=0.7, test=0.7))
    assert cli_main(["report", str(root), "--out", str(tmp_path / "o"), "--nuisance", "seed", "--no-plots"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error: --nuisance: 'seed' is what a cell averages over, not a setting to choose over; allowed: ")
    assert not (tmp_path / "o").exists()
