"""A tracker is an observer (issue 24, class 5): a real MLflow server killed mid-run does not fail the
run. The run finishes ``success``, prints one line about the tracker, records ``trackers.mlflow:
failed`` in result.json, and a rerun of the finished run (server still dead) trains nothing and
changes no byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tracking.test_mlflow_server_sweep import mlflow_server  # noqa: F401  (the fixture: a real server)

ROOT = Path(__file__).resolve().parents[2]
TINY = ["debug=tiny", "task.max_train_samples=64", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1", "test_after_fit=false", "logger=mlflow"]


def lora_lab_train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.real
def test_mlflow_server_killed_mid_run(tmp_path, mlflow_server):  # noqa: F811
    from tests.tracking import test_mlflow_server_sweep as server_module

    pgid = server_module.LAST_SERVER_PID
    runs = tmp_path / "runs"
    args = [*TINY, f"paths.runs_root={runs}", f"logger.mlflow.tracking_uri={mlflow_server}",
            "+callbacks.kill._target_=tests.tracking.kill_at.KillGroupAt", f"+callbacks.kill.pgid={pgid}", "+callbacks.kill.step=3"]
    started = time.monotonic()
    out = lora_lab_train(*args)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    console = out.stdout + out.stderr
    assert "Traceback" not in console
    tracker_lines = [ln for ln in console.splitlines() if "tracker mlflow failed" in ln]
    assert len(tracker_lines) == 1, console[-3000:]
    assert elapsed < 150  # no minutes of HTTP retries (MLflow's default: 7 retries, 120 s timeout each)
    result = next(runs.rglob("result.json"))
    record = json.loads(result.read_text())
    assert record["status"] == "success" and record["optimizer_steps"] == 16
    failed = record["trackers"]["mlflow"]
    assert failed["status"] == "failed" and failed["during"] in ("log_metrics", "finish") and failed["error"]
    assert record["metrics"]["best_val"]["val/accuracy"] >= 0

    before = hashes(runs)
    again = lora_lab_train(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished: " in again.stderr and "Traceback" not in again.stderr
    assert hashes(runs) == before  # not retrained: every byte of the finished run unchanged
