"""Issue 24, class 3: a record is ``success`` only when the optimizer stepped as configured and the
metrics exist, and it says what ran: the precision Lightning used, the wall time of every process
of a resumed trial, a stop during the final evaluation as ``cancelled`` (resumable, non-zero exit),
a metrics.csv without the rows a killed attempt logged after its checkpoint, a train.log with the
progress lines. In-process through `cli_main` (as ``lora-lab train``), kill -9 through a real
subprocess."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lora_lab.resume.attempts import begin_attempt, end_attempt, total_wall_time
from lora_lab.results.record import ResultRecord
from lora_lab.run.trial import UntrustworthyRun, check_trustworthy
from tests.resume.exact import train_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=2"]


def cli(runs: Path, *overrides: str) -> int:
    return train_cli([*TINY, f"paths.runs_root={runs}", *overrides])


def record_of(runs: Path) -> dict:
    return json.loads(next(runs.rglob("result.json")).read_text())


def this_machine() -> dict:
    """What a CPU-only attempt here must record, read with the system's own tools (lscpu, nproc)."""
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"}).stdout
    model = next(line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name:"))
    cores = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    return {"cpu": model, "cpus": cores, "devices": "cpu"}


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error: ")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    runs = tmp_path_factory.mktemp("finished") / "runs"
    assert cli(runs, "progress.every_n_steps=2") == 0
    return runs


def test_a_record_says_the_precision_run_and_the_time_of_its_one_attempt(finished):
    record = record_of(finished)
    assert record["status"] == "success" and record["optimizer_steps"] == 8
    assert record["precision"] == "32-true"
    [attempt] = record["attempts"]
    assert attempt["ended"] == "success" and attempt["pid"] == os.getpid()
    assert attempt["git"] == record["git"] and set(record["git"]) == {"sha", "dirty"}  # the code this process ran
    assert attempt["machine"] == this_machine()  # the hardware it ran on
    assert record["wall_time_s"] == attempt["wall_s"] > 0


def test_train_log_holds_the_progress_lines_and_the_summary(finished):
    log = (next(finished.rglob("result.json")).parent / "train.log").read_text()
    steps = [ln for ln in log.splitlines() if "lora_lab.progress.file" in ln and " - step " in ln]
    assert [ln.split(" - ")[1].split("  ")[0] for ln in steps] == ["step 2/8", "step 4/8", "step 6/8", "step 8/8"]
    assert sum(" - val   step " in ln for ln in log.splitlines()) == 2
    assert "run success: synthetic/tiny_bert/" in log


@pytest.mark.parametrize("bad, key", [
    (["+trainer.limit_train_batches=0"], "trainer.limit_train_batches"),
    (["+trainer.fast_dev_run=true"], "trainer.fast_dev_run"),
    (["+trainer.limit_val_batches=0"], "trainer.limit_val_batches"),
    (["trainer.precision=16-mixed"], "trainer.precision"),
])
def test_settings_whose_record_would_lie_are_refused_up_front(tmp_path, capsys, bad, key):
    if key == "trainer.precision":
        import torch

        if torch.cuda.is_available():
            pytest.skip("16-mixed runs as written on a GPU")
    assert cli(tmp_path / "runs", *bad) == 2
    err = capsys.readouterr().err
    assert error_lines(err) == [ln for ln in err.splitlines() if ln.strip()] and error_lines(err)[0].startswith(f"error: {key}: ")
    assert not (tmp_path / "runs").exists()


def test_debug_fdr_is_an_honest_one_step_run(tmp_path):
    assert train_cli(["debug=fdr", "backbone=tiny_bert", "task.train_size=64", "task.val_size=16", "task.test_size=16",
                      f"paths.runs_root={tmp_path / 'fdr'}"]) == 0
    record = record_of(tmp_path / "fdr")
    assert record["status"] == "success" and record["optimizer_steps"] == 1 and record["config"]["trainer"]["max_steps"] == 1
    assert record["metrics"]["best_val"]


@pytest.mark.parametrize("steps, best_val, test, expected, message", [
    (0, {"val/accuracy": 0.5}, {}, False, "0 optimizer steps"),
    (8, {}, {}, False, "no validation metric"),
    (8, {"val/accuracy": 0.5}, {}, True, "test split was not evaluated"),
])
def test_success_needs_steps_and_metrics(steps, best_val, test, expected, message):
    record = ResultRecord(optimizer_steps=steps, metrics={"best_val": best_val, "test": test})
    with pytest.raises(UntrustworthyRun, match=message):
        check_trustworthy(record, test_expected=expected)
    check_trustworthy(ResultRecord(optimizer_steps=8, metrics={"best_val": {"val/accuracy": 0.5}, "test": {"test/accuracy": 0.5}}), True)


def test_attempts_sum_to_the_wall_time_and_a_silent_death_is_marked_killed():
    first = begin_attempt(None)
    first[-1]["wall_s"], first[-1]["pid"] = 1200.0, -1  # another process, killed after 20 min without a word
    attempts = begin_attempt(first)
    assert attempts[0]["ended"] == "killed" and attempts[1]["ended"] is None
    time.sleep(0.05)
    total = end_attempt(attempts, "success")
    assert attempts[1]["ended"] == "success" and 0.05 <= attempts[1]["wall_s"] < 5
    assert total == total_wall_time(attempts) == pytest.approx(1200.0 + attempts[1]["wall_s"], abs=1e-6)


def test_sigterm_during_the_final_test_evaluation_is_cancelled_and_resumable(tmp_path, capsys):
    runs, marker = tmp_path / "runs", tmp_path / "sent"
    stop = ["+callbacks.sigterm._target_=tests.resume.signal_at.SignalOnceAtTest", f"+callbacks.sigterm.marker={marker}",
            "+callbacks.count._target_=tests.resume.signal_at.CountBatches", f"+callbacks.count.path={tmp_path / 'batches'}"]
    assert cli(runs, *stop) == 128 + signal.SIGTERM
    assert marker.exists()
    err = capsys.readouterr().err
    assert "stopped: SIGTERM during the final evaluation" in err and "Traceback" not in err
    record = record_of(runs)
    assert record["status"] == "cancelled" and "SIGTERM during the final evaluation" in record["reason"]
    assert record["attempts"][0]["ended"] == "cancelled"
    assert cli(runs, *stop) == 0  # the same command resumes: training is done, only the evaluation reruns
    record = record_of(runs)
    assert record["status"] == "success" and record["optimizer_steps"] == 8 and record["metrics"]["test"]
    assert (tmp_path / "batches").read_text().split() == ["8", "0"]  # the rerun trained no batch
    assert [a["ended"] for a in record["attempts"]] == ["cancelled", "success"]
    assert [a["machine"] for a in record["attempts"]] == [this_machine()] * 2  # each process says where it ran
    assert record["wall_time_s"] == pytest.approx(sum(a["wall_s"] for a in record["attempts"]), abs=1e-3)


def test_ctrl_c_during_training_is_cancelled_not_running(tmp_path, capsys):
    runs = tmp_path / "runs"
    stop = ["+callbacks.stop._target_=tests.resume.signal_at.SignalAt", "+callbacks.stop.step=3", "+callbacks.stop.signal_name=SIGINT"]
    assert cli(runs, *stop) == 128 + signal.SIGINT
    record = record_of(runs)
    assert record["status"] == "cancelled" and "SIGINT during training" in record["reason"]
    assert "Traceback" not in capsys.readouterr().err
    assert cli(runs) == 0  # a cancelled record never blocks the next command
    record = record_of(runs)
    assert record["status"] == "success" and record["optimizer_steps"] == 8


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_kill_9_then_resume_neither_repeats_metrics_rows_nor_loses_the_killed_attempts_time(tmp_path):
    runs = tmp_path / "runs"
    argv = [*TINY, "task.max_train_samples=64", "trainer.max_epochs=3", "trainer.log_every_n_steps=1", "test_after_fit=false",
            "+logger.csv.flush_logs_every_n_steps=1", "+callbacks.slow._target_=tests.resume.signal_at.Throttle",
            "+callbacks.slow.seconds=0.4", f"paths.runs_root={runs}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen([sys.executable, "-m", "lora_lab.cli", "train", *argv], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # epoch 1 ends at step 8 (checkpoint); wait for rows logged after it
            metrics = list(runs.rglob("metrics.csv"))
            if metrics and any(r.get("train/loss") and int(r["step"]) >= 11 for r in _rows(metrics[0])):
                break
            assert job.poll() is None, "the job ended before it could be killed"
            time.sleep(0.2)
        else:
            raise AssertionError("no rows after the checkpoint within 240 s")
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(30)
    run = next(runs.rglob("result.json")).parent
    assert json.loads((run / "result.json").read_text())["status"] == "running"  # what kill -9 leaves
    assert train_cli(argv) == 0
    rows = _rows(run / "logs" / "metrics.csv")
    train_steps = Counter(int(r["step"]) for r in rows if r.get("train/loss"))
    assert max(train_steps.values()) == 1, train_steps  # no step logged twice
    val_steps = Counter(int(r["step"]) for r in rows if r.get("val/accuracy"))
    assert len(val_steps) == 3 and max(val_steps.values()) == 1
    record = json.loads((run / "result.json").read_text())
    assert record["status"] == "success" and [a["ended"] for a in record["attempts"]] == ["killed", "success"]
    assert record["attempts"][0]["wall_s"] > 2  # counted up to its checkpoint, not dropped
    assert record["wall_time_s"] == pytest.approx(record["attempts"][0]["wall_s"] + record["attempts"][1]["wall_s"], abs=1e-3)
