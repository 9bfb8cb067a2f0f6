"""``orthogonal``: PEFT 0.21's ``init_lora_weights="orthogonal"`` for the LoRA family.

A random square ``Q`` (reduced QR of an ``r x r`` standard normal matrix) has orthonormal rows; its
odd-numbered rows ``Q_o = Q[0::2]`` and even-numbered rows ``Q_e = Q[1::2]`` (``r/2`` each) span
orthogonal subspaces of ``R^r``, ``Q_e Q_o^T = 0``. With standard normal ``G_in: [in, r/2]`` and
``G_out: [out, r/2]``:

    A = (G_in Q_o)^T / 10       ([r, in]),        B = G_out Q_e / 10       ([out, r])
    B A = G_out (Q_e Q_o^T) G_in^T / 100 = 0     (to fp32 rounding of the QR)

so the model starts at the base model (as with B = 0) while both factors are non-zero, random and
mutually orthogonal in the rank space -- both receive a gradient from the first step (no paper; PEFT cites
https://datta0.github.io/posts/rethink-lora-init/#orthogonal-initialisation for the idea).
``r`` must be even (a config error otherwise). The draws, in PEFT's order (``Q``'s matrix, ``G_in``,
``G_out``), come from the global torch generator on the CPU; PEFT draws them after the default
``nn.Linear`` init of its ``lora_A``/``lora_B`` has consumed the generator, so a whole-model seed
does not give PEFT's numbers -- the same generator state before the init does
(docs/algorithms/orthogonal.md). The base weight is not touched.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.init import LORA_FAMILY, register_init_check
from lora_lab.adapters.registry import register_init
from lora_lab.errors import ConfigError


@register_init_check("orthogonal")
def check_even_rank(config) -> None:
    if config.r % 2:
        raise ConfigError("adapter.r", f"init 'orthogonal' needs an even rank, got r={config.r}; allowed: even r (2, 4, 8 ...)")


@register_init("orthogonal", families=(LORA_FAMILY,), display="Orthogonal")
@torch.no_grad()
def orthogonal_init(layer: nn.Module, name: str) -> None:
    r = layer.r
    q, _ = torch.linalg.qr(torch.randn(r, r))
    a = torch.randn(layer.in_features, r // 2).mm(q[0::2]).T / 10.0
    b = torch.randn(r // 2, layer.out_features).T.mm(q[1::2]) / 10.0
    layer.lora_A.copy_(a)
    layer.lora_B.copy_(b)
