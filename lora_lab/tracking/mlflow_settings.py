"""MLflow's settings, checked before anything loads (`lora_lab.tracking.mlflow_tracker.MlflowTracker`
calls these from ``check_settings`` and ``probe``).

- the tracking URI (the node's ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``) has a scheme MLflow
  has a store for (`MLFLOW_SCHEMES`), and an ``http(s)`` one names a host and a numeric port;
- only for a trial that is about to run (a rerun of a finished trial needs no server), an ``http(s)``
  server answers a TCP connection within `PROBE_SECONDS`: MLflow itself retries an unreachable server
  for minutes before it fails.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from lora_lab.errors import ConfigError

#: URI schemes MLflow 3 has a tracking store for ("" is a plain local path); ``postgresql+psycopg2``
#: style driver suffixes are allowed after the engine name
MLFLOW_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")
PROBE_SECONDS = 3.0


def mlflow_uri(node_name: str, node: dict) -> tuple[str | None, str]:
    """(the tracking URI, the key that set it); None: the offline SQLite store under the runs root."""
    if node.get("tracking_uri") is not None:
        return node["tracking_uri"], f"logger.{node_name}.tracking_uri"
    return os.environ.get("MLFLOW_TRACKING_URI"), "MLFLOW_TRACKING_URI"


def _scheme(uri: str) -> str:
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    return "" if len(scheme) == 1 else scheme  # a Windows drive letter is a path


def check_mlflow_uri(node_name: str, node: dict) -> None:
    uri, key = mlflow_uri(node_name, node)
    if uri is None:
        return
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(key, f"must be a tracking URI (http://host:port, sqlite:///path, file:///path or a path), got {uri!r}")
    parts, scheme = urlsplit(uri), _scheme(uri)
    if scheme not in MLFLOW_SCHEMES:
        raise ConfigError(key, f"{uri!r}: unknown URI scheme {parts.scheme!r}; allowed: {', '.join(s for s in MLFLOW_SCHEMES if s)} or a local path")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(key, f"{uri!r} names no host")
        try:
            parts.port
        except ValueError:
            raise ConfigError(key, f"{uri!r}: the port is not a number in 0-65535") from None


def probe_mlflow_server(node_name: str, node: dict) -> None:
    """An ``http(s)`` tracking server answers within `PROBE_SECONDS`, else one line naming the key."""
    uri, key = mlflow_uri(node_name, node)
    parts, scheme = urlsplit(uri or ""), _scheme(uri or "")
    if scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROBE_SECONDS):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(key, f"{uri!r} is not reachable ({reason} within {PROBE_SECONDS:.0f} s); start the server, or choose another tracker or URI") from None
