"""A parallel sweep's workers end with their sweep: ``kill -9`` of the sweep process takes them down.

The parallel launcher (hydra-joblib-launcher) runs trials in loky worker processes, children of the
sweep process. A SIGKILL of the sweep reaches none of them: they are re-parented and go on (a
``kill -9`` used to leave the workers training and their resource trackers alive for many minutes).
The sweep process marks itself (`mark_sweep_process`: its pid in ``LORA_LAB_SWEEP_PID``, inherited by
the workers it starts); a trial that finds itself in a direct child of that process
(`watch_sweep_process`) starts a daemon thread that polls ``os.getppid()``. When the parent is gone
(the pid changes to a reaper's), the thread sends the worker ``SIGTERM`` (the trial checkpoints and
records the stop at its next safe point, `lora_lab.resume.signals`) and, ``grace_s`` later, ends the
process with ``os._exit``. With the workers gone, the resource trackers see their pipes close and
exit. A job that is not a child of the sweep (SLURM, submitit) is never watched.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger("lora_lab.sweeps")
SWEEP_PID_ENV = "LORA_LAB_SWEEP_PID"
POLL_S = 0.5
GRACE_S = 5.0


def mark_sweep_process() -> None:
    """Called by the sweep process before it launches trials."""
    os.environ[SWEEP_PID_ENV] = str(os.getpid())


def _watch(parent: int, poll_s: float, grace_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    log.warning("the sweep process %d is gone: stopping this trial (pid %d)", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(128 + signal.SIGTERM)


def watch_sweep_process(poll_s: float = POLL_S, grace_s: float = GRACE_S) -> bool:
    """In a trial: start the watcher when this process is a worker the sweep process started
    (True); False in the sweep process itself or in a process it did not start."""
    try:
        parent = int(os.environ.get(SWEEP_PID_ENV, ""))
    except ValueError:
        return False
    if parent == os.getpid() or os.getppid() != parent:
        return False
    if any(t.name == "lora_lab-sweep-watch" for t in threading.enumerate()):
        return True  # a loky worker runs many trials: one watcher per process
    threading.Thread(target=_watch, args=(parent, poll_s, grace_s), name="lora_lab-sweep-watch", daemon=True).start()
    return True
