"""LoftQ-style init ``loftq_<T>``: alternate quantisation and a rank-r fit of what it lost.

LoftQ (Li et al. 2023, arXiv 2310.08659, section 3, Algorithm 1) chooses the quantised base ``Q`` and the
adapter ``s B A`` together, to minimise ``||W - (deq(Q) + s B A)||_F``. Starting from ``s B_0 A_0 = 0``
(LoftQ) -- here from PiSSA's rank-r truncation of ``W``, which is already a better start (QPiSSA is one
half-iteration of it) -- for ``t = 1..T``:

    Q_t        = Q(W - s B_{t-1} A_{t-1})               (quantise what the adapter does not carry)
    s B_t A_t  = SVD_r(W - deq(Q_t))                     (fit the quantisation residual, rank r)

(``T >= 1``; ``T = 1`` is QPiSSA's quantised residual with the adapter refitted to it), and the layer
starts from base ``Q_T`` and adapter ``(A_T, B_T)``, kept as ``(A0, B0)`` like PiSSA's
so that the adapter exports as rank-2r LoRA and merges relative to the original ``W``. Each step is
at least as good as the previous one's second half, so the error never exceeds QPiSSA's
``||W - (deq(Q(W_res)) + s B0 A0)||`` (recorded in result.json as ``weight_error_with_adapter_init``).

At attach time (full precision) ``loftq_<T>`` is PiSSA's split; the iterations run when the base is
quantised (`lora_lab.adapters.quant_model.quantize_base`). Without a quantised base it stays PiSSA.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.init import LORA_FAMILY
from lora_lab.adapters.registry import register_init
from lora_lab.adapters.pissa import pissa_init
from lora_lab.adapters.quant import QuantConfig, dequantized_weight, quantize_linear
from lora_lab.adapters.quant_model import register_quant_aware_init
from lora_lab.errors import ConfigError

LOFTQ_PREFIX = "loftq_"


@register_init("loftq_*", families=(LORA_FAMILY,), mutates_base=True, display="LoftQ", example="loftq_1")
@torch.no_grad()
def loftq_start(layer: nn.Module, name: str) -> None:
    """The full-precision start: PiSSA's ``W = W_res + s B0 A0`` (exact SVD); ``T >= 1``."""
    if int(name[len(LOFTQ_PREFIX) :]) < 1:
        raise ConfigError("adapter.init", f"{name!r}: the number of LoftQ iterations must be at least 1, e.g. loftq_2")
    pissa_init(layer, "pissa")


def _rank_r_fit(residual: torch.Tensor, r: int, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``s B A`` the rank-r truncation of ``residual`` (PiSSA's factor split)."""
    v, s, uh = torch.linalg.svd(residual, full_matrices=False)
    root = torch.sqrt(s[:r] / scaling)
    return root[:, None] * uh[:r], v[:, :r] * root[None, :]


@register_quant_aware_init(LOFTQ_PREFIX)
@torch.no_grad()
def loftq_quantize(layer: nn.Module, cfg: QuantConfig) -> nn.Module:
    """Run the alternation on ``layer`` (its base still full precision, holding ``W - s B0 A0``); sets
    ``A = A0``, ``B = B0`` to the final fit and returns the final quantised base ``Q_T``."""
    iterations = int(layer.init[len(LOFTQ_PREFIX) :])
    s = layer.scaling
    original = layer.base_weight().float() + s * (layer.lora_B0 @ layer.lora_A0)
    a, b = layer.lora_A0.clone(), layer.lora_B0.clone()
    for _ in range(iterations):
        quantized = quantize_linear(layer.base_layer, cfg, original - s * (b @ a))
        a, b = _rank_r_fit(original - dequantized_weight(quantized), layer.r, s)
    for target, value in ((layer.lora_A, a), (layer.lora_A0, a), (layer.lora_B, b), (layer.lora_B0, b)):
        target.copy_(value)
    return quantized
