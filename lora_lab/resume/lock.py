"""`RunLock`: at most one live job per trial (run directory).

Launching a sweep twice (say, the login node dropped the first submitting process while its jobs
kept running) would put two jobs into the same deterministic run dir, resuming each other's
checkpoints and overwriting each other's files. Before a trial starts it takes an exclusive,
non-blocking ``flock`` on ``<run_dir>/.lock-rank<r>`` (one file per global rank, so the ranks of one
DDP job never contend with each other and ranks of a duplicate job all fail alike). The kernel drops
the lock when the holder dies, so a killed or requeued job never leaves a stale lock. Taking the
lock writes nothing; `RunLock.announce` records the holder once it runs the trial. Filesystems
without ``flock`` support (some Lustre mounts) log a warning and run unlocked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from pathlib import Path

from lora_lab.process_rank import rank_tag

log = logging.getLogger("lora_lab.resume")


class RunLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / f".lock-rank{rank_tag()}"  # node-qualified under a multi-node launch
        self._fh = None
        self.acquired = False

    def acquire(self) -> bool:
        """True if this process now holds the trial (or locking is unsupported); False if another does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        except OSError as err:
            log.warning("cannot lock %s (%s): running without the one-job-per-trial guard", self.path, err)
            fh.close()
            self.acquired = True
            return True
        self._fh = fh
        self.acquired = True
        return True

    def announce(self) -> None:
        """Write who holds the lock into the lock file (once the holder decided to run the trial: a
        rerun that only finds the trial finished leaves every file of the run dir untouched)."""
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}))
        self._fh.flush()

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        self.acquired = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
