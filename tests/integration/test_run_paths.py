"""Issue 24, class 4: config values that become path components are names (`lora_lab.path_names`),
and a trial's identity does not depend on where its runs root is or how it is spelled
(`lora_lab.results.trial_identity.LOCATION_KEYS`). Through the real entry point, in-process (`train_cli`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from lora_lab.path_names import check_name, check_relative_path, check_suffix, name_problem
from lora_lab.errors import ConfigError
from tests.cli_helpers import one_error
from tests.resume.exact import train_cli

TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1",
        "test_after_fit=false"]


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(root.rglob("*"))}



@pytest.mark.parametrize("override,key", [
    ("study=../../x", "study"),                  # issue example: wrote outside the runs root, exit 0
    ("study=", "study"),                         # issue example: accepted
    ("study=a/b", "study"),
    ("study=.hidden", "study"),
    ("study=..", "study"),
    ("run_suffix=/../../y", "run_suffix"),       # issue example
    ("run_suffix=/..", "run_suffix"),
    ("run_suffix=-x/y", "run_suffix"),
    ("run_name=../../escape", "run_name"),
    ("run_name=/abs/escape", "run_name"),
    ("run_name=a//b", "run_name"),
    ("task.name=..", "task.name"),
    ("backbone.short_name=../../m", "backbone.short_name"),
    ("backbone.short_name=/abs", "backbone.short_name"),
])
def test_path_components_are_names(tmp_path, monkeypatch, capsys, override, key):
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert train_cli([*TINY, "paths.runs_root=runs", override]) == 2
    line = one_error(capsys, f"error: {key}: ")
    assert "allowed:" in line
    assert tree(tmp_path) == {"a": "dir", "a/b": "dir", "a/b/work": "dir"}  # nothing written, inside or outside the root


def test_good_names_pass():
    assert check_name("study", "glue-minilm_v2.1") == "glue-minilm_v2.1"
    assert check_suffix("run_suffix", "") == "" and check_suffix("run_suffix", "-warm.1") == "-warm.1"
    assert check_relative_path("backbone.short_name", "FacebookAI/roberta-base") == "FacebookAI/roberta-base"
    assert name_problem("a..b") is None  # dots inside a name are fine
    for bad in ("", ".", "..", "a/b", ".x", " x", "x ", "a\\b", 3):
        with pytest.raises(ConfigError):
            check_name("study", bad)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("identity")
    saved = Path.cwd()
    import os

    os.chdir(work)
    try:
        assert train_cli([*TINY, "paths.runs_root=runs"]) == 0
    finally:
        os.chdir(saved)
    return work


@pytest.mark.parametrize("spelling", ["runs", "runs/", "./runs", "ABS", "COPY", "MOVED"])
def test_identity_does_not_depend_on_the_runs_root(finished, tmp_path, monkeypatch, capsys, spelling):
    """Issue example: each of these was "a finished result of a different config" (exit 2)."""
    monkeypatch.chdir(finished)
    root = {"ABS": str(finished / "runs"), "COPY": str(tmp_path / "copy"), "MOVED": str(tmp_path / "moved")}.get(spelling, spelling)
    if spelling == "COPY":
        shutil.copytree(finished / "runs", root)
    if spelling == "MOVED":
        shutil.copytree(finished / "runs", tmp_path / "tmp")
        (tmp_path / "tmp").rename(root)
    before = tree(Path(root))
    capsys.readouterr()
    assert train_cli([*TINY, f"paths.runs_root={root}"]) == 0
    err = capsys.readouterr().err
    assert "already finished: " in err and "error" not in err
    assert tree(Path(root)) == before
    record = json.loads(next(Path(root).rglob("result.json")).read_text())
    assert record["status"] == "success"


def test_a_changed_config_in_a_moved_root_is_still_refused(finished, tmp_path, monkeypatch, capsys):
    shutil.copytree(finished / "runs", tmp_path / "moved")
    before = tree(tmp_path / "moved")
    assert train_cli([*TINY, f"paths.runs_root={tmp_path / 'moved'}", "optim.warmup_ratio=0.1"]) == 2
    assert "already holds a finished result of a different config" in one_error(capsys, "error: run_name: ")
    assert tree(tmp_path / "moved") == before
