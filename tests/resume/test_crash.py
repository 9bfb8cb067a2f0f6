"""SIGKILL while result.json or last.ckpt is being written never leaves a half-written file that the
report or a resume trusts: after every kill the file is the previous complete version or the new
complete one, and readers never look at the temp files a killed writer leaves behind. A naive
in-place writer under the same harness is caught torn, so the harness can see the failure it
guards against."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lora_lab.atomic import is_temp_file
from lora_lab.results.record import read_result
from lora_lab.results.collect import collect
from tests.resume.crash_writer import N

ROOT = Path(__file__).resolve().parents[2]


def temps(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if is_temp_file(p)]


def kill_mid_write(mode: str, target: Path, in_flight, check, rounds: int = 4, timeout: float = 120.0):
    """Start the writer, wait for a complete version, SIGKILL it while ``in_flight()`` says a write is
    under way, then ``check(last version reported complete)``. Returns the temp files each round left."""
    outcomes = []
    watch = target if target.is_dir() else target.parent
    for _ in range(rounds):
        for stale in temps(watch):  # debris of the previous round; no writer is alive now
            stale.unlink()
        child = subprocess.Popen([sys.executable, "-m", "tests.resume.crash_writer", mode, str(target)],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            done = int(child.stdout.readline())  # one complete version exists now
            deadline = time.time() + timeout
            while not in_flight():
                assert time.time() < deadline, "never saw a write in flight"
                time.sleep(0.002)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            done = max([done, *(int(v) for v in child.stdout.read().split())])
        finally:
            child.kill()
        check(done)
        outcomes.append(temps(watch))
    return outcomes


def test_sigkill_during_result_write(tmp_path):
    run = tmp_path / "study" / "run"
    run.mkdir(parents=True)

    def check(done):
        record = read_result(run)  # parses: never torn
        assert record["version"] in (done, done + 1) and set(record["values"]) == {record["version"]}
        assert collect([tmp_path / "study"]).trials["status"].tolist() == ["running"]  # the report: one trial, not corrupt

    assert any(kill_mid_write("result", run, lambda: bool(temps(run)), check)), "no kill landed inside a write"


@pytest.mark.slow  # each writer process imports Lightning (~10 s of CPU)
def test_sigkill_during_checkpoint_write(tmp_path):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()

    def check(done):
        state = torch.load(ckpt, weights_only=True)  # what a resume loads
        assert state["version"] in (done, done + 1) and torch.all(state["values"] == state["version"])

    assert any(kill_mid_write("checkpoint", ckpt, lambda: bool(temps(ckpt.parent)), check, rounds=3)), "no kill landed inside a write"


def test_harness_catches_a_torn_in_place_write(tmp_path):
    target = tmp_path / "naive.txt"
    complete = 2 * N  # "v," N times for a one-digit version

    def in_flight():
        return 0 < (target.stat().st_size if target.exists() else 0) < complete

    def check(done):
        assert 0 < len(target.read_text()) < complete, "the naive writer was not caught torn"

    kill_mid_write("inplace", target, in_flight, check, rounds=1)
