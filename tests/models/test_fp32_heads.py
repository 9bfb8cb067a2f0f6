"""A 16-bit backbone trains an fp32 head: fp16 + 16-mixed runs (the GradScaler unscales fp32
gradients), and at lr 5e-6 every head entry moves (a bf16 head would keep most of them).

fp16 runs on tiny LLaMA: CPU autocast cannot run BERT's fp16 ``nn.LayerNorm`` at all (a CPU-only
limitation; LLaMA's RMSNorm computes in fp32 itself)."""

import lightning as L
from lightning.pytorch.plugins.precision import MixedPrecision
import pytest
import torch
from omegaconf import OmegaConf

from lora_lab.data.classification import ClassificationDataModule
from lora_lab.data.tasks import parse_task_config, task_spec
from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
from lora_lab.models.classification import ClassificationModule
from tests.models.test_module_hooks import tiny_cfg


def precision_args(precision: str) -> dict:
    """Lightning turns ``16-mixed`` on CPU into bf16: build the fp16 plugin (CPU autocast + the CPU
    GradScaler, as on a GPU) explicitly."""
    if precision != "16-mixed":
        return {"precision": precision}
    return {"plugins": [MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu"))]}


@pytest.mark.parametrize("backbone,dtype,precision", [
    ("tiny_llama", "float16", "16-mixed"), ("tiny_bert", "bfloat16", "bf16-mixed"), ("tiny_bert", "bfloat16", "32-true"),
])
def test_head_is_fp32_and_moves_at_small_lr(tmp_path, backbone, dtype, precision):
    cfg = OmegaConf.to_container(tiny_cfg(tmp_path, f"backbone={backbone}", f"+backbone.dtype={dtype}"), resolve=True)
    task = parse_task_config(cfg["task"])
    spec = task_spec(task)
    tok = load_tokenizer(parse_backbone_config(cfg["backbone"]))
    L.seed_everything(0)
    module = ClassificationModule(cfg["backbone"], cfg["adapter"], {**cfg["optim"], "lr": 5e-6}, cfg["task"], spec.__dict__, tok.pad_token_id)
    module.configure_model()
    params = dict(module.model.named_parameters())
    assert {p.dtype for p in params.values() if not p.requires_grad} == {getattr(torch, dtype)}  # frozen base: 16-bit
    assert all(p.dtype == torch.float32 for n, p in params.items() if p.requires_grad)  # adapters and head
    head_before = {n: p.detach().clone() for n, p in params.items() if n.split(".")[0] in module.report.head_modules}
    assert head_before
    trainer = L.Trainer(max_steps=2, logger=False, **precision_args(precision), enable_checkpointing=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=ClassificationDataModule(task, spec, tok))
    assert trainer.global_step == 2
    for name, before in head_before.items():
        after = dict(module.model.named_parameters())[name]
        assert after.dtype == torch.float32
        assert torch.count_nonzero(after != before) == before.numel(), f"{name}: some entries did not move"
