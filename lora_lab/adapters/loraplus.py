"""LoRA+ (Hayou, Ghosh and Yu, ICML 2024, arXiv 2402.12354, section 3): LoRA with a larger learning
rate for ``B`` than for ``A``.

The layer is LoRA's (``h = W0 x + b0 + s B A x``, same knobs, inits and PEFT export); only the
optimizer differs, through the method's ``param_groups`` hook:

    eta_B = loraplus_lr_ratio * eta_A,      eta_A = optim.lr

The groups follow PEFT 0.21 ``create_loraplus_optimizer`` exactly: a trainable parameter whose name
contains ``lora_B`` or that is a vector (``ndim == 1``: head biases, LayerNorm weights) gets
``lr * ratio``; among those, biases and parameters inside a ``LayerNorm`` get no weight decay; every
other trainable parameter (``A``, head weight matrices) gets ``lr``. PEFT's fourth group, LoRA
*embedding* layers at ``loraplus_lr_embedding``, is always empty here: adapters wrap only linear
maps. ``optim.weight_decay`` plays the part of PEFT's ``loraplus_weight_decay``. The paper's
recommended ratio is ``2^4 = 16`` (its experiments); see docs/algorithms/loraplus.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lora_lab.adapters.config import check_positive_number
from lora_lab.adapters.lora import LoraConfig, LoraMethod
from lora_lab.adapters.method import register_method


def names_inside(model: nn.Module, module_type: type) -> set[str]:
    """Names of the parameters held (at any depth) by modules of ``module_type``."""
    return {f"{m}.{p}" if m else p for m, module in model.named_modules() if isinstance(module, module_type) for p, _ in module.named_parameters()}


@dataclass
class LoraPlusConfig(LoraConfig):
    """LoRA's knobs plus ``loraplus_lr_ratio`` (``eta_B / eta_A``)."""

    method: str = "loraplus"
    loraplus_lr_ratio: float = 16.0

    def validate(self) -> None:
        check_positive_number("loraplus_lr_ratio", self.loraplus_lr_ratio)
        super().validate()


@register_method
class LoraPlusMethod(LoraMethod):
    name = "loraplus"
    display_name = "LoRA+"
    table_order = 2
    named_inits = {}  # LoRA+ with init=pissa is "LoRA+ (PiSSA init)", not PiSSA
    config_cls = LoraPlusConfig
    examples = ({"r": 4, "alpha": 8, "loraplus_lr_ratio": 8.0},)

    def param_groups(self, model: nn.Module) -> list[dict]:
        """``A`` (and other matrices) at ``lr``; ``B`` and vectors at ``lr * ratio``, without weight
        decay for biases and LayerNorm parameters (PEFT's grouping)."""
        no_decay = names_inside(model, nn.LayerNorm)
        group_a, group_b, group_b_no_decay = [], [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_B" in name or p.ndim == 1:
                (group_b_no_decay if name in no_decay or "bias" in name else group_b).append(p)
            else:
                group_a.append(p)
        ratio = float(self.config.loraplus_lr_ratio)
        return [
            {"params": group_a},
            {"params": group_b, "lr_multiplier": ratio},
            {"params": group_b_no_decay, "lr_multiplier": ratio, "weight_decay": 0.0},
        ]
