"""``milora``: minor singular component LoRA (Wang et al. 2024, arXiv 2406.09044, section 3).

With the SVD of the pretrained ``[out, in]`` weight, ``W = U S V^T`` (singular values descending),
split into its principal part (the first ``k - r`` components, ``k = min(out, in)``) and its minor
part (the last ``r``):

    W = U_p S_p V_p^T + U_m S_m V_m^T

MiLoRA puts the *minor* part into the adapter and freezes the rest:

    A0 = diag(sqrt(S_m / s)) V_m^T   ([r, in]),        B0 = U_m diag(sqrt(S_m / s))   ([out, r])
    W_res := W - s B0 A0   (= U_p S_p V_p^T, formed by subtraction: W_res + s B0 A0 = W in fp32)

It is PiSSA's construction (`lora_lab.adapters.pissa`) with the other end of the spectrum: the
principal directions, which hold the pretrained knowledge, stay frozen, and training starts in the
directions the pretrained weight uses least. The ``1/s`` folds the scale in (as PiSSA), so
``s B0 A0 = U_m S_m V_m^T`` for any ``alpha``. PEFT 0.21 has no MiLoRA; like PiSSA the residual is
written into the base and ``(A0, B0)`` are kept for the rank-2r export (docs/algorithms/milora.md).
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.init import LORA_FAMILY
from lora_lab.adapters.registry import register_init
from lora_lab.adapters.pissa import checked_float_weight, install_split


@register_init("milora", families=(LORA_FAMILY,), mutates_base=True, display="MiLoRA")
@torch.no_grad()
def milora_init(layer: nn.Module, name: str) -> None:
    weight = checked_float_weight(layer, name)
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    r = layer.r
    root = torch.sqrt(s[-r:] / layer.scaling)
    install_split(layer, weight, root[:, None] * vh[-r:], u[:, -r:] * root[None, :])
