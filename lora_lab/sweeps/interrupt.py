"""Ctrl-C on a sweep: one line, the trials it stopped recorded ``cancelled``, exit status 130.

Lightning answers a ``KeyboardInterrupt`` inside ``fit`` with its own ``exit(1)`` (a ``SystemExit``,
not the interrupt), so a sweep used to print nothing, exit 1 and leave the trial it was running
``running``. A running trial now records its own stop and exits 130
(`lora_lab.resume.signals.StopOnSignals`); `SweepInterrupt` wraps the whole launch, so a Ctrl-C between
trials counts too: its SIGINT handler notes the interrupt and raises ``KeyboardInterrupt`` as
Python's does, and a launch that ends by ``KeyboardInterrupt``, or by ``SystemExit`` with status 130,
was interrupted. `cancel_stopped` records as ``cancelled`` the
trials of this sweep (result.json written since it started, under its sweep dir) still ``running``
that no live process holds (`lora_lab.sweeps.outcome.held_elsewhere`): a concurrent sweep's live
trial is left alone. Such a trial's worker died before its own handler wrote (the executor stops its
workers on Ctrl-C), so its process entry is still open: it is closed ``cancelled``, its time counted up
to the run dir's last write (`lora_lab.resume.attempts.close_orphaned`), not left for the rerun to
call ``killed`` with only the time of its last checkpoint. A rerun of the same command resumes them
from their checkpoints.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from lora_lab.results.record import RESULT_NAME, read_record, write_result
from lora_lab.resume.attempts import close_orphaned
from lora_lab.sweeps.outcome import held_elsewhere

EXIT_INTERRUPTED = 128 + signal.SIGINT


class SweepInterrupt:
    """``with SweepInterrupt() as stop: launch()`` then ``stop.hit``: whether Ctrl-C ended the launch."""

    def __init__(self):
        self.hit, self.started, self._previous = False, time.time(), None

    def _on_sigint(self, signum, frame):
        self.hit = True
        raise KeyboardInterrupt

    def __enter__(self) -> "SweepInterrupt":
        self.started = time.time()
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
        if exc_type is KeyboardInterrupt or (exc_type is SystemExit and getattr(exc, "code", None) == EXIT_INTERRUPTED):
            self.hit = True  # the trial's own SIGINT handler (`lora_lab.resume.signals.StopOnSignals`) ends with 130
        return self.hit and exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit))


def cancel_stopped(sweep_dirs, since: float) -> list[str]:
    """Mark this sweep's stopped trials ``cancelled`` (see the module docstring); the run dirs of its
    cancelled trials (those marked here and those that recorded their own stop since ``since``)."""
    cancelled = []
    for sweep_dir in sweep_dirs:
        for path in sorted(Path(sweep_dir).rglob(RESULT_NAME)) if Path(sweep_dir).is_dir() else []:
            try:
                if path.stat().st_mtime < since - 1:
                    continue
                record = read_record(path.parent)
            except (OSError, ValueError):
                continue
            if record is not None and record.status == "cancelled":
                cancelled.append(str(path.parent))  # the trial recorded its own stop
                continue
            if record is None or record.status != "running" or held_elsewhere(path.parent) is not None:
                continue
            record.status, record.reason = "cancelled", "interrupted: Ctrl-C on the sweep; resumes from checkpoints/last.ckpt when rerun"
            if record.attempts:
                record.wall_time_s = close_orphaned(record.attempts, "cancelled", last_write(path.parent))
            write_result(path.parent, record)
            cancelled.append(str(path.parent))
    return cancelled


def last_write(run_dir: Path) -> float:
    """The unix time of the newest file under ``run_dir`` (its log, metrics and record): the stopped
    process's last sign of life."""
    return max((f.stat().st_mtime for f in Path(run_dir).rglob("*") if f.is_file()), default=0.0)


def report_interrupt(name: str, sweep_dirs, since: float, err=None) -> int:
    """Cancel the stopped trials, print one line, return the exit status (130)."""
    err = err or sys.stderr
    cancelled = cancel_stopped(sweep_dirs, since)
    where = ", ".join(os.fspath(d) for d in sweep_dirs)
    print(f"interrupted: study {name} stopped by Ctrl-C; {len(cancelled)} trial(s) recorded cancelled in {where}; "
          "rerun the same command to resume", file=err)
    return EXIT_INTERRUPTED
