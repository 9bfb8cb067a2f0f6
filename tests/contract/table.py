"""The contract table: one row per method x init; every row runs every generic test in
`tests.contract.test_contract` on every backbone of `tests.contract.backbones`.

A new method gets identity-at-init, declared-parameters-only, merge/unmerge, save/load, closed-form
count, PEFT parity/export (when it registers a PEFT exporter) and determinism by adding one row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


def loraplus_peft_optimizer(ratio: float) -> Callable:
    """PEFT's LoRA+ optimizer for a PEFT model: ``fn(peft_model, lr, weight_decay) -> optimizer``."""

    def build(peft_model, lr: float, weight_decay: float):
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(peft_model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=ratio, loraplus_weight_decay=weight_decay)

    return build


@dataclass(frozen=True)
class Row:
    id: str
    adapter: dict  # raw adapter knobs (method, init, ...); targets come from the table
    identity_at_init: bool = True  # the method promises: adapted model == base model at init
    exact_peft_grads: bool = True  # the PEFT export maps our trainable tensors one to one (no rank-2r conversion)
    peft_optimizer: Callable | None = None  # PEFT's optimizer for this method, when it shapes the optimizer
    peft_init_equal: bool = False  # the init is deterministic and equals PEFT's own init of the exported config
    slow_on: tuple[str, ...] = field(default=())  # backbones on which this row's cells are marked slow


ROWS = [
    Row("lora-kaiming", {"method": "lora", "r": 4, "alpha": 8}),
    Row("lora-gaussian-rslora", {"method": "lora", "r": 4, "alpha": 8, "init": "gaussian", "rslora": True}),
    Row("lora-pissa", {"method": "lora", "r": 4, "alpha": 8, "init": "pissa"}, exact_peft_grads=False),
    Row("lora-pissa_niter_2", {"method": "lora", "r": 4, "alpha": 8, "init": "pissa_niter_2"}, exact_peft_grads=False, slow_on=("llama", "t5")),
    Row("lora-olora", {"method": "lora", "r": 4, "alpha": 8, "init": "olora"}, exact_peft_grads=False),
    Row("lora-orthogonal", {"method": "lora", "r": 4, "alpha": 8, "init": "orthogonal"}),
    Row("lora-milora", {"method": "lora", "r": 4, "alpha": 8, "init": "milora"}, exact_peft_grads=False),
    Row("dora-kaiming", {"method": "dora", "r": 4, "alpha": 8}),
    Row("dora-gaussian", {"method": "dora", "r": 4, "alpha": 8, "init": "gaussian"}, slow_on=("llama", "t5")),
    Row("dora-pissa", {"method": "dora", "r": 4, "alpha": 8, "init": "pissa"}, exact_peft_grads=False),
    Row("dora-olora", {"method": "dora", "r": 4, "alpha": 8, "init": "olora"}, exact_peft_grads=False, slow_on=("llama", "t5")),
    Row("dora-orthogonal", {"method": "dora", "r": 4, "alpha": 8, "init": "orthogonal"}, slow_on=("llama", "t5")),
    Row("dora-milora", {"method": "dora", "r": 4, "alpha": 8, "init": "milora"}, exact_peft_grads=False, slow_on=("llama", "t5")),
    Row("adalora", {"method": "adalora", "r": 6, "target_r": 3}),
    Row("loraplus", {"method": "loraplus", "r": 4, "alpha": 8, "loraplus_lr_ratio": 8.0}, peft_optimizer=loraplus_peft_optimizer(8.0)),
    Row("vera", {"method": "vera", "r": 8, "d_initial": 0.1}, peft_init_equal=True),
]

#: PEFT parity/export cells on these backbones are marked slow (PEFT's LLaMA and T5 wrappers cost ~0.5 s
#: per cell); the default tier checks PEFT on BERT (Linear) and GPT-2 (Conv1D)
PEFT_SLOW_BACKBONES = ("llama", "t5")

#: adapted modules of every row: attention and MLP, so that layers of different shapes are adapted
TARGETS = "attn_mlp"
