"""A sweep launched from a checkout with uncommitted changes says so before any trial runs: each of its
trials would record ``git.dirty`` and the table would carry a code-version note. Read from a real git
repository (`lora_lab.results.record.git_state`)."""

import subprocess

from lora_lab.results.record import git_state
from lora_lab.sweeps.launch import dirty_tree_warning


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_a_dirty_checkout_gets_one_warning_line_and_a_clean_one_none(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "trial.py").write_text("lr = 5e-4\n")
    _git(tmp_path, "add", "trial.py")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    clean = git_state(tmp_path)
    assert clean["dirty"] is False and len(clean["sha"]) == 40
    assert dirty_tree_warning(clean) is None
    (tmp_path / "trial.py").write_text("lr = 2e-3\n")
    dirty = git_state(tmp_path)
    line = dirty_tree_warning(dirty)
    assert dirty["dirty"] is True and dirty["sha"] == clean["sha"]
    assert line is not None and "\n" not in line and line.startswith(f"warning: lora_lab's checkout has uncommitted changes (git {clean['sha'][:10]}")
    (tmp_path / "notes.txt").write_text("an untracked file changes no trial\n")
    (tmp_path / "trial.py").write_text("lr = 5e-4\n")
    assert dirty_tree_warning(git_state(tmp_path)) is None
