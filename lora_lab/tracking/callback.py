"""`TrackerCallback`: the Lightning callback that feeds every chosen tracker from the run's record.

Rank 0 only. Opens the trackers when fitting starts (continuing the runs recorded in
``<run dir>/tracking.json`` when the trial resumes from its checkpoint), logs ``train/loss`` and
``train/lr`` every ``trainer.log_every_n_steps`` optimizer steps and each validation point as the
module appends it to its curve (the same dict that goes into ``result.json``), and closes them in
`finish` with the final record: test metrics, `summary_metrics`, status and artifacts. A run stopped
by a SLURM signal keeps its tracker runs open for the requeued job; any other exception closes them
as failed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lora_lab.atomic import atomic_write_text
from lora_lab.models.module import step_loss
from lora_lab.results.record import git_state
from lora_lab.resume.signals import RunPreempted
from lora_lab.results.run_summary import summary_metrics
from lora_lab.tracking.base import Tracker, flatten, run_tags

IDS_NAME = "tracking.json"
log = logging.getLogger("lora_lab.tracking")


def read_ids(run_dir: Path) -> dict[str, str]:
    try:
        return json.loads((run_dir / IDS_NAME).read_text())
    except (OSError, ValueError):
        return {}


def numeric(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TrackerCallback(Callback):
    def __init__(self, trackers: list[Tracker], run_dir: Path, resuming: bool):
        self.trackers, self.run_dir, self.resuming = trackers, Path(run_dir), resuming
        self.started = False
        self.last_train_step = -1

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.started:
            return
        config = self.trackers[0].config
        ids = read_ids(self.run_dir) if self.resuming else {}
        params, tags = flatten(config), run_tags(config, git_state().get("sha"))
        for tracker in self.trackers:
            ids[tracker.name] = tracker.start(ids.get(tracker.name), params, tags)
        atomic_write_text(self.run_dir / IDS_NAME, json.dumps(ids, indent=1))
        self.started = True

    def _emit(self, values: dict, step: int) -> None:
        values = numeric(values)
        if self.started and values:
            for tracker in self.trackers:
                tracker.log_metrics(values, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)
        if step == 0 or step == self.last_train_step or step % max(1, trainer.log_every_n_steps) != 0:
            return
        self.last_train_step = step
        values = {"train/loss": step_loss(outputs)}
        if trainer.optimizers:
            values["train/lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self._emit(values, step)

    def on_validation_end(self, trainer, pl_module) -> None:
        curve = getattr(pl_module, "curve", None)
        if trainer.sanity_checking or not curve:
            return
        point = curve[-1]
        self._emit({k: v for k, v in point.items() if k.startswith("val/")}, int(point["step"]))

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.fail(exception)

    def fail(self, exception: BaseException) -> None:
        """Close (or, for a preemption, suspend) every tracker run after ``exception``: ``cancelled``
        for an interrupt, ``failed`` otherwise; once."""
        if not self.started:
            return
        status = "cancelled" if isinstance(exception, KeyboardInterrupt) else "failed"
        for tracker in self.trackers:
            try:
                if isinstance(exception, RunPreempted):
                    tracker.suspend()
                else:
                    tracker.finish(status, {}, None)
            except Exception:  # never mask the run's own error
                log.exception("tracker %s could not close", tracker.name)
        self.started = False

    def finish(self, record: dict) -> None:
        """Close every tracker with the final record (called by the runner after result.json is written)."""
        if not self.started:
            return
        step = int(record.get("optimizer_steps") or 0)
        self._emit((record.get("metrics") or {}).get("test") or {}, step)
        summary = summary_metrics(record)
        for tracker in self.trackers:
            try:
                tracker.finish(str(record.get("status")), summary, record)
            except Exception:  # a tracker outage never fails a finished run
                log.exception("tracker %s could not finish", tracker.name)
        self.started = False


def finish_trackers(trainer, record: dict) -> None:
    """Close the trackers of ``trainer`` (if any) with the final record."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrackerCallback):
            callback.finish(record)


def fail_trackers(trainer, exception: BaseException) -> None:
    """Close the trackers of ``trainer`` (if any) after ``exception`` raised outside Lightning's hooks."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrackerCallback):
            callback.fail(exception)
