"""A trial that fails after training (saving its adapter raises an OS error) closes its tracker run as
FAILED, not left RUNNING, and its result.json says ``failed`` with the reason; checked in a real MLflow
store (the offline default: SQLite under the runs root)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["debug=tiny", "task.train_size=32", "task.val_size=16", "task.test_size=16", "task.batch_size=16",
        "trainer.max_steps=2", "trainer.max_epochs=-1", "logger=mlflow", "study=fault",
        "+callbacks.fault._target_=tests.tracking.fault_after_fit.BlockAdapterDirs"]


@pytest.mark.real
def test_a_fault_after_fit_closes_the_tracker_run_as_failed(tmp_path):
    from mlflow import MlflowClient

    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "lora_lab.train", *ARGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    run_dir = next((tmp_path / "runs").rglob("result.json")).parent
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed" and "adapter" in record["reason"], record.get("reason")
    run_id = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fault")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].info.status == "FAILED" and runs[0].info.end_time is not None
    assert {m.step for m in client.get_metric_history(run_id, "train/loss")} <= {1, 2}  # the curve up to the fault is kept
