"""TensorBoard: event files under ``<run dir>/<dir>`` (default ``tensorboard/``).

``tensorboard --logdir runs/<study>`` shows every trial of a study as one run named by its path (the
study directory is the group). Scalars: ``train/*``, ``val/*``, ``test/*`` and ``summary/*``; the
flattened config goes to the HParams dashboard (written with the summary metrics when the run ends);
the tags as a text summary. A resumed trial appends a new event file to the same directory: one run.
TensorBoard has no artifact store, so the adapter stays in the run directory.

Why not Lightning's ``TensorBoardLogger``: it writes into a new ``version_N`` directory per process,
so a resumed trial shows up as several runs; it logs hparams at the start, before the metrics the
HParams dashboard should show exist, and never records whether the run succeeded; it logs on
whatever rank calls it unless every call site guards it; and a write error inside it (a full disk)
propagates into the training loop. Here one directory per trial across resumes, the HParams entry
written with the final summary and status, rank 0 only, and faults confined to the tracker
(`lora_lab.tracking.callback`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lora_lab.errors import ConfigError
from lora_lab.tracking.base import Tracker
from lora_lab.tracking.registry import register_tracker


def hparam_value(value):
    """TensorBoard's HParams plugin stores numbers, strings and booleans; anything else as text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


@register_tracker
class TensorBoardTracker(Tracker):
    name, package, extra = "tensorboard", "tensorboard", "tensorboard"

    @classmethod
    def check_settings(cls, node_name: str, node: dict) -> None:
        """``dir`` is a relative path inside the run dir."""
        directory = node.get("dir", "tensorboard")
        path = PurePosixPath(str(directory))
        if not isinstance(directory, str) or not directory or path.is_absolute() or ".." in path.parts:
            raise ConfigError(f"logger.{node_name}.dir", f"must be a relative directory inside the run dir, got {directory!r}")

    def __init__(self, run_dir: Path, config: dict, dir: str = "tensorboard"):
        super().__init__(run_dir, config)
        self.log_dir = self.run_dir / dir
        self.writer = None
        self.params: dict = {}

    def start(self, run_id, params, tags):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.params = {k: hparam_value(v) for k, v in params.items()}
        self.writer.add_text("tags", "\n".join(f"- {k}: {v}" for k, v in tags.items()), 0)
        return str(self.log_dir)

    def log_metrics(self, values, step):
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, status, summary, record):
        from torch.utils.tensorboard.summary import hparams

        if record is not None:
            step = int(record.get("optimizer_steps") or 0)
            self.log_metrics(summary, step)
            for event in hparams({**self.params, "status": status}, summary):
                self.writer.file_writer.add_summary(event)
        self.writer.flush()
        self.writer.close()

    def suspend(self):
        self.writer.flush()
        self.writer.close()
