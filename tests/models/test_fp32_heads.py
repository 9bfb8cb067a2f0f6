"""A 16-bit backbone trains an fp32 head: fp16 + 16-mixed runs (the GradScaler unscales fp32
gradients), and at lr 5e-6 every head entry moves (a bf16 head would keep most of them).

fp16 runs on tiny LLaMA: CPU autocast cannot run BERT's fp16 ``nn.LayerNorm`` at all (a CPU-only
limitation; LLaMA's RMSNorm computes in fp32 itself)."""

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from tests.models.tiny_module import tiny_module


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
    module, datamodule = tiny_module(tmp_path, f"backbone={backbone}", f"+backbone.dtype={dtype}", lr=5e-6)
    module.configure_model()
    params = dict(module.model.named_parameters())
    assert {p.dtype for p in params.values() if not p.requires_grad} == {getattr(torch, dtype)}  # frozen base: 16-bit
    assert all(p.dtype == torch.float32 for n, p in params.items() if p.requires_grad)  # adapters and head
    head_before = {n: p.detach().clone() for n, p in params.items() if n.split(".")[0] in module.report.head_modules}
    assert head_before
    trainer = L.Trainer(max_steps=2, logger=False, **precision_args(precision), enable_checkpointing=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2
    for name, before in head_before.items():
        after = dict(module.model.named_parameters())[name]
        assert after.dtype == torch.float32
        assert torch.count_nonzero(after != before) == before.numel(), f"{name}: some entries did not move"
