"""Stop signals only set a flag (the work happens at a safe point), the requeue signal wins over
SIGTERM, the handler in place before training gets the stopped run back, and one trial never runs
in two processes at once."""

import os
import signal
import subprocess
import sys
import time

from lora_lab.resume.lock import RunLock
from lora_lab.resume.signals import RunPreempted, StopSignals, hand_over


def test_signals_set_a_flag_and_restore_previous_handlers():
    calls = []
    old_usr2 = signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        stop = StopSignals()
        stop.capture_previous()
        assert stop.install() and stop.pending is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.pending == signal.SIGTERM  # the process is still alive: only a flag was set
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.pending == signal.SIGUSR2 and calls == []  # the requeue signal wins
        stop.restore()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert calls == [signal.SIGUSR2] and signal.getsignal(signal.SIGTERM) == old_term
    finally:
        signal.signal(signal.SIGUSR2, old_usr2)


def test_hand_over_runs_the_previous_handler_only_for_requeue():
    calls = []
    hand_over(RunPreempted(signal.SIGUSR2, 7, requeue=True, previous_handler=lambda s, f: calls.append((s, f))))
    hand_over(RunPreempted(signal.SIGTERM, 7, requeue=False, previous_handler=lambda s, f: calls.append("term")))
    hand_over(RunPreempted(signal.SIGUSR2, 7, requeue=True, previous_handler=signal.SIG_DFL))
    assert calls == [(signal.SIGUSR2, None)]
    assert not isinstance(RunPreempted(signal.SIGTERM, 1, False), Exception)  # `except Exception` lets it through


def test_run_lock_excludes_a_second_holder_and_dies_with_its_process(tmp_path):
    with RunLock(tmp_path) as first:
        assert first.acquired
        first.announce()  # the holder is written once it runs the trial
        with RunLock(tmp_path) as second:
            assert not second.acquired and str(os.getpid()) in second.holder()
    assert RunLock(tmp_path).acquire()  # released on exit

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from lora_lab.resume.lock import RunLock; "
        f"l = RunLock({str(tmp_path / 'b')!r}); assert l.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not RunLock(tmp_path / "b").acquire()
        holder.kill()  # SIGKILL: no cleanup code runs
        holder.wait(timeout=30)
        deadline = time.time() + 10
        while not RunLock(tmp_path / "b").acquire():
            assert time.time() < deadline, "lock not released by the kernel after SIGKILL"
            time.sleep(0.1)
    finally:
        holder.kill()
