"""The end of a grid sweep (``lora-lab sweep``, ``lora-lab train --multirun``): one line per trial
that did not succeed, and the exit status.

A trial whose run dir another live process holds (its `RunLock` is taken: a second sweep of the same
study running it right now) is that process's trial, not a failure of this sweep: it is listed as
``running elsewhere`` and does not make the exit status 1. Every other status but ``success``
(failed, cancelled, running without a holder, corrupt, new) does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lora_lab.results.record import record_status
from lora_lab.resume.lock import RunLock


def held_elsewhere(run_dir: Path) -> str | None:
    """Who holds the run dir's lock, when a live process other than this one does; else None.
    Never creates a file: a run dir without a lock file has no holder."""
    lock = RunLock(run_dir)
    if not lock.path.is_file():
        return None
    if lock.acquire():
        lock.release()
        return None
    return lock.holder()


def grid_outcome(name: str, run_dirs: list[str], err=None) -> int:
    """Print how the sweep's trials ended; 0 when each succeeded or runs in another live process."""
    err = err or sys.stderr
    bad, elsewhere = [], []
    for run_dir in run_dirs:
        status = record_status(run_dir)
        if status == "success":
            continue
        holder = held_elsewhere(Path(run_dir)) if status in ("running", "new") else None
        (elsewhere if holder is not None else bad).append((run_dir, status if holder is None else f"running elsewhere ({holder})"))
    done = len(run_dirs) - len(bad) - len(elsewhere)
    tail = f"; {len(elsewhere)} running in another process" if elsewhere else ""
    print(f"study {name}: {done}/{len(run_dirs)} trials succeeded{tail}", file=err)
    for run_dir, status in bad + elsewhere:
        print(f"  {status}: {run_dir}", file=err)
    return 1 if bad else 0
