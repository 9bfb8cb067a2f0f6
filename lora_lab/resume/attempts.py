"""Every process that worked on a trial, and the trial's total wall time across them.

A trial can take several processes: one killed (kill -9, a lost node), stopped by a signal (SLURM
preemption, Ctrl-C) or failed, then a rerun or requeued job that resumes from ``last.ckpt``. Its
cost is the sum of all of them, not the last one's. ``result.json: attempts`` lists one entry per
process::

    {"host": ..., "pid": ..., "slurm_job_id": ..., "started": "2026-...", "started_unix": 1.7e9,
     "wall_s": 61.2, "ended": "success" | "failed" | "cancelled" | "stopped: SIGUSR2" | "killed" | null,
     "git": {"sha": ..., "dirty": ...}, "machine": {"cpu": ..., "cpus": 2, "devices": "cpu"}}

(``git``: the code this process ran, given by the trial: a trial resumed under another commit, or from
a checkout with uncommitted changes, says so even when its last process ran a clean commit; ``machine``: the CPU model, usable cores and training
devices of this process (`lora_lab.machine`): a trial resumed on another machine says so too)

and ``wall_time_s`` is the sum of their ``wall_s``. A running process updates its entry every time
``last.ckpt`` is written (`lora_lab.resume.heartbeat.AttemptHeartbeat`), so a process that was killed
without a word counts up to its last checkpoint, and the next attempt marks it ``killed`` when it
starts. A sweep stopped by Ctrl-C whose worker died before recording its own stop closes that entry
itself (`close_orphaned`): ``cancelled``, counted up to the run dir's last write.
"""

from __future__ import annotations

import os
import socket
import time

from lora_lab.machine import host_machine


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(unix))


def begin_attempt(previous: list[dict] | None) -> list[dict]:
    """The earlier attempts (an unfinished one marked ``killed``) plus this process's new entry (its
    ``git`` is filled in by the trial, from the record it starts)."""
    attempts = [dict(a, ended=a.get("ended") or "killed") for a in (previous or []) if isinstance(a, dict)]
    now = time.time()
    attempts.append({"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                     "started": _iso(now), "started_unix": now, "wall_s": 0.0, "ended": None, "machine": host_machine()})
    return attempts


def own_entry(attempts: list[dict]) -> dict | None:
    """This process's entry while it is open (the last one, with this pid); else None."""
    last = attempts[-1] if attempts else None
    return last if last is not None and last.get("pid") == os.getpid() and last.get("ended") is None else None


def tick(attempts: list[dict]) -> float:
    """Update this process's ``wall_s``; returns the total over every attempt."""
    mine = own_entry(attempts)
    if mine is not None:
        mine["wall_s"] = round(time.time() - float(mine["started_unix"]), 3)
    return total_wall_time(attempts)


def end_attempt(attempts: list[dict], how: str) -> float:
    """Close this process's entry as ``how``; returns the total wall time."""
    mine = own_entry(attempts)
    total = tick(attempts)
    if mine is not None:
        mine["ended"] = how
    return total


def total_wall_time(attempts: list[dict]) -> float:
    return round(sum(float(a.get("wall_s") or 0.0) for a in attempts), 3)


def close_orphaned(attempts: list[dict], how: str, last_sign_of_life: float) -> float:
    """Close the last entry when its process ended without closing it (a sweep worker killed on
    Ctrl-C before its own handler wrote): ``ended = how``, ``wall_s`` = ``last_sign_of_life`` (the
    run dir's last write, unix time) - its start, never less than its last heartbeat. Returns the
    total wall time."""
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else None
    if last is not None and last.get("ended") is None:
        started = last.get("started_unix")
        if isinstance(started, (int, float)) and not isinstance(started, bool):
            last["wall_s"] = round(max(float(last.get("wall_s") or 0.0), last_sign_of_life - float(started)), 3)
        last["ended"] = how
    return total_wall_time(attempts)
