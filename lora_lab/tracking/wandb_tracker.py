"""Weights & Biases: one W&B run per trial, grouped by study.

Mode: the node's ``mode``, else ``$WANDB_MODE``, else ``online`` when the user has logged in
(``WANDB_API_KEY`` or a ``~/.netrc`` entry for api.wandb.ai, as ``wandb login`` writes) and
``offline`` otherwise (``wandb sync <run dir>/wandb/offline-run-*`` uploads later). Files go under
``<run dir>/wandb/``. Config: the flattened resolved config; tags ``key:value`` of `run_tags`;
metrics with their optimizer step; the summary into the run summary; the adapter directory and
``result.json`` as a ``model`` artifact. A resumed trial reopens the same run id (``resume="allow"``).

Why not Lightning's ``WandbLogger``: it starts a fresh W&B run per process unless the caller manages
run ids across restarts (here kept in ``tracking.json``, so a resumed trial is one run); it finishes
the run with exit code 0 whatever happened (a failed trial is not marked failed); it cannot log the
run's final ``result.json`` with the scored adapter; and a W&B fault (an expired key, a network
error in online mode) raises inside the training loop and fails the run. Here one run per trial,
rank 0 only, exit code from the record, and faults confined to the tracker (`lora_lab.tracking.callback`).
"""

from __future__ import annotations

import netrc
import os
import uuid
from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.tracking.base import Tracker
from lora_lab.tracking.registry import register_tracker

#: what ``wandb.init(mode=...)`` accepts
WANDB_MODES = ("online", "offline", "shared", "disabled", "dryrun", "run")


def logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


@register_tracker
class WandbTracker(Tracker):
    name, package, extra = "wandb", "wandb", "wandb"

    @classmethod
    def check_settings(cls, node_name: str, node: dict) -> None:
        """``mode`` (the node's, else ``$WANDB_MODE``) is one of `WANDB_MODES`."""
        mode, key = node.get("mode"), f"logger.{node_name}.mode"
        if mode is None:
            mode, key = os.environ.get("WANDB_MODE"), "WANDB_MODE"
        if mode is not None and mode not in WANDB_MODES:
            raise ConfigError(key, f"unknown W&B mode {mode!r}; allowed: {', '.join(WANDB_MODES)}")

    def __init__(self, run_dir: Path, config: dict, project: str = "lora_lab", entity: str | None = None,
                 group: str | None = None, mode: str | None = None, log_adapter: bool = True):
        super().__init__(run_dir, config)
        self.project, self.entity, self.log_adapter = project, entity, log_adapter
        self.group = group or str(config.get("study") or "default")
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")
        self.run = None

    def start(self, run_id, params, tags):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")  # no per-trial banners, sync hints, artifact progress
        self.run = wandb.init(
            project=self.project, entity=self.entity, group=self.group, name=tags.get("run_name"), job_type="train",
            id=run_id or uuid.uuid4().hex[:12], resume="allow", dir=str(self.run_dir), mode=self.mode,
            config=params, tags=[f"{k}:{v}"[:64] for k, v in tags.items() if k != "run_name"],
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        return self.run.id

    def log_metrics(self, values, step):
        self.run.log(values, step=step)

    def finish(self, status, summary, record):
        import wandb

        if record is not None:
            self.run.summary.update({**summary, "status": status})
            if self.log_adapter and (self.run_dir / "adapter").is_dir():
                artifact = wandb.Artifact(f"adapter-{self.run.id}", type="model")
                artifact.add_dir(str(self.run_dir / "adapter"))
                artifact.add_file(str(self.run_dir / "result.json"))
                self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if status == "success" else 1)

    def suspend(self):
        self.run.finish(exit_code=0)  # the requeued job resumes the same run id
