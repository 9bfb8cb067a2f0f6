"""A trial stopped by SLURM's SIGTERM and resumed is one tracker run, not two; with `logger=many`
(TensorBoard, MLflow in its offline default store under the runs root, W&B offline), and the W&B
offline run files hold the same summary as result.json."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracking.wandb_log import history, run_info, summary

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["debug=tiny", "task.train_size=64", "task.val_size=32", "task.test_size=32", "task.batch_size=16",
        "trainer.max_steps=8", "trainer.max_epochs=-1", "trainer.val_check_interval=4", "trainer.check_val_every_n_epoch=null",
        "trainer.log_every_n_steps=2", "optim.lr=1e-2", "logger=many", "study=resumed",
        "+callbacks.stop._target_=tests.resume.signal_at.SignalAt", "+callbacks.stop.step=5", "+callbacks.stop.signal_name=SIGTERM"]


def train(tmp_path):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "HOME": str(tmp_path)}  # HOME: no ~/.netrc W&B login, so offline
    for key in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "lora_lab.train", *ARGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.real
def test_killed_and_resumed_trial_is_one_run_in_every_tracker(tmp_path):
    from mlflow import MlflowClient

    first = train(tmp_path)
    assert first.returncode == 128 + 15, first.stderr[-3000:]
    run_dir = next((tmp_path / "runs").rglob("result.json")).parent
    ids = json.loads((run_dir / "tracking.json").read_text())
    assert json.loads((run_dir / "result.json").read_text())["status"] == "cancelled"

    second = train(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "success" and record["interruptions"][0]["step"] == 5
    assert json.loads((run_dir / "tracking.json").read_text()) == ids

    # MLflow (offline default: SQLite under the runs root): one run holding both halves of the curve
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resumed")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [ids["mlflow"]] and runs[0].info.status == "FINISHED"
    val = {m.step: m.value for m in client.get_metric_history(ids["mlflow"], "val/accuracy")}
    assert val == pytest.approx({p["step"]: p["val/accuracy"] for p in record["curve"]}, abs=1e-6) and sorted(val) == [4, 8]
    assert {m.step for m in client.get_metric_history(ids["mlflow"], "train/loss")} == {2, 4, 6, 8}

    # W&B offline: both attempts wrote the same run id; the last file holds the result's summary
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and {run_info(f)["id"] for f in files} == {ids["wandb"]}
    assert run_info(files[-1])["group"] == "resumed"
    final = summary(files[-1])
    assert final["status"] == "success"
    assert final["summary/best_val_accuracy"] == pytest.approx(record["metrics"]["best_val"]["val/accuracy"], abs=1e-6)
    assert final["summary/test_accuracy"] == pytest.approx(record["metrics"]["test"]["test/accuracy"], abs=1e-6)
    assert final["summary/trainable_params"] == record["params"]["trainable_params"]
    assert final["summary/wall_time_s"] == pytest.approx(record["wall_time_s"])
    steps = [row["_step"] for f in files for row in history(f) if "val/accuracy" in row]
    assert steps == [4, 8]

    # TensorBoard: one directory (one run), event files of both attempts
    assert ids["tensorboard"] == str(run_dir / "tensorboard")
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
