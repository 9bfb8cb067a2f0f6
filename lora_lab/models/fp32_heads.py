"""Trainable heads in fp32 whatever the backbone dtype.

The heads (classifier, RoBERTa's classification head, DeBERTa's pooler) are trained whole, like the
adapters. Loaded with a 16-bit backbone (``backbone.dtype=bfloat16|float16``) they would be 16-bit
too: an fp16 head's gradients make the ``16-mixed`` GradScaler refuse to unscale ("Attempting to
unscale FP16 gradients"), and a bf16 head loses every AdamW update smaller than half a unit in the
last place of its weights (bf16 has 8 significant bits: at lr 5e-6 almost no entry moves). So each
head's parameters are cast to fp32, and a forward pre-hook casts its floating inputs (the 16-bit
hidden states) to fp32; under autocast the matmuls still run in the autocast dtype, with fp32 master
weights and fp32 gradients -- the mixed-precision recipe (Micikevicius et al., 2018, section 3.1).
The head's output (logits) stays fp32.
"""

from __future__ import annotations

import torch
from torch import nn


def _inputs_to_fp32(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    def cast(value):
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def keep_heads_fp32(model: nn.Module, head_modules: list[str]) -> None:
    """Cast the named head modules of ``model`` to fp32 and feed them fp32 inputs (idempotent)."""
    for name in head_modules:
        head = model.get_submodule(name)
        head.float()
        if not getattr(head, "_lora_lab_fp32_inputs", False):
            head.register_forward_pre_hook(_inputs_to_fp32, with_kwargs=True)
            head._lora_lab_fp32_inputs = True
