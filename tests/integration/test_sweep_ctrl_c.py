"""Issue 24, class 3: Ctrl-C during a sweep's trial leaves that trial ``cancelled`` (resumable), never
``running``; the sweep stops with a non-zero exit status. A real ``lora-lab train --multirun``
subprocess (Hydra's basic launcher) whose first trial receives SIGINT mid-training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_leaves_the_trial_cancelled(tmp_path):
    runs = tmp_path / "runs"
    argv = ["--multirun", "debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8",
            "trainer.max_epochs=2", "test_after_fit=false", "seed=0,1", f"paths.runs_root={runs}",
            "+callbacks.stop._target_=tests.resume.signal_at.SignalAt", "+callbacks.stop.step=3", "+callbacks.stop.signal_name=SIGINT"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", *argv], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0
    records = {p.parent.name: json.loads(p.read_text()) for p in runs.rglob("result.json")}
    assert list(records) == ["lr0.0005-seed0"]  # the sweep stopped at the interrupted trial
    record = records["lr0.0005-seed0"]
    assert record["status"] == "cancelled" and "SIGINT during training" in record["reason"]
    assert record["attempts"][0]["ended"] == "cancelled"
    assert "Traceback" not in out.stderr
    assert out.returncode in (1, 128 + signal.SIGINT)
