"""A 2-trial sweep with `logger=mlflow` against a real MLflow tracking server on localhost (SQLite
backend): the sweep prints one line per finished trial with its scores and k/N, and MlflowClient finds
2 runs in the study's experiment whose params, tags, metrics and artifacts equal the result files."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lora_lab.tracking.base import flatten

ROOT = Path(__file__).resolve().parents[2]
STUDY = """# Trials: 2
defaults:
  - train
  - override /backbone: tiny_bert
  - override /logger: mlflow
  - _self_
study: two_seeds
task: {train_size: 64, val_size: 32, test_size: 32, batch_size: 16, max_length: 16}
trainer: {max_steps: 8, max_epochs: -1, val_check_interval: 4, check_val_every_n_epoch: null, log_every_n_steps: 4}
optim: {lr: 1e-2}
hydra:
  sweeper:
    params:
      seed: 0,1
"""
LAST_SERVER_PID = None
LINE = re.compile(r"^\[(\d+)/2\] (\S+) success val=(\d\.\d{4}) test=(\d\.\d{4}) \d+ s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server at {url} not healthy after {timeout_s} s")


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "mlflow_server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server_artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    global LAST_SERVER_PID
    LAST_SERVER_PID = server.pid  # its process group id (start_new_session): a test may kill it mid-run
    try:
        wait_healthy(url, server)
        yield url
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:  # killed by the test already
            pass
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:  # uvicorn's graceful shutdown can take long; the test is done
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
        log.close()


@pytest.mark.real
def test_sweep_prints_trial_lines_and_mlflow_server_holds_the_results(tmp_path, mlflow_server):
    from mlflow import MlflowClient

    (tmp_path / "two_seeds.yaml").write_text(STUDY)
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "MLFLOW_TRACKING_URI": mlflow_server,
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", "sweep", str(tmp_path / "two_seeds.yaml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stdout + proc.stderr
    records = {}
    for path in (tmp_path / "runs" / "two_seeds").rglob("result.json"):
        record = json.loads(path.read_text())
        records[record["run_name"]] = record
    assert len(records) == 2 and not (tmp_path / "runs" / "mlflow.db").exists()  # the server got everything

    # one line per finished trial: k/N, run name, the scores of its result.json
    lines = [LINE.match(ln) for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert all(lines) and [int(m.group(1)) for m in lines] == [1, 2], proc.stdout
    for m in lines:
        best, test = records[m.group(2)]["metrics"]["best_val"], records[m.group(2)]["metrics"]["test"]
        assert (m.group(3), m.group(4)) == (f"{best['val/accuracy']:.4f}", f"{test['test/accuracy']:.4f}")
    assert {m.group(2) for m in lines} == set(records)
    assert "run success:" not in proc.stdout  # the trials' own summaries give way to the trial lines

    # the server: one experiment named after the study, 2 runs equal to the result files
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("two_seeds")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:
        record = records[run.data.tags["run_name"]]
        config = record["config"]
        assert run.info.status == "FINISHED"
        assert run.data.params == {k: str(v) for k, v in flatten(config).items()}
        assert {k: run.data.tags[k] for k in ("study", "task", "backbone", "method", "init", "seed", "git_sha", "status")} == {
            "study": "two_seeds", "task": "synthetic", "backbone": "tiny_bert", "method": "lora", "init": config["adapter"]["init"],
            "seed": str(config["seed"]), "git_sha": str(record["git"]["sha"]), "status": "success"}
        metrics = run.data.metrics
        assert metrics["test/accuracy"] == pytest.approx(record["metrics"]["test"]["test/accuracy"], abs=1e-6)
        assert metrics["summary/best_val_accuracy"] == pytest.approx(record["metrics"]["best_val"]["val/accuracy"], abs=1e-6)
        assert metrics["summary/best_step"] == record["metrics"]["best_val"]["step"]
        assert metrics["summary/trainable_params"] == record["params"]["trainable_params"]
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/accuracy")}
        assert history == pytest.approx({p["step"]: p["val/accuracy"] for p in record["curve"]}, abs=1e-6)
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == [4, 8]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"adapter", "result.json"} <= artifacts
        adapter_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "adapter")}
        assert adapter_files == {p.name for p in (Path(record["run_dir"]) / "adapter").iterdir()}
