"""A finished result survives every later command but ``force=true``; a failed one never blocks a
corrected rerun; the files a run writes are the ones its users need (readable per umask, the whole
metrics history, the scored adapter). In-process through the Hydra entry point (`cli_main`), the
way ``lora-lab train`` runs."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lora_lab.cli import main as lora_lab
from lora_lab.resume.signals import RunPreempted
from lora_lab.train import train
from tests.integration.test_train_cli import write_rte
from tests.resume.exact import STOP, tiny_cfg, train_cli

TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=2",
        "test_after_fit=false"]


def cli(tmp_path, *overrides) -> int:
    """``lora-lab train TINY OVERRIDES`` under ``tmp_path/runs``; returns the exit status."""
    return train_cli([*TINY, f"paths.runs_root={tmp_path / 'runs'}", *overrides])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_dir(tmp_path) -> Path:
    return next((tmp_path / "runs").rglob("result.json")).parent


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    assert cli(tmp) == 0
    return tmp


@pytest.mark.parametrize("bad", [
    ["trainer.precision=bf16-true"],          # bad knob, not part of the run name
    ["+optim.lrr=1e-3"],                       # typo'd added key
    ["task.max_train_samples=0"],
    ["trainer.max_epochs=3"],                  # a valid, different config with the same run name: refused
    ["trainer.max_epochs=3", "adapter.rank=4"],
])
def test_items_1_3_no_later_command_changes_a_finished_run(finished, bad, capsys):
    before = snapshot(finished / "runs")
    assert json.loads((run_dir(finished) / "result.json").read_text())["status"] == "success"
    assert cli(finished, *bad) == 2
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if ln.startswith("error: ")]) == 1 and "Traceback" not in err
    assert snapshot(finished / "runs") == before  # result.json, .hydra/, train.log, lock, adapter: byte-identical


def test_rerun_of_a_finished_run_says_so_and_writes_nothing(finished, capsys):
    before = {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*")}
    assert cli(finished) == 0
    assert "already finished: " in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*")} == before  # not even a directory touched


def test_item_2_failed_record_never_blocks_and_force_wins(tmp_path):
    boom = ["+callbacks.boom._target_=tests.resume.signal_at.RaiseIfLr", "+callbacks.boom.lr=0.0005"]
    assert cli(tmp_path, *boom) == 1  # a bug-like failure: recorded, then Hydra's exit status 1
    record = json.loads((run_dir(tmp_path) / "result.json").read_text())
    assert record["status"] == "failed" and record["reason"].startswith("RuntimeError: injected failure")
    assert cli(tmp_path) == 0  # the corrected command (another config, same run name) is not refused
    record = json.loads((run_dir(tmp_path) / "result.json").read_text())
    assert record["status"] == "success" and "boom" not in record["config"]["callbacks"]
    assert cli(tmp_path, "trainer.max_epochs=1") == 2  # a finished success of another config: refused ...
    assert cli(tmp_path, "trainer.max_epochs=1", "force=true") == 0  # ... unless forced
    record = json.loads((run_dir(tmp_path) / "result.json").read_text())
    assert record["status"] == "success" and record["config"]["trainer"]["max_epochs"] == 1


def test_item_2_missing_data_dir_claims_nothing_and_the_fix_runs(tmp_path, capsys):
    assert cli(tmp_path, "task=glue_rte", "task.data_dir=/missing/glue") == 2
    assert "error: task.data_dir: /missing/glue is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    write_rte(tmp_path / "glue")
    assert cli(tmp_path, "task=glue_rte", f"task.data_dir={tmp_path / 'glue'}") == 0


def test_item_7_unwritable_runs_root_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli(tmp_path, f"paths.runs_root={blocker}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: paths.runs_root: cannot write {blocker}") and "Not a directory" in err[0]


def test_item_8_results_respect_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        assert cli(tmp_path) == 0
    finally:
        os.umask(old)
    run = run_dir(tmp_path)
    for name in ("result.json", "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "checkpoints/last.ckpt"):
        assert (run / name).stat().st_mode & 0o777 == 0o664, name


def test_item_9_metrics_csv_keeps_rows_from_before_a_resume(tmp_path):
    cfg = tiny_cfg("logger=csv", STOP, "+callbacks.stop.step=5", "trainer.log_every_n_steps=1")
    with pytest.raises(RunPreempted):
        train(cfg, tmp_path / "run")
    train(cfg, tmp_path / "run")
    with open(tmp_path / "run/logs/metrics.csv") as fh:
        steps = {int(row["step"]) for row in csv.DictReader(fh) if row.get("train/loss")}
    # rows from before the stop (steps 0-3) and after it; the row of the batch the stop ends (logged by
    # Lightning after the callback that stops) is not written by either attempt
    assert set(range(0, 4)) | set(range(5, 35)) <= steps


def test_item_12_adapter_is_the_scored_state(tmp_path, capsys):
    # lr high enough that the validation accuracy moves; 6 evaluations
    assert cli(tmp_path, "trainer.max_epochs=6", "optim.lr=5e-2") == 0
    run = run_dir(tmp_path)
    record = json.loads((run / "result.json").read_text())
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    best_state = ckpt["lora_lab_eval"]["best_state"]
    adapter, last = load_file(str(run / "adapter/adapter_model.safetensors")), load_file(str(run / "adapter_last/adapter_model.safetensors"))
    assert record["exported_state"] == "best_val" and record["metrics"]["best_val"]["step"] < record["optimizer_steps"]
    assert set(adapter) == set(best_state) and all(torch.equal(adapter[k], best_state[k]) for k in adapter)
    final = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    assert all(torch.equal(last[k], final[k]) for k in last if k in final)
    assert any(not torch.equal(adapter[k], last[k]) for k in adapter)

    capsys.readouterr()
    assert lora_lab(["export", str(run), str(tmp_path / "peft")]) == 0
    out = capsys.readouterr().out
    assert f"best validation, step {record['metrics']['best_val']['step']}" in out and "adapter_last/" in out
