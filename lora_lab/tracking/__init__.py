"""Experiment trackers as ``logger=`` options: TensorBoard, MLflow and Weights & Biases.

``logger=tensorboard|mlflow|wandb`` (each keeps the CSV log), ``logger=many`` (all three) or a list
(``logger=[tensorboard,mlflow]``). A tracker node in ``conf/logger/`` carries ``tracker: <name>``
instead of a Lightning ``_target_``; `split_logger_nodes` separates the two kinds and
`tracker_callback` builds the one callback that feeds every chosen tracker
(`lora_lab.tracking.callback.TrackerCallback`).

Every tracker receives the same things, from the same record the run writes to ``result.json``:
the flattened resolved config as hyperparameters, tags (study, task, backbone, method, init, seed,
git SHA), the train loss and lr every ``trainer.log_every_n_steps`` optimizer steps, every validation
point of the curve, the test metrics, the final summary (`lora_lab.results.run_summary.summary_metrics`) and,
where the tracker stores files, the adapter directory and ``result.json``. Only global rank 0 logs.
A trial that resumes from ``checkpoints/last.ckpt`` continues the tracker run it started (ids are kept
in ``<run dir>/tracking.json``); a fresh start (or ``force=true``) opens a new one.
"""

from __future__ import annotations

from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.tracking.base import Tracker
from lora_lab.tracking.registry import TRACKERS, load_tracker_class, register_tracker

__all__ = ["TRACKERS", "Tracker", "load_tracker_class", "register_tracker", "split_logger_nodes", "tracker_callback"]


def split_logger_nodes(nodes: dict) -> tuple[dict, dict]:
    """``(lightning logger nodes, tracker nodes)`` of the resolved ``logger`` config."""
    lightning, trackers = {}, {}
    for name, node in (nodes or {}).items():
        if not isinstance(node, dict):
            raise ConfigError(f"logger.{name}", f"must be a mapping with _target_ or tracker, got {node!r}")
        (trackers if "tracker" in node else lightning)[name] = node
    return lightning, trackers


def tracker_callback(nodes: dict, config: dict, run_dir: str | Path, resuming: bool) -> list:
    """``[TrackerCallback]`` for the chosen trackers (``[]`` when none): each tracker class is
    imported here, so a chosen tracker whose package is missing fails before training."""
    from lora_lab.tracking.callback import TrackerCallback  # Lightning: only where a trainer is built

    trackers = []
    for name, node in nodes.items():
        options = {k: v for k, v in node.items() if k != "tracker"}
        cls = load_tracker_class(node["tracker"], key=f"logger.{name}.tracker")
        trackers.append(cls(run_dir=Path(run_dir), config=config, **options))
    return [TrackerCallback(trackers, Path(run_dir), resuming=resuming)] if trackers else []
