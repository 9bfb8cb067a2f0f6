"""AdaLoRA through the real training path (`lora_lab.train.train`, Lightning): the module's generic
hooks drive the allocator with no user call, under gradient accumulation and clipping; the budget
follows b(t) with T counted in optimizer steps; the orth regulariser is in the logged loss; the final
rank pattern lands in result.json, the saved adapter and the heatmap; resume is exact."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from lora_lab.adapters.adalora import AdaLoraMethod
from lora_lab.adapters.rank_allocator import budget_schedule
from lora_lab.errors import ConfigError
from lora_lab.tasks.classification.module import ClassificationModule
from lora_lab.config.compose import CONF_DIR
from lora_lab.train import train
from tests.adapters.adalora_utils import single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")

# 96 examples / batch 8 = 12 micro-batches per epoch; accumulate 2 -> 6 optimizer steps; 2 epochs -> T = 12
TINY = [
    "debug=tiny", "logger=csv", "adapter=adalora", "task.train_size=96", "task.val_size=32", "task.test_size=32",
    "task.batch_size=8", "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2", "trainer.log_every_n_steps=1",
    "adapter.r=4", "adapter.target_r=2", "adapter.tinit=2", "adapter.tfinal=3", "adapter.delta_t=2", "optim.lr=1e-2",
]
T, N_MATRICES, R, TARGET_R = 12, 4, 4, 2


def cfg(*extra: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=[*TINY, *extra])


def adapter_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def test_end_to_end_budget_follows_schedule_with_accumulation_and_clipping(tmp_path, monkeypatch):
    final_state = {}
    original_fit_end = ClassificationModule.on_fit_end

    def stash(self):
        from lora_lab.adapters.io import adapter_checkpoint_state

        final_state.update({k: v.detach().clone() for k, v in adapter_checkpoint_state(self.model, self.method).items()})
        return original_fit_end(self)

    monkeypatch.setattr(ClassificationModule, "on_fit_end", stash)
    run = tmp_path / "run"
    record = train(cfg("trainer.gradient_clip_val=1.0"), run)
    assert record["status"] == "success" and record["optimizer_steps"] == T

    summary = record["method_summary"]
    b0, bT = R * N_MATRICES, TARGET_R * N_MATRICES
    assert summary["total_steps"] == T  # from the trainer, in optimizer steps (not micro-batches)
    assert (summary["budget_init"], summary["budget_target"], summary["budget_final"]) == (b0, bT, bT)
    assert summary["total_rank"] == sum(summary["rank_pattern"].values()) == bT
    assert summary["final_pattern_fixed"] is True

    # the allocator ran at exactly the scheduled optimizer steps and kept exactly b(t) triplets
    hist = json.loads((run / "adalora_budget_history.json").read_text())["allocations"]
    assert [a["step"] for a in hist] == [4, 6, 8, 9]  # every delta_t=2 in (tinit, T - tfinal], and T - tfinal = 9
    for a in hist:
        assert a["budget"] == budget_schedule(a["step"], b0, bT, 2, 3, T, 2)[0] == a["kept"]
    assert hist[0]["budget"] > bT  # the cubic decay is visible, not a jump

    # orth regulariser is part of the logged training loss
    rows = list(csv.DictReader((run / "logs" / "metrics.csv").open()))
    logged = [r for r in rows if r.get("train/reg_loss")]
    assert len(logged) >= T // 2
    for r in logged:
        reg, task, total = float(r["train/reg_loss"]), float(r["train/task_loss"]), float(r["train/loss"])
        assert reg > 0 and total == pytest.approx(task + reg, rel=1e-5)

    # the saved adapter is the final trained state and carries the same rank pattern as result.json
    saved = adapter_tensors(run)
    assert saved.keys() == final_state.keys() and all(torch.equal(saved[k], final_state[k].cpu()) for k in saved)
    meta = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert meta["summary"]["rank_pattern"] == summary["rank_pattern"]
    assert {k[: -len(".rank_mask")]: int(v.sum()) for k, v in saved.items() if k.endswith(".rank_mask")} == summary["rank_pattern"]
    for name in summary["rank_pattern"]:  # masked singular values are exactly zero
        assert torch.equal(saved[f"{name}.lora_E"] != 0, saved[f"{name}.rank_mask"])
    assert (run / "adalora_rank_heatmap.png").stat().st_size > 1000


def test_schedule_longer_than_the_run_is_rejected_before_training(tmp_path, monkeypatch):
    steps = []
    monkeypatch.setattr(AdaLoraMethod, "on_optimizer_step", lambda self, s, t: steps.append(s))
    with pytest.raises(ConfigError, match=r"tinit \+ tfinal = 8 \+ 4 must be < total optimizer steps T = 12"):
        train(cfg("adapter.tinit=8", "adapter.tfinal=4"), tmp_path / "run")
    assert steps == []


class Killed(Exception):
    pass


def _run_killed_then_resumed(tmp_path, monkeypatch, run: Path) -> dict:
    original = ClassificationModule.on_train_batch_start

    def kill(self, batch, batch_idx):
        if self.trainer.global_step == T // 2:  # first batch after the end-of-epoch-1 checkpoint
            raise Killed()
        return original(self, batch, batch_idx)

    with monkeypatch.context() as m:
        m.setattr(ClassificationModule, "on_train_batch_start", kill)
        with pytest.raises(Killed):
            train(cfg(), run)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == T // 2 and any(k.startswith("allocator.ema_ipt.") for k in ckpt["adapter_method_state"])
    assert json.loads((run / "result.json").read_text())["status"] != "success"  # "running": killed mid-run
    return train(cfg(), run)  # same run dir: resumes from last.ckpt


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, monkeypatch):
    full = train(cfg(), tmp_path / "full")
    resumed = _run_killed_then_resumed(tmp_path, monkeypatch, tmp_path / "resumed")
    assert resumed["status"] == "success" and resumed["optimizer_steps"] == T
    assert resumed["metrics"] == full["metrics"] and resumed["curve"] == full["curve"]
    assert resumed["method_summary"] == full["method_summary"]
    a, b = adapter_tensors(tmp_path / "full"), adapter_tensors(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # masks, E, P, Q, head, allocator

    # negative control: dropping the allocator state on resume changes the outcome
    monkeypatch.setattr(AdaLoraMethod, "load_state_dict", lambda self, state: None)
    lost = _run_killed_then_resumed(tmp_path, monkeypatch, tmp_path / "lost")
    c = adapter_tensors(tmp_path / "lost")
    assert lost["method_summary"]["allocations"] != full["method_summary"]["allocations"]
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith(("lora_E", "rank_mask")))


@pytest.mark.slow
def test_bf16_mixed_autocast(tmp_path):
    record = train(cfg("trainer.precision=bf16-mixed"), tmp_path / "run")
    assert record["status"] == "success"
    assert record["method_summary"]["total_rank"] == TARGET_R * N_MATRICES
    saved = adapter_tensors(tmp_path / "run")
    assert all(v.dtype == torch.float32 for k, v in saved.items() if k.endswith(("lora_A", "lora_B", "lora_E")))
    assert all(torch.isfinite(v).all() for k, v in saved.items() if v.is_floating_point())


@pytest.mark.slow
def test_lightning_ddp_two_process_gloo(tmp_path):
    """`trainer=ddp` on CPU: both ranks run the allocator (which all-reduces and compares the masks
    after every allocation, raising on disagreement) and the run ends at the target budget."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")] + [
        "trainer.max_epochs=4", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
    ]
    proc = subprocess.run([sys.executable, "-m", "lora_lab.train", *overrides], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    # 96 examples over 2 ranks, batch 8, accumulate 2 -> 3 optimizer steps per epoch, 4 epochs -> T = 12
    assert record["status"] == "success" and record["method_summary"]["total_steps"] == T == record["optimizer_steps"]
    assert record["method_summary"]["total_rank"] == TARGET_R * N_MATRICES
    assert record["method_summary"]["allocations"] == 4


def test_model_selection_ignores_evaluations_above_the_final_budget(tmp_path):
    """Evaluations at steps 6 and 12 (epoch ends); the final pattern is fixed after step T - tfinal
    = 9, so only the step-12 evaluation may become best_val, whatever its score."""
    record = train(cfg(), tmp_path / "run")
    curve = record["curve"]
    assert [p["step"] for p in curve] == [6, 12]
    assert [p["selectable"] for p in curve] == [False, True]
    assert record["metrics"]["best_val"]["step"] == 12
