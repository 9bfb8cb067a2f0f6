"""MLflow: one experiment per study, one MLflow run per trial.

Tracking URI: the node's ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite store
``<runs root>/mlflow.db`` with artifacts under ``<runs root>/mlartifacts`` (works offline; browse it
with ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``). Params: the flattened config; tags:
`run_tags` plus ``run_dir``; metrics with their optimizer step; at the end the summary metrics, a
``status`` tag, the adapter directory and ``result.json`` as artifacts, and the run status
(FINISHED / FAILED). A resumed trial sets its run back to RUNNING and continues it.

A server that stops answering must not hold the run: MLflow retries an HTTP request 7 times with
exponential backoff and a 120 s timeout (minutes per call); unless the user set them, this tracker
sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``..._BACKOFF_FACTOR`` and ``..._TIMEOUT`` to `HTTP_LIMITS`
(a dead server fails a call in seconds, and `lora_lab.tracking.callback` then drops the tracker).

Why not Lightning's ``MLFlowLogger``: it opens a new MLflow run for every process, so a trial resumed
from its checkpoint (a SLURM requeue, a rerun after kill -9) becomes several runs; it marks the run
FINISHED from ``finalize`` whatever happened (a run that raised is not FAILED, a preempted one is not
left RUNNING for its requeued job); it cannot attach the run's own ``result.json`` and scored adapter
as the run ends; and an MLflow fault inside it is an exception in the training loop, failing the run.
Here one MLflow run per trial (its id kept in ``tracking.json``), rank 0 only, status from the record,
and every fault confined to the tracker.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from lora_lab.tracking.base import Tracker
from lora_lab.tracking.mlflow_settings import check_mlflow_uri, probe_mlflow_server
from lora_lab.tracking.registry import register_tracker

MLFLOW_STATUS = {"success": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
PARAM_BATCH = 100  # MLflow's limit of params per log_batch call
#: MLflow's HTTP retry settings while this tracker runs (environment variables the user set win)
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def default_tracking_uri(runs_root: str | os.PathLike) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(runs_root).resolve() / 'mlflow.db'}"


@contextmanager
def store_lock(runs_root: Path):
    """Serialise creating the SQLite schema and the experiment across parallel trials."""
    runs_root.mkdir(parents=True, exist_ok=True)
    with open(runs_root / ".mlflow.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@register_tracker
class MlflowTracker(Tracker):
    name, package, extra = "mlflow", "mlflow", "mlflow"

    @classmethod
    def check_settings(cls, node_name: str, node: dict) -> None:
        check_mlflow_uri(node_name, node)

    @classmethod
    def probe(cls, node_name: str, node: dict) -> None:
        probe_mlflow_server(node_name, node)

    def __init__(self, run_dir: Path, config: dict, tracking_uri: str | None = None, experiment: str | None = None,
                 log_adapter: bool = True):
        super().__init__(run_dir, config)
        self.runs_root = Path((config.get("paths") or {}).get("runs_root") or "runs").resolve()
        self.tracking_uri = tracking_uri or default_tracking_uri(self.runs_root)
        self.experiment = experiment or str(config.get("study") or "default")
        self.log_adapter = log_adapter
        self.client = self.run_id = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        local = self.tracking_uri.startswith("sqlite:")
        location = (self.runs_root / "mlartifacts" / self.experiment).as_uri() if local else None
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # created meanwhile by a parallel trial (server store)
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    def start(self, run_id, params, tags):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        for noisy in ("alembic", "mlflow"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # its "Retrying ..." lines: a fault is reported once, by the callback
        with store_lock(self.runs_root):
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment_id = self._experiment_id()
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(experiment_id, run_name=tags.get("run_name"), tags={**tags, "run_dir": str(self.run_dir)})
        self.run_id = run.info.run_id
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + PARAM_BATCH])
        return self.run_id

    def log_metrics(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, status, summary, record):
        if record is not None:
            self.log_metrics(summary, int(record.get("optimizer_steps") or 0))
            self.client.set_tag(self.run_id, "status", status)
            if self.log_adapter and (self.run_dir / "adapter").is_dir():
                self.client.log_artifacts(self.run_id, str(self.run_dir / "adapter"), "adapter")
            if (self.run_dir / "result.json").is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / "result.json"))
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))

    def suspend(self):
        pass  # stays RUNNING: the requeued job continues it
