"""Tracker settings checked before anything loads (`lora_lab.config.trial_config.check_loggers`): a bad one is
one ``error: logger.<name>.<key>: ...`` line and exit status 2, not a traceback after the model loaded.

- every key of a tracker node is a parameter of its backend class (``tracker`` names the backend);
- MLflow: the tracking URI (the node's, else ``$MLFLOW_TRACKING_URI``) has a scheme MLflow has a
  store for (`MLFLOW_SCHEMES`); and, only for a trial that is about to run (`probe_trackers`, from
  `lora_lab.run.gate.preflight`: a rerun of a finished trial needs no server), an ``http(s)`` server
  answers a TCP connection within `PROBE_SECONDS` (MLflow itself retries an unreachable server for
  minutes before it fails);
- W&B: ``mode`` (the node's, else ``$WANDB_MODE``) is one of `WANDB_MODES`;
- TensorBoard: ``dir`` is a relative path inside the run dir;
- ``log_adapter`` is true or false.

A tracker that breaks *during* a run is a fault, not a setting: `lora_lab.tracking.callback` reports it
in one line, records it in ``result.json`` and the run goes on.
"""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from lora_lab.errors import ConfigError

#: URI schemes MLflow 3 has a tracking store for ("" is a plain local path); ``postgresql+psycopg2``
#: style driver suffixes are allowed after the engine name
MLFLOW_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")
WANDB_MODES = ("online", "offline", "shared", "disabled", "dryrun", "run")
PROBE_SECONDS = 3.0


def check_tracker_settings(name: str, node: dict) -> None:
    from lora_lab.tracking.base import load_tracker_class

    cls = load_tracker_class(node["tracker"], key=f"logger.{name}.tracker")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "run_dir", "config")]
    for key in node:
        if key != "tracker" and key not in allowed:
            raise ConfigError(f"logger.{name}.{key}", f"is not a setting of the {node['tracker']} tracker; allowed: tracker, {', '.join(allowed)}")
    if "log_adapter" in node and not isinstance(node["log_adapter"], bool):
        raise ConfigError(f"logger.{name}.log_adapter", f"must be true or false, got {node['log_adapter']!r}")
    check = {"mlflow": _check_mlflow, "wandb": _check_wandb, "tensorboard": _check_tensorboard}[node["tracker"]]
    check(name, node)


def _mlflow_uri(name: str, node: dict) -> tuple[str | None, str]:
    """(the tracking URI, the key that set it); None: the offline SQLite store under the runs root."""
    if node.get("tracking_uri") is not None:
        return node["tracking_uri"], f"logger.{name}.tracking_uri"
    return os.environ.get("MLFLOW_TRACKING_URI"), "MLFLOW_TRACKING_URI"


def _check_mlflow(name: str, node: dict) -> None:
    uri, key = _mlflow_uri(name, node)
    if uri is None:
        return
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(key, f"must be a tracking URI (http://host:port, sqlite:///path, file:///path or a path), got {uri!r}")
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if len(scheme) == 1:  # a Windows drive letter is a path
        scheme = ""
    if scheme not in MLFLOW_SCHEMES:
        raise ConfigError(key, f"{uri!r}: unknown URI scheme {parts.scheme!r}; allowed: {', '.join(s for s in MLFLOW_SCHEMES if s)} or a local path")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(key, f"{uri!r} names no host")
        try:
            parts.port
        except ValueError:
            raise ConfigError(key, f"{uri!r}: the port is not a number in 0-65535") from None


def probe_trackers(loggers: dict | None) -> None:
    """Every ``http(s)`` MLflow server of the chosen trackers answers (`PROBE_SECONDS`), else one line."""
    from lora_lab.tracking import split_logger_nodes

    for name, node in split_logger_nodes(loggers or {})[1].items():
        if node.get("tracker") != "mlflow":
            continue
        uri, key = _mlflow_uri(name, node)
        parts = urlsplit(uri or "")
        scheme = parts.scheme.split("+", 1)[0].lower()
        if scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=PROBE_SECONDS):
                pass
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise ConfigError(key, f"{uri!r} is not reachable ({reason} within {PROBE_SECONDS:.0f} s); start the server, or choose another tracker or URI") from None


def _check_wandb(name: str, node: dict) -> None:
    mode, key = node.get("mode"), f"logger.{name}.mode"
    if mode is None:
        mode, key = os.environ.get("WANDB_MODE"), "WANDB_MODE"
    if mode is not None and mode not in WANDB_MODES:
        raise ConfigError(key, f"unknown W&B mode {mode!r}; allowed: {', '.join(WANDB_MODES)}")


def _check_tensorboard(name: str, node: dict) -> None:
    directory = node.get("dir", "tensorboard")
    path = PurePosixPath(str(directory))
    if not isinstance(directory, str) or not directory or path.is_absolute() or ".." in path.parts:
        raise ConfigError(f"logger.{name}.dir", f"must be a relative directory inside the run dir, got {directory!r}")
