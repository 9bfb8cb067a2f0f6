"""SLURM's stop signals as a flag, and the hand-over of a stopped run to its requeue.

SLURM tells a job to stop in two ways:

- the *timeout / preemption* signal, ``--signal=USR2@<s>`` as submitit asks for it (``USR2`` unless
  ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise), sent ``signal_delay_s`` before the time limit or at
  preemption (clusters with ``PreemptParameters=send_user_signal``). Action: checkpoint at the next
  safe point, stop, and let submitit requeue the job (``scontrol requeue``) with a countdown of
  ``max_num_timeout`` timeouts;
- ``SIGTERM``: ``scontrol requeue``, preemption with ``PreemptMode=REQUEUE`` (SLURM requeues the job
  itself after the grace time), ``scancel``. Action: checkpoint at the next safe point and stop; SLURM
  decides whether the job comes back, and a rerun resumes either way.

The handlers only record the signal: a checkpoint taken inside a signal handler could see the model
between ``backward`` and ``optimizer.step``. `lora_lab.resume.checkpoint.ResumeCheckpoint` acts on the
flag at the next safe point and raises `RunPreempted`; `lora_lab.run.trial` records it in result.json and
calls `hand_over`, which runs the handler that was installed before training (submitit's, which
dumps the resubmission, requeues and exits).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable

log = logging.getLogger("lora_lab.resume")


def requeue_signal() -> signal.Signals:
    """The timeout/preemption signal submitit puts in ``#SBATCH --signal`` (``USR2`` by default)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, "SIG" + name, signal.SIGUSR2)


class RunPreempted(BaseException):
    """Training stopped on a SLURM signal after ``last.ckpt`` was written at ``step``.

    A `BaseException` like `SystemExit`: the generic ``except Exception`` that records a failed trial
    must not see it (a preempted run has not failed).
    """

    def __init__(self, signum: int, step: int, requeue: bool, previous_handler: Any = None):
        self.signum, self.step, self.requeue, self.previous_handler = int(signum), int(step), bool(requeue), previous_handler
        super().__init__(f"{signal.Signals(signum).name} at optimizer step {step}: checkpoint saved, training stopped")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class StopSignals:
    """Install flag-only handlers for the requeue signal and SIGTERM; `restore` puts the old ones back."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.previous: dict[int, Any] = {}
        self._installed: dict[int, Callable] = {}

    @property
    def signums(self) -> tuple[int, ...]:
        return (int(requeue_signal()), int(signal.SIGTERM))

    def capture_previous(self) -> None:
        """Remember the handlers in place before training (submitit's); call before Lightning adds its own."""
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.getsignal(s) for s in self.signums}

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: SLURM stop signals are not handled in this run")
            return False
        for signum in self.signums:
            self.previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._on_signal)
            self._installed[signum] = self._on_signal
        return True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum not in self.received:
            self.received.append(signum)
        log.warning("received %s: checkpointing at the next safe point", signal.Signals(signum).name)

    @property
    def pending(self) -> int | None:
        """The signal to act on (the requeue signal wins over SIGTERM), or None."""
        if not self.received:
            return None
        rq = int(requeue_signal())
        return rq if rq in self.received else self.received[0]

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self.previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._installed.clear()


def hand_over(stop: RunPreempted) -> None:
    """After the stop was recorded: for the requeue signal, run the handler that was in place before
    training (submitit's requeue: dumps the resubmission, ``scontrol requeue``, exits). Returns when
    there is none (not a submitit job) or it declined (a DDP rank other than 0)."""
    if not stop.requeue:
        return
    handler = stop.previous_handler
    if callable(handler):
        log.warning("handing the stopped run to the job's own requeue handler")
        handler(stop.signum, None)


class RunStopped(BaseException):
    """SIGTERM or SIGINT (Ctrl-C) outside the training loop's safe points: while the model loads, during
    the final evaluation, while saving. The trial records ``cancelled`` (resumable from ``last.ckpt``)
    and the process exits with 128 + the signal number.

    A `BaseException`: Lightning turns a `KeyboardInterrupt` into ``sys.exit(1)`` before the trial could
    record anything, and the generic ``except Exception`` that records a failure must not see it."""

    def __init__(self, signum: int, where: str = "the trial"):
        self.signum = int(signum)
        super().__init__(f"{signal.Signals(signum).name} during {where}")


class StopOnSignals:
    """For the whole trial (main thread only): SIGTERM and SIGINT raise `RunStopped`. During fit
    `lora_lab.resume.checkpoint.ResumeCheckpoint` puts its flag-only SIGTERM handler over this one (and
    back), so a stop while training still checkpoints at the next safe point first."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.phase = "the trial"

    def _raise(self, signum: int, frame: Any) -> None:
        raise RunStopped(signum, self.phase)

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._raise)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()
