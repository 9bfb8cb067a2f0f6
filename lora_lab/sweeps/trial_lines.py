"""One line per finished trial while a sweep runs, whatever launches the trials.

`TrialLines` watches the planned run directories from the sweep process (a thread polling each
``result.json``), so it sees trials finishing in this process (sequential launcher), in joblib
workers (parallel) or on SLURM nodes alike. A trial counts as finished in this sweep when its
``result.json`` was written after the sweep started with a final status (success, failed,
cancelled); trials already finished before are counted once at the start (a rerun skips them).

    [3/8] synthetic/minilm/lora-r8-a16-kaiming-qv/lr0.0005-seed0 success val=0.7840 test=0.7480 71 s  ETA 4 min 10 s
    [4/8] synthetic/minilm/dora-.../lr0.0005-seed1 failed: RuntimeError: boom (log: <run dir>/train.log)

ETA: with ``p`` trials seen running at once (parallel jobs) and a mean trial time ``t`` of this sweep's
finished trials, ``t * ceil(remaining / p)`` minus the mean time the running trials have already spent.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

from lora_lab.results.record import RESULT_NAME, load_record
from lora_lab.results.run_summary import TRIAL_LINES_ENV, fmt_duration, fmt_metric, summarize

FINAL = ("success", "failed", "cancelled")
LOG_NAME = "train.log"  # Hydra's job log: <run dir>/<job name>.log


def read_record(run_dir: Path, since_ns: int | None) -> tuple[dict | None, int]:
    """``(record, mtime_ns)`` of ``run_dir``'s result (None if absent, unreadable or older than ``since_ns``)."""
    path = run_dir / RESULT_NAME
    try:
        mtime = os.stat(path).st_mtime_ns
        if since_ns is not None and mtime < since_ns:
            return None, mtime
        return load_record(path).to_dict(), mtime
    except (OSError, ValueError):  # not written yet, or being replaced
        return None, 0


def read_final(run_dir: Path, since_ns: int | None) -> dict | None:
    """The record in ``run_dir`` if it is final (and, with ``since_ns``, written after that time)."""
    record, _ = read_record(run_dir, since_ns)
    return record if record is not None and record.get("status") in FINAL else None


def eta_s(walls: list[float], remaining: int, parallel: int, running_for: list[float]) -> float:
    """Seconds left: ``mean(walls) * ceil(remaining / parallel)`` less the running trials' mean elapsed time."""
    mean_wall = sum(walls) / len(walls)
    spent = sum(running_for) / len(running_for) if running_for else 0.0
    return max(0.0, mean_wall * math.ceil(remaining / max(1, parallel)) - min(spent, mean_wall))


def trial_line(k: int, total: int, name: str, record: dict) -> str:
    s = summarize(record)
    head = f"[{k}/{total}] {name} {s['status']}"
    if s["status"] != "success":
        reason = " ".join(str(s["reason"] or "no reason recorded").split())
        return f"{head}: {reason[:300]} (log: {Path(record.get('run_dir') or '.') / LOG_NAME})"
    return f"{head} val={fmt_metric(s['best_val'])} test={fmt_metric(s['test'])} {fmt_duration(s['wall_time_s'])}"


class TrialLines:
    """Context manager: prints the lines while the sweep's body runs, then the ones left at the end."""

    def __init__(self, trials: list[tuple[str, str]], out=None, poll_s: float = 1.0):
        self.trials = [(Path(run_dir), name) for run_dir, name in trials]
        self.out, self.poll_s = out or sys.stdout, poll_s
        self.reported: set[Path] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="trial-lines", daemon=True)
        self.done_before = 0
        self.walls: list[float] = []
        self.parallel = 1  # most trials seen running at once

    def __enter__(self):
        self.started_ns, self.started = time.time_ns(), time.monotonic()
        for run_dir, _ in self.trials:
            record = read_final(run_dir, None)
            if record is not None and record.get("status") == "success":
                self.reported.add(run_dir)  # skipped by the sweep
        self.done_before = len(self.reported)
        if self.done_before:
            self._print(f"{self.done_before}/{len(self.trials)} trials already finished (skipped)")
        self.saved_env = os.environ.get(TRIAL_LINES_ENV)
        os.environ[TRIAL_LINES_ENV] = "1"  # inherited by parallel workers and SLURM jobs: no per-trial summary
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.poll()
        if self.saved_env is None:
            os.environ.pop(TRIAL_LINES_ENV, None)
        else:
            os.environ[TRIAL_LINES_ENV] = self.saved_env
        return False

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _watch(self) -> None:
        while not self.stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        finished, running_for, now_ns = [], [], time.time_ns()
        for run_dir, name in self.trials:
            if run_dir in self.reported:
                continue
            record, mtime = read_record(run_dir, self.started_ns)
            status = (record or {}).get("status")
            if status in FINAL:
                finished.append((run_dir, name, record))
            elif status == "running":
                running_for.append((now_ns - mtime) / 1e9)  # written "running" when the trial started
        self.parallel = max(self.parallel, len(running_for) + len(finished))
        for run_dir, name, record in finished:
            self.reported.add(run_dir)
            wall = record.get("wall_time_s")
            self.walls.append(float(wall) if isinstance(wall, (int, float)) else time.monotonic() - self.started)
            line = trial_line(len(self.reported), len(self.trials), name, record)
            left = len(self.trials) - len(self.reported)
            if left:
                line += f"  ETA {fmt_duration(eta_s(self.walls, left, self.parallel, running_for))}"
            self._print(line)
