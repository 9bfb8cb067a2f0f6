"""README command 1 leaves the tree clean (issue 23 item 5): `bash .ci/quickstart` on a fresh clone of
the committed tree, with the real CLI of that clone, ends with an empty ``git status --porcelain`` and its
report under ``runs/quick_report/``. The set-up is the one thing not repeated: the clone's ``.venv`` (an
ignored path) holds this interpreter behind ``.venv/bin/lora-lab`` and the stamp `.ci/setup.sh` checks, so
the script's set-up returns at once. The sweep gets the script's own override hook (its arguments) to
train 2 steps on small data instead of 100."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_quickstart_on_a_fresh_clone_leaves_git_status_empty(tmp_path):
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "--no-hardlinks", str(ROOT), str(clone))  # the committed tree only
    venv_bin = clone / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    stamp = hashlib.sha256((clone / ".ci" / "constraints.txt").read_bytes() + (clone / "pyproject.toml").read_bytes()).hexdigest()
    (clone / ".venv" / ".stamp").write_text(stamp + "\n")
    (venv_bin / "lora-lab").write_text(f'#!/bin/sh\nPYTHONPATH="{clone}" exec "{sys.executable}" -m lora_lab.cli "$@"\n')
    (venv_bin / "lora-lab").chmod(0o755)
    assert _git(clone, "status", "--porcelain") == ""
    env = {k: v for k, v in os.environ.items() if k not in ("LORA_LAB_RUNS", "QUICK_REPORT", "PYTHONPATH")}
    small = ["trainer.max_steps=2", "trainer.val_check_interval=2", "task.train_size=64", "task.val_size=16", "task.test_size=16",
             "hydra/launcher=sequential"]
    proc = subprocess.run(["bash", ".ci/quickstart", *small], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert "study quick: 8/8 trials succeeded" in proc.stdout + proc.stderr
    assert (clone / "runs" / "quick_report" / "table.md").is_file() and (clone / "runs" / "quick_report" / "index.html").is_file()
    assert _git(clone, "status", "--porcelain", "--untracked-files=all") == ""  # nothing tracked changed, nothing new outside ignored paths
