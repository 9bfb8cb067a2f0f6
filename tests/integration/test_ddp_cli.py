"""Multi-process DDP through the console script (`lora-lab train ... trainer=ddp`), on 2 gloo CPU
ranks: the ranks >= 1 Lightning starts run the same trial in the same run dir, evaluation scores
every example exactly once (odd N: no padded duplicate) and equals a 1-rank evaluation of the same
adapter state; a local --multirun with multi-process DDP is refused before any trial starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from lightning.fabric.strategies.launchers.subprocess_script import _basic_subprocess_cmd
from omegaconf import OmegaConf

from lora_lab.run.launch_ranks import as_train_module
from lora_lab.models.backbones import load_tokenizer
from lora_lab.process_rank import is_global_zero, rank_tag
from lora_lab.tasks.registry import family_of
from lora_lab.config.trial_config import validate

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "lora-lab"
N_EVAL = 33  # odd: 2 padded shards would score 34
SMALL = ["debug=tiny", "task.max_train_samples=32", f"task.max_eval_samples={N_EVAL}", "trainer.max_epochs=1",
         "task.batch_size=8", "task.eval_batch_size=8"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


def lora_lab(tmp_path, *args):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)


def evaluate_on_one_rank(run_dir: Path) -> tuple[dict, dict]:
    """Validate and test the run's last.ckpt (the adapter state its metrics were taken at) in this process."""
    record = json.loads((run_dir / "result.json").read_text())
    cfg = OmegaConf.create(record["config"])
    adapter_cfg, task_cfg, backbone_cfg = validate(cfg)
    spec = task_cfg.spec()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # as the run did: the same random tiny backbone
    resolved = record["config"]
    module_args = {"backbone": resolved["backbone"], "adapter": adapter_cfg.to_dict(), "optim": resolved["optim"], "task": resolved["task"]}
    datamodule, module = family_of(task_cfg).build(task_cfg, spec, load_tokenizer(backbone_cfg), backbone_cfg, module_args, 0)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    ckpt = str(run_dir / "checkpoints/last.ckpt")
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    return record, {**val, **test}


@pytest.mark.slow
def test_console_script_ddp_matches_one_rank_evaluation(tmp_path):
    proc = lora_lab(tmp_path, "train", *SMALL, *DDP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list((tmp_path / "runs").rglob("result.json"))
    assert len(results) == 1  # rank 0 writes, into the one deterministic run dir both ranks used
    record, one_rank = evaluate_on_one_rank(results[0].parent)
    assert record["status"] == "success"
    assert record["optimizer_steps"] == 2  # 32 examples over 2 ranks with batch 8
    assert record["data"]["sizes"]["val"] == record["data"]["sizes"]["test"] == N_EVAL
    best, test = record["metrics"]["best_val"], record["metrics"]["test"]
    for split, values in (("val", best), ("test", test)):
        correct = values[f"{split}/accuracy"] * N_EVAL
        assert abs(correct - round(correct)) < 1e-4, f"{split}: accuracy is not k/{N_EVAL}"
        for key in (f"{split}/accuracy", f"{split}/f1"):
            assert values[key] == pytest.approx(one_rank[key], abs=1e-7), key
        rows = [json.loads(line) for line in (results[0].parent / f"predictions_{split}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == list(range(N_EVAL))  # both ranks' rows, each example once, in order
        assert sum(r["label"] == r["pred"] for r in rows) == round(correct)


@pytest.mark.slow
def test_local_multirun_with_multi_process_ddp_is_refused(tmp_path):
    proc = lora_lab(tmp_path, "train", "--multirun", *SMALL, *DDP, "seed=0,1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: trainer.devices: 2 processes per trial in a local --multirun")
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob("result.json"))


def test_as_train_module_is_what_lightning_re_executes(monkeypatch):
    """The child command Lightning builds inside `as_train_module` is ``python -m lora_lab.train ARGV``."""
    monkeypatch.setattr(sys, "argv", ["lora-lab train", "debug=tiny"])
    with as_train_module(["debug=tiny", "seed=3"]):
        assert _basic_subprocess_cmd() == [sys.executable, "-m", "lora_lab.train", "debug=tiny", "seed=3"]
    assert sys.argv == ["lora-lab train", "debug=tiny"]


def test_rank_zero_uses_the_global_rank(monkeypatch):
    for key in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert is_global_zero()
    monkeypatch.setenv("NODE_RANK", "1")  # Lightning's own multi-node launch: local rank 0 of node 1
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not is_global_zero() and rank_tag() == "node1-0"
    monkeypatch.setenv("RANK", "0")
    assert is_global_zero()
    monkeypatch.setenv("RANK", "3")
    assert rank_tag() == "3"
