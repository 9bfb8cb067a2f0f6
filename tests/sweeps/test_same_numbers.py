"""sweeps/same_numbers.sh runs one short trial at an older commit and at the checkout and compares what
each computed byte for byte: in a clone of this repository, HEAD against itself gives the same numbers,
and a commit that changes LoRA's default alpha gives different ones (a real git history, real trials
on the tiny backbone)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIAL = ["debug=tiny", "trainer.max_steps=4", "trainer.max_epochs=-1", "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null"]


def _git(repo, *args):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow  # four tiny trials (~1 min)
def test_same_numbers_agrees_with_itself_and_catches_a_changed_default(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "LORA_LAB_PYTHON": sys.executable}
    same = subprocess.run(["bash", "sweeps/same_numbers.sh", "HEAD", *TRIAL], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert same.returncode == 0, same.stdout + same.stderr[-3000:]
    assert same.stdout.startswith("same numbers: HEAD and this checkout") and same.stdout.rstrip().endswith(
        "agree byte for byte on logs/metrics.csv predictions_test.jsonl predictions_val.jsonl")
    lora = clone / "conf" / "adapter" / "lora.yaml"
    lora.write_text(lora.read_text().replace("alpha: 16", "alpha: 32"))
    _git(clone, "commit", "-qam", "a different default alpha")
    differ = subprocess.run(["bash", "sweeps/same_numbers.sh", "HEAD~1", *TRIAL], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert differ.returncode == 1 and differ.stdout.strip() == "different numbers: logs/metrics.csv differs between HEAD~1 and this checkout", differ.stdout + differ.stderr[-2000:]
    assert not (clone / ".git" / "worktrees").exists() or not any((clone / ".git" / "worktrees").iterdir())  # the temporary worktree is gone


def test_a_rev_that_is_no_commit_is_one_line():
    proc = subprocess.run(["bash", "sweeps/same_numbers.sh", "no-such-rev"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: REV: no-such-rev is not a commit of this repository"
