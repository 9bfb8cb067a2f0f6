"""The Lightning module drives every method the same way: regulariser in the loss, hook once per
optimizer step with gradients present, train mode, only adapter + head parameters change,
adapter-only checkpoints."""

from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from lora_lab.adapters.lora import LoraMethod
from lora_lab.config.compose import CONF_DIR
from lora_lab.train import train


def tiny_cfg(tmp_path: Path, *extra: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=[
            "debug=tiny", "logger=none", "task.max_train_samples=64", "task.max_eval_samples=32",
            "task.batch_size=8", "trainer.max_epochs=1", "adapter.r=2", *extra,
        ])


def test_hook_once_per_optimizer_step_with_grads_under_accumulation(tmp_path, monkeypatch):
    calls = []

    def probe(self, step, total_steps):
        grads = [p.grad for l in self.layers.values() for _, p in l.adapter_parameters()]
        # all present; B's grads are non-zero from the first step (A's are 0 while B == 0)
        calls.append((step, total_steps, all(g is not None for g in grads) and all(torch.count_nonzero(g) > 0 for g in grads[1::2])))

    monkeypatch.setattr(LoraMethod, "on_optimizer_step", probe)
    regs = []
    monkeypatch.setattr(LoraMethod, "regularization_loss", lambda self: regs.append(1) or torch.tensor(0.0))
    record = train(tiny_cfg(tmp_path, "trainer.accumulate_grad_batches=2"), tmp_path / "run")
    # 64 examples / batch 8 = 8 micro-batches -> 4 optimizer steps
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert all(c[1] == 4 for c in calls) and all(c[2] for c in calls)
    assert len(regs) == 8 and record["optimizer_steps"] == 4


def test_only_adapter_and_head_change_and_train_mode(tmp_path):
    from lora_lab.tasks.classification.data import ClassificationDataModule
    from lora_lab.tasks.registry import parse_task_config
    from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
    from lora_lab.tasks.classification.module import ClassificationModule
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(tiny_cfg(tmp_path), resolve=True)
    task = parse_task_config(cfg["task"])
    spec = task.spec()
    tok = load_tokenizer(parse_backbone_config(cfg["backbone"]))
    L.seed_everything(0)
    module = ClassificationModule(cfg["backbone"], cfg["adapter"], {**cfg["optim"], "lr": 1e-2}, cfg["task"], spec.__dict__, tok.pad_token_id)
    module.configure_model()
    assert module.model.training and all(m.training for m in module.model.modules())
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in before if n.endswith(("lora_A", "lora_B")) or n.startswith("classifier.")}
    seen_training = []
    orig = module.task_loss
    module.task_loss = lambda batch: seen_training.append(module.model.training) or orig(batch)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=ClassificationDataModule(task, spec, tok))
    assert seen_training and all(seen_training)
    changed = {n for n, p in module.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


def test_checkpoint_is_adapter_only_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, "trainer.max_epochs=2")
    record = train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    keys = set(ckpt["state_dict"])
    assert keys and all(k.endswith(("lora_A", "lora_B")) or ".classifier." in k for k in keys)
    assert len(keys) == 2 * 2 * 2 + 2  # (q, v) x 2 layers x (A, B) + classifier weight/bias
    assert record["status"] == "success" and record["params"]["adapter_params"] == 2 * 2 * 2 * (32 + 32)


def test_the_optimizer_is_shaped_by_the_method_param_groups(tmp_path, monkeypatch):
    """LoRA+ through the real training path: B matrices at lr x ratio, A at lr, head bias without decay."""
    from lora_lab.models import module, optim

    built = []
    real = optim.build_optimizer
    monkeypatch.setattr(module, "build_optimizer", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    train(tiny_cfg(tmp_path, "adapter=loraplus", "adapter.loraplus_lr_ratio=4", "optim.lr=1e-3", "optim.weight_decay=0.1"), tmp_path / "run")
    groups = built[0]["optimizer"].param_groups
    assert [(g["initial_lr"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (1e-3, 0.1, 4 + 1),  # A of q, v in 2 layers + the classifier weight
        (4e-3, 0.1, 4),  # B of q, v in 2 layers
        (4e-3, 0.0, 1),  # the classifier bias
    ]
