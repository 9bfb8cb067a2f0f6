"""sweeps/keep_records.sh keeps the small files of every finished trial, the report built from them
equals the report of the runs, and --restore puts them back so a rerun finds those trials finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lora_lab.config.compose import compose
from lora_lab.train import train

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, seed: int, steps: int = 2) -> Path:
    overrides = ["debug=tiny", f"seed={seed}", f"trainer.max_steps={steps}", f"paths.runs_root={tmp_path / 'runs'}", "study=kept", "logger=csv"]
    cfg = compose(overrides)
    run_dir = tmp_path / "runs" / "kept" / f"seed{seed}"
    record = train(cfg, run_dir, overrides)
    assert record["status"] == "success"
    return run_dir


def test_records_rebuild_the_table_and_restore_as_finished(tmp_path):
    runs = [_run(tmp_path, seed) for seed in (0, 1)]
    unfinished = tmp_path / "runs" / "kept" / "broken"
    unfinished.mkdir()
    (unfinished / "result.json").write_text(json.dumps({"status": "failed"}))
    (runs[0] / "train.log").write_text("step 1/2  loss 0.69\n")  # what a run from the command line prints
    planned = [{"index": i, "subdir": f"seed{i}", "overrides": [f"seed={i}"]} for i in range(3)]  # seed2: planned, never run
    (tmp_path / "runs" / "kept" / "sweep_plan.json").write_text(json.dumps({"study": "kept", "trials": planned}))
    records = tmp_path / "records"
    proc = subprocess.run(["bash", "sweeps/keep_records.sh", str(tmp_path / "runs" / "kept"), str(records)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"kept the records of 2 finished trials in {records}", proc.stderr
    kept = sorted(str(p.relative_to(records)) for p in records.rglob("*") if p.is_file())
    assert kept == sorted([f"seed{s}/{f}" for s in (0, 1) for f in ("result.json", "logs/metrics.csv", "train.log", ".hydra/overrides.yaml",
                                                                     "predictions_val.jsonl", "predictions_test.jsonl")
                           if (runs[s] / f).is_file()] + ["sweep_plan.json"])
    assert "seed0/train.log" in kept
    assert "seed0/result.json" in kept and not (records / "broken").exists()
    assert not any(records.rglob("*.ckpt")) and not any(records.rglob("*.safetensors"))
    lab = str(Path(sys.executable).parent / "lora-lab")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for source, out in ((tmp_path / "runs" / "kept", "from_runs"), (records, "from_records")):
        report = subprocess.run([lab, "report", str(source), "--out", str(tmp_path / out), "--no-plots"], capture_output=True, text=True, env=env, timeout=300)
        assert report.returncode == 0, report.stderr[-2000:]
    table = lambda out: [line for line in (tmp_path / out / "table.md").read_text().splitlines() if line.startswith("|")]  # noqa: E731
    assert table("from_runs") == table("from_records") and len(table("from_runs")) >= 3
    # the kept plan still counts the planned trial that never ran (only successes are kept: "broken" is not)
    assert "Trials: 3 (2 success, 0 failed, 0 cancelled, 0 running, 0 corrupt, 1 missing" in (tmp_path / "from_records" / "table.md").read_text()
    restored = tmp_path / "restored"
    proc = subprocess.run(["bash", "sweeps/keep_records.sh", "--restore", str(records), str(restored)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((restored / "seed0" / "result.json").read_text()) == json.loads((runs[0] / "result.json").read_text())
    before = (restored / "seed0" / "result.json").read_bytes()
    overrides = ["debug=tiny", "seed=0", "trainer.max_steps=2", f"paths.runs_root={tmp_path / 'runs'}", "study=kept", "logger=csv"]
    again = train(compose(overrides), restored / "seed0", overrides)  # the rerun of a kept trial: finished, nothing trains
    assert again["status"] == "success" and (restored / "seed0" / "result.json").read_bytes() == before
    assert not (restored / "seed0" / "checkpoints").exists()
    (restored / "seed1" / "result.json").write_text("{}")  # --restore never overwrites what is there
    subprocess.run(["bash", "sweeps/keep_records.sh", "--restore", str(records), str(restored)], cwd=ROOT, check=True, timeout=60)
    assert (restored / "seed1" / "result.json").read_text() == "{}"


def test_a_finished_trials_directory_is_never_a_records_or_runs_target(tmp_path):
    run = tmp_path / "runs" / "kept" / "seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "success"}))
    (tmp_path / "runs" / "kept" / "sweep_plan.json").write_text(json.dumps({"trials": []}))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args, key in ((["sweeps/keep_records.sh", str(tmp_path / "runs" / "kept"), str(run)], "RECORDS_DIR"),
                      (["sweeps/keep_records.sh", "--restore", str(tmp_path / "runs" / "kept"), str(run)], "RUNS_DIR")):
        proc = subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.strip() == f"error: {key}: {run} is a trial's run directory (it holds result.json); allowed: a study's runs or records directory"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_an_unfinished_trial_is_kept_whole_and_resumes_on_another_machine_exactly(tmp_path):
    """A trial stopped part-way is kept whole (checkpoint included) in UNFINISHED_DIR; restored into a
    fresh runs dir (another machine: the first runs dir is gone) it resumes from that checkpoint and
    ends bit for bit where an uninterrupted run ends; once it has finished, its copy is removed."""
    import shutil

    import pytest
    import torch

    from lora_lab.resume.signals import RunPreempted
    from tests.resume.exact import STOP, assert_same_outcome, result, tiny_cfg

    reference = tmp_path / "reference"
    train(tiny_cfg(), reference)
    cfg = tiny_cfg(STOP, "+callbacks.stop.step=5")
    first = tmp_path / "machine1" / "study"
    with pytest.raises(RunPreempted):
        train(cfg, first / "trial")
    assert result(first / "trial")["status"] == "cancelled"
    sh = lambda *args: subprocess.run(["bash", "sweeps/keep_records.sh", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60)  # noqa: E731
    records, unfinished = tmp_path / "records", tmp_path / "unfinished"
    proc = sh(first, records, unfinished)
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        f"kept the records of 0 finished trials in {records}", f"kept 1 unfinished trials in {unfinished} (removed 0 that have since ended)"], proc.stderr
    kept = unfinished / "trial"
    assert torch.load(kept / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert (kept / "result.json").read_bytes() == (first / "trial" / "result.json").read_bytes()
    assert list((first / "trial").glob(".lock-rank*")) and not list(kept.glob(".lock-rank*"))  # the lock stays with its process
    shutil.rmtree(tmp_path / "machine1")

    second = tmp_path / "machine2" / "study"
    proc = sh("--restore", records, second, unfinished)
    assert proc.returncode == 0 and proc.stdout.strip() == f"restored 1 unfinished trials from {unfinished}", proc.stderr
    train(cfg, second / "trial")  # the next sitting's rerun: resumes at step 5
    final = result(second / "trial")
    assert [i["step"] for i in final["interruptions"]] == [5]
    assert_same_outcome(reference, second / "trial")
    proc = sh(second, records, unfinished)
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        f"kept the records of 1 finished trials in {records}", f"kept 0 unfinished trials in {unfinished} (removed 1 that have since ended)"], proc.stderr
    assert not kept.exists() and (records / "trial" / "result.json").is_file()
    # --restore never replaces a run dir that exists (here a finished one) with a kept unfinished copy
    (unfinished / "trial" / "checkpoints").mkdir(parents=True)
    (unfinished / "trial" / "checkpoints" / "last.ckpt").write_bytes(b"stale")
    before = (second / "trial" / "result.json").read_bytes()
    proc = sh("--restore", records, second, unfinished)
    assert proc.returncode == 0 and proc.stdout.strip() == f"restored 0 unfinished trials from {unfinished}", proc.stderr
    assert (second / "trial" / "result.json").read_bytes() == before
    assert (second / "trial" / "checkpoints" / "last.ckpt").read_bytes() != b"stale"


def test_only_the_records_own_status_decides_what_is_kept(tmp_path):
    """A "status" nested in the record (the config's own keys, an earlier attempt, a tracker) never
    counts: a running trial whose config says success is kept as unfinished, not as a finished record."""
    runs, records, unfinished = tmp_path / "runs", tmp_path / "records", tmp_path / "unfinished"
    for name, record in (("running", {"status": "running", "config": {"status": "success"}}),
                         ("finished", {"status": "success", "attempts": [{"status": "failed"}]})):
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"state")
        (runs / name / "result.json").write_text(json.dumps(record, indent=2))  # as lora_lab writes it
    proc = subprocess.run(["bash", "sweeps/keep_records.sh", str(runs), str(records), str(unfinished)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        f"kept the records of 1 finished trials in {records}", f"kept 1 unfinished trials in {unfinished} (removed 0 that have since ended)"], proc.stderr
    assert (records / "finished" / "result.json").is_file() and not (records / "running").exists()
    assert (unfinished / "running" / "checkpoints" / "last.ckpt").read_bytes() == b"state" and not (unfinished / "finished").exists()
