"""`TrackerCallback`: the Lightning callback that feeds every chosen tracker from the run's record.

Rank 0 only. Opens the trackers when fitting starts (continuing the runs recorded in
``<run dir>/tracking.json`` when the trial resumes from its checkpoint), logs ``train/loss`` and
``train/lr`` every ``trainer.log_every_n_steps`` optimizer steps and each validation point as the
module appends it to its curve (the same dict that goes into ``result.json``), and closes them in
`finish` with the final record: test metrics, `summary_metrics`, status and artifacts. A run stopped
by a SLURM signal keeps its tracker runs open for the requeued job; any other exception closes them
as failed.

A tracker is an observer: any exception from one of its calls (a server that died, a full disk, an
expired login) is one warning line, the tracker is dropped for the rest of the process, and
`statuses` says so (``{name: {"status": "failed", "during": "log_metrics", "error": "..."}}``), which
the trial writes into ``result.json: trackers``; training and the other trackers go on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lora_lab.atomic import atomic_write_text
from lora_lab.errors import one_line
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


def fault_text(err: BaseException) -> str:
    """``Type: message`` on one line (an HTTP client's message can span many), at most 300 characters."""
    text = one_line(err)[:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class TrackerCallback(Callback):
    def __init__(self, trackers: list[Tracker], run_dir: Path, resuming: bool):
        self.trackers, self.run_dir, self.resuming = trackers, Path(run_dir), resuming
        self.all_names = [t.name for t in trackers]
        self.failures: dict[str, dict] = {}
        self.started = False
        self.last_train_step = -1

    def _call(self, tracker: Tracker, what: str, *args):
        """``tracker.<what>(*args)``; a fault drops the tracker (one warning line), never the run."""
        try:
            return getattr(tracker, what)(*args)
        except Exception as err:  # noqa: BLE001 -- whatever a tracker raises, the run goes on
            self.failures[tracker.name] = {"status": "failed", "during": what, "error": fault_text(err)}
            self.trackers = [t for t in self.trackers if t is not tracker]
            log.warning("tracker %s failed during %s (%s); the run goes on without it", tracker.name, what, fault_text(err))
            return None

    def statuses(self) -> dict[str, dict]:
        """``{name: {"status": "ok" | "failed", ...}}`` of every chosen tracker (written to result.json)."""
        return {name: self.failures.get(name, {"status": "ok"}) for name in self.all_names}

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.started:
            return
        config = self.trackers[0].config if self.trackers else {}
        ids = read_ids(self.run_dir) if self.resuming else {}
        params, tags = flatten(config), run_tags(config, git_state().get("sha"))
        for tracker in list(self.trackers):
            run_id = self._call(tracker, "start", ids.get(tracker.name), params, tags)
            if run_id is not None:
                ids[tracker.name] = run_id
        atomic_write_text(self.run_dir / IDS_NAME, json.dumps(ids, indent=1))
        self.started = True

    def _emit(self, values: dict, step: int) -> None:
        values = numeric(values)
        if self.started and values:
            for tracker in list(self.trackers):
                self._call(tracker, "log_metrics", values, step)

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
        for tracker in list(self.trackers):  # never masks the run's own error
            if isinstance(exception, RunPreempted):
                self._call(tracker, "suspend")
            else:
                self._call(tracker, "finish", status, {}, None)
        self.started = False

    def finish(self, record: dict) -> None:
        """Close every tracker with the final record (called by the runner after result.json is written)."""
        if not self.started:
            return
        step = int(record.get("optimizer_steps") or 0)
        self._emit((record.get("metrics") or {}).get("test") or {}, step)
        summary = summary_metrics(record)
        for tracker in list(self.trackers):  # a tracker outage never fails a finished run
            self._call(tracker, "finish", str(record.get("status")), summary, record)
        self.started = False


def finish_trackers(trainer, record: dict) -> None:
    """Close the trackers of ``trainer`` (if any) with the final record."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrackerCallback):
            callback.finish(record)


def tracker_statuses(trainer) -> dict[str, dict]:
    """What each tracker of ``trainer`` came to (`TrackerCallback.statuses`); ``{}`` without trackers."""
    out: dict[str, dict] = {}
    for callback in trainer.callbacks:
        if isinstance(callback, TrackerCallback):
            out.update(callback.statuses())
    return out


def fail_trackers(trainer, exception: BaseException) -> None:
    """Close the trackers of ``trainer`` (if any) after ``exception`` raised outside Lightning's hooks."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrackerCallback):
            callback.fail(exception)
