"""A real 2 x 2 study (rank x seed) on a tiny random BERT, launched by ``lora-lab sweep`` with the
parallel (joblib) launcher, then ``lora-lab report``: every number in the table is checked against
the result.json files it read."""

import csv
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = """# Trials: 4
defaults:
  - train
  - override /backbone: tiny_bert
  - override hydra/launcher: parallel
  - _self_
study: tiny2x2
task: {train_size: 96, val_size: 48, test_size: 48, batch_size: 16, max_length: 16}
trainer: {max_steps: 12, max_epochs: -1, val_check_interval: 4, check_val_every_n_epoch: null}
optim: {lr: 1e-2}
hydra:
  sweeper:
    params:
      adapter.r: 2,4
      seed: 0,1
"""


def _cli(tmp_path, *args):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_parallel_sweep_then_report_matches_result_files(tmp_path):
    study = tmp_path / "tiny2x2.yaml"
    study.write_text(STUDY)
    dry = _cli(tmp_path, "sweep", str(study), "dry_run=true")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "study tiny2x2: 4 trials" in dry.stdout and dry.stdout.count("[      new]") == 4
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing

    proc = _cli(tmp_path, "sweep", str(study))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]  # one per finished trial
    assert [ln.split("]")[0] for ln in trial_lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(" success val=" in ln for ln in trial_lines) and "\r" not in proc.stdout
    assert "study tiny2x2: 4/4 trials succeeded" in proc.stderr
    sweep_dir = tmp_path / "runs" / "tiny2x2"
    plan = json.loads((sweep_dir / "sweep_plan.json").read_text())
    assert len(plan["trials"]) == 4
    records = {}
    for trial in plan["trials"]:
        record = json.loads((sweep_dir / trial["subdir"] / "result.json").read_text())
        assert record["status"] == "success" and record["optimizer_steps"] == 12
        assert record["torch_threads"] == max(1, os.cpu_count() // 2)  # 2 jobs share the cores
        records[(record["config"]["adapter"]["r"], record["config"]["seed"])] = record
        assert trial["config"] == {k: v for k, v in record["config"].items() if k in trial["config"]}  # the plan places a missing trial

    out = tmp_path / "results"
    rep = _cli(tmp_path, "report", str(sweep_dir), "--out", str(out))
    assert rep.returncode == 0, rep.stderr[-3000:]
    with open(out / "table.csv") as fh:
        rows = {int(r["r"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {2, 4}
    for r, row in rows.items():
        tests = [records[(r, s)]["metrics"]["test"]["test/accuracy"] for s in (0, 1)]
        assert float(row["synthetic_mean"]) == pytest.approx(statistics.mean(tests), abs=1e-9)
        assert float(row["synthetic_std"]) == pytest.approx(statistics.stdev(tests), abs=1e-9)
        assert row["synthetic_n"] == "2"
        assert int(row["trainable_params"]) == records[(r, 0)]["params"]["trainable_params"]
        at_chance = sum(max(p["val/accuracy"] for p in records[(r, s)]["curve"]) <= records[(r, s)]["baselines"]["majority_val"] + 0.005 for s in (0, 1))
        assert row["synthetic_at_chance"] == str(at_chance)
        mean = 100 * statistics.mean(tests)  # 2 seeds: no spread in the cell, n shown instead (the std stays in table.csv)
        assert re.search(rf"\| LoRA \| {r} \| {re.escape(row['params'])} \| 0.01 \| (\*\*|<ins>)?{mean:.2f}(\*\*|</ins>)? \(n=2\)", rep.stdout)
    assert "Trials: 4 (4 success, 0 failed" in rep.stdout
    # a degenerate panel (every run at chance, or every point at one value) is skipped, never drawn empty
    degenerate = all(r["synthetic_at_chance"] == r["synthetic_n"] for r in rows.values()) or len({r["synthetic_mean"] for r in rows.values()}) == 1
    drawn = (out / "plots" / "score_vs_rank.png").is_file() and (out / "plots" / "score_vs_rank.pdf").is_file()
    assert drawn != degenerate and (out / "trials.csv").is_file()
    assert "<h1>Study: tiny2x2</h1>" in (out / "index.html").read_text()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status_counts"] == {"success": 4} and meta["row_keys"] == ["method", "cfg.adapter.r"]

    again = _cli(tmp_path, "sweep", str(study), "dry_run=true")
    assert again.stdout.count("[  success]") == 4  # a rerun would skip all of them

    # a changed config whose run dirs hold finished results: refused before any trial starts (seed 2 is new)
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    clash = _cli(tmp_path, "sweep", str(study), "trainer.max_steps=16", "seed=0,1,2")
    assert clash.returncode == 2 and "already holds a finished result of a different config" in clash.stderr
    assert [ln for ln in clash.stderr.splitlines() if ln.startswith("error: ")] == [clash.stderr.strip().splitlines()[-1]]
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before  # nothing written, no seed-2 trial
