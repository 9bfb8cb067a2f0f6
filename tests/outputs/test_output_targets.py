"""Issue 24, class 1: no command writes inside a run dir it does not own, nor into a non-empty
directory without ``--overwrite`` (`lora_lab.output_target`, used by export, merge-adapters and
report). One finished tiny run, trained once through the real entry point; every refused command
leaves its files byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import lora_lab, md5s, one_error
from tests.resume.exact import train_cli

TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1",
        "test_after_fit=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("outputs")
    assert train_cli([*TINY, f"paths.runs_root={tmp / 'runs'}"]) == 0
    run_dir = next((tmp / "runs").rglob("result.json")).parent
    assert json.loads((run_dir / "result.json").read_text())["status"] == "success"
    return run_dir


@pytest.mark.parametrize("argv", [
    lambda r: ["export", str(r), str(r / "adapter"), "--format", "peft"],   # issue example: overwrote the scored adapter
    lambda r: ["export", str(r), str(r)],                                    # issue example: added files to the run dir
    lambda r: ["merge-adapters", str(r / "adapter"), str(r / "adapter")],    # issue example: a 90 MB model into the run
    lambda r: ["export", str(r), str(r / "adapter"), "--overwrite"],         # --overwrite never reaches into a run
    lambda r: ["export", str(r), str(r / "new" / "deeper")],                 # a new directory inside the run
    lambda r: ["merge-adapters", str(r / "checkpoints"), str(r / "adapter"), "--overwrite"],
    lambda r: ["report", str(r), "--out", str(r / "report")],
], ids=["export-into-adapter", "export-into-run", "merge-into-adapter", "export-overwrite", "export-new-subdir",
        "merge-into-checkpoints", "report-into-run"])
def test_no_command_writes_into_a_finished_run(run, argv, capsys):
    runs_root = next(p for p in run.parents if p.name == "runs")
    before = md5s(runs_root)
    args = argv(run)
    assert lora_lab(args) == 2
    one_error(capsys, "run or sweep directory", "result.json")
    assert md5s(runs_root) == before  # byte-identical: nothing written, not even a directory's file
    assert not (run / "new").exists() and not (run / "report").exists()


def test_export_refuses_a_non_empty_target_without_overwrite(run, tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert lora_lab(["export", str(run), str(target)]) == 2
    one_error(capsys, "export.out_dir", "not empty", "--overwrite")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert lora_lab(["export", str(run), str(target), "--overwrite"]) == 0
    capsys.readouterr()
    assert (target / "notes.txt").read_text() == "keep me"
    assert json.loads((target / "adapter_config.json").read_text())["peft_type"] == "LORA"
    # a second export into the now non-empty target needs --overwrite again
    assert lora_lab(["export", str(run), str(target)]) == 2
    one_error(capsys, "not empty")


def test_export_to_an_empty_or_new_dir_works_and_the_run_still_exports(run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert lora_lab(["export", str(run), str(tmp_path / "empty")]) == 0
    assert lora_lab(["export", str(run), str(tmp_path / "new" / "dir")]) == 0
    capsys.readouterr()
    a = (tmp_path / "empty" / "adapter_model.safetensors").read_bytes()
    assert a == (tmp_path / "new" / "dir" / "adapter_model.safetensors").read_bytes()


def test_target_that_is_a_file_or_unwritable_is_one_line(run, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert lora_lab(["export", str(run), str(blocker)]) == 2
    one_error(capsys, "existing file")
    assert lora_lab(["export", str(run), str(blocker / "below")]) == 2  # a parent that is a file: mkdir fails
    one_error(capsys, "cannot write")
    assert lora_lab(["report", str(run), "--out", "/proc/lora_lab_report", "--no-plots"]) == 2
    one_error(capsys, "--out", "cannot write")
    assert blocker.read_text() == "x"


def test_report_rewrites_its_own_output_but_not_a_foreign_directory(run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert lora_lab(["report", str(run), "--out", str(out), "--no-plots"]) == 0
    assert lora_lab(["report", str(run), "--out", str(out), "--no-plots"]) == 0  # its own previous output (meta.json)
    foreign = tmp_path / "paper"
    foreign.mkdir()
    (foreign / "draft.tex").write_text("\\section{}")
    capsys.readouterr()
    assert lora_lab(["report", str(run), "--out", str(foreign), "--no-plots"]) == 2
    one_error(capsys, "--out", "not empty")
    assert sorted(p.name for p in foreign.iterdir()) == ["draft.tex"]


def test_merge_output_must_not_hold_its_inputs(run, tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    assert lora_lab(["export", str(run), str(tmp_path / "exp" / "peft")]) == 0
    capsys.readouterr()
    before = md5s(tmp_path / "exp")
    assert lora_lab(["merge-adapters", str(tmp_path / "exp"), str(run / "adapter"), str(tmp_path / "exp" / "peft"), "--overwrite"]) == 2
    one_error(capsys, "holds the input")
    assert md5s(tmp_path / "exp") == before
