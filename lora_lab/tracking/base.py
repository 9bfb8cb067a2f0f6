"""The tracker interface, the registry of tracker backends and what every backend logs alike.

A `Tracker` is opened once per process (`start`, given the id of the tracker run this trial started
before, if it resumes), receives `log_metrics(values, step)` calls, and is closed with `finish`
(status and the final record). Hyperparameters are the resolved config flattened to dotted keys
(`flatten`); tags are `run_tags`. A backend also says what it needs (``package``, installed by the
pip extra ``extra``) and checks its own settings before anything loads (`Tracker.check_settings`,
`Tracker.probe`); `lora_lab.tracking.registry` finds the backends.
"""

from __future__ import annotations

from pathlib import Path

def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """``{"adapter": {"r": 8}}`` -> ``{"adapter.r": 8}``; lists become their string form."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = str(list(value))
        else:
            out[name] = value
    return out


def run_tags(config: dict, git_sha: str | None) -> dict[str, str]:
    """What a tracker's run list is filtered by: study, task, backbone, method, init, seed, git SHA."""
    adapter = config.get("adapter") or {}
    return {
        "study": str(config.get("study")),
        "task": str((config.get("task") or {}).get("name")),
        "backbone": str((config.get("backbone") or {}).get("short_name")),
        "method": str(adapter.get("method")),
        "init": str(adapter.get("init")),
        "seed": str(config.get("seed")),
        "git_sha": str(git_sha),
        "run_name": str(config.get("run_name")),
    }


class Tracker:
    """One tracker backend for one trial; subclasses implement the four calls.

    ``name``: the value of ``tracker:`` in a logger node; ``package``: the import name it needs;
    ``extra``: the pip extra that installs it. The constructor's keyword parameters (after ``run_dir``
    and ``config``) are the node's allowed keys."""

    name = "tracker"
    package = ""
    extra = ""

    @classmethod
    def check_settings(cls, node_name: str, node: dict) -> None:
        """Refuse a bad value of the node ``logger.<node_name>`` with a `lora_lab.errors.ConfigError`
        naming the key (called by the config check, before anything loads); nothing to check by default."""

    @classmethod
    def probe(cls, node_name: str, node: dict) -> None:
        """Refuse a trial about to run whose tracker cannot be reached (a server that is down); by default
        nothing is probed."""

    def __init__(self, run_dir: Path, config: dict):
        self.run_dir, self.config = Path(run_dir), config

    def start(self, run_id: str | None, params: dict, tags: dict[str, str]) -> str:
        """Open (or, with ``run_id``, continue) the tracker run; returns its id."""
        raise NotImplementedError

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def finish(self, status: str, summary: dict[str, float], record: dict | None) -> None:
        """Write the summary, upload the adapter and result.json where supported, close the run."""
        raise NotImplementedError

    def suspend(self) -> None:
        """The trial stops to be resumed later (SLURM requeue): flush, keep the run open."""
        self.finish("suspended", {}, None)
