"""Tracker settings checked before anything loads (`lora_lab.config.trial_config.check_loggers`): a bad one is
one ``error: logger.<name>.<key>: ...`` line and exit status 2, not a traceback after the model loaded.

- every key of a tracker node is a parameter of its backend class (``tracker`` names the backend);
- ``log_adapter`` is true or false;
- the rest is the backend's own `Tracker.check_settings` (MLflow: the tracking URI's scheme,
  `lora_lab.tracking.mlflow_settings`; W&B: ``mode``; TensorBoard: ``dir`` inside the run dir), and,
  only for a trial that is about to run (`probe_trackers`, from `lora_lab.run.gate.preflight`: a rerun
  of a finished trial needs no server), its `Tracker.probe` (MLflow: an ``http(s)`` server answers).

A tracker that breaks *during* a run is a fault, not a setting: `lora_lab.tracking.callback` reports it
in one line, records it in ``result.json`` and the run goes on.
"""

from __future__ import annotations

import inspect

from lora_lab.errors import ConfigError
from lora_lab.tracking.registry import load_tracker_class


def check_tracker_settings(name: str, node: dict) -> None:
    cls = load_tracker_class(node["tracker"], key=f"logger.{name}.tracker")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "run_dir", "config")]
    for key in node:
        if key != "tracker" and key not in allowed:
            raise ConfigError(f"logger.{name}.{key}", f"is not a setting of the {node['tracker']} tracker; allowed: tracker, {', '.join(allowed)}")
    if "log_adapter" in node and not isinstance(node["log_adapter"], bool):
        raise ConfigError(f"logger.{name}.log_adapter", f"must be true or false, got {node['log_adapter']!r}")
    cls.check_settings(name, node)


def probe_trackers(loggers: dict | None) -> None:
    """Every chosen tracker that depends on a server reaches it (`Tracker.probe`), else one line."""
    from lora_lab.tracking import split_logger_nodes

    for name, node in split_logger_nodes(loggers or {})[1].items():
        load_tracker_class(node["tracker"], key=f"logger.{name}.tracker").probe(name, node)
