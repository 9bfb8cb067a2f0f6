"""``lora_ga``: LoRA with gradient approximation (Wang et al. 2024, arXiv 2407.05000, section 3).

After one step from ``(A0, B0)`` a LoRA update changes the weight by (section 3.2, to first order,
learning rate ``eta``)

    dW = -eta s^2 (B0 B0^T G + G A0^T A0),        G = dL/dW   (the full weight's gradient)

LoRA-GA chooses the init so that this is the best rank-``2r`` approximation of full fine-tuning's
step ``-eta G``: with the SVD ``G = U S V^T`` (section 3.2; PEFT's direction ``"ArB2r"``)

    A0 = zeta V[:, :r]^T   ([r, in]),        B0 = zeta U[:, r:2r]   ([out, r])

(``G A0^T A0`` projects ``G`` on its first ``r`` right singular vectors, ``B0 B0^T G`` on the next ``r``
left ones), scaled for a stable output magnitude (section 3.3, "scale stability"):

    zeta = out^(1/4) / sqrt(gamma),   gamma = 16      (``A0 A0^T = B0^T B0 = zeta^2 I``)

and the frozen weight absorbs the non-zero start so the model begins as the pretrained one
(the paper's weight offset): ``W_res := W - s B0 A0`` (``(A0, B0)`` kept like PiSSA's, `lora_lab.adapters.pissa`).
``G`` is the mean of the full-weight gradients of the task loss over the calibration batches (model in
eval mode, no dropout), taken with ``torch.autograd.grad`` so no ``.grad`` is left behind. ``2r`` must
not exceed ``min(out, in)``.

Deliberate differences from PEFT 0.21's ``init_lora_weights="lora_ga"``: PEFT multiplies ``B0`` by the
singular values ``S[r:2r]`` and applies ``zeta`` to ``B0`` only; we follow the paper (and its reference
code), scaling both factors by ``zeta`` with orthonormal singular vectors. We take the exact SVD of
``G`` (PEFT: ``torch.svd_lowrank(q = 4r, niter = 4)``). Notes: docs/algorithms/lora_ga.md.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.calibration import register_calibrator
from lora_lab.adapters.init import INIT_RANK_FACTORS, LORA_FAMILY, kaiming_init
from lora_lab.adapters.registry import register_init
from lora_lab.adapters.pissa import checked_float_weight, install_split
from lora_lab.errors import ConfigError

#: gamma of the stable scale (section 3.3; the paper's and PEFT's default)
STABLE_GAMMA = 16.0


def lora_ga_factors(grad: torch.Tensor, r: int, gamma: float = STABLE_GAMMA) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A0, B0)`` from the ``[out, in]`` gradient ``grad`` (fp32)."""
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)
    zeta = grad.shape[0] ** 0.25 / gamma**0.5
    return zeta * vh[:r], zeta * u[:, r : 2 * r]


INIT_RANK_FACTORS["lora_ga"] = 2  # A0, B0 take 2r singular directions of G: 2r <= min(in, out)


@register_init("lora_ga", families=(LORA_FAMILY,), mutates_base=True, display="LoRA-GA")
@torch.no_grad()
def lora_ga_init(layer: nn.Module, name: str) -> None:
    """``A0``, ``B0`` from the calibrated gradient and ``W_res = W - s B0 A0``; before calibration
    kaiming/zero with the base untouched."""
    stats = getattr(layer, "calibration", None)
    if stats is None:
        kaiming_init(layer, name)
        return
    weight = checked_float_weight(layer, name)
    if 2 * layer.r > min(layer.in_features, layer.out_features):
        raise ConfigError("adapter.r", f"init 'lora_ga' needs 2r <= min(in, out) = {min(layer.in_features, layer.out_features)}, got r={layer.r}")
    a, b = lora_ga_factors(stats["gradient"].float(), layer.r)
    install_split(layer, weight, a, b)


@register_calibrator("lora_ga")
def lora_ga_calibrate(layers: dict[str, nn.Module], batches, loss_of) -> tuple[dict[str, dict], dict]:
    """The mean over the batches of ``dL/dW`` for every adapted base weight (``[out, in]``)."""
    weights = [layer.base_layer.weight for layer in layers.values()]
    flags = [w.requires_grad for w in weights]
    sums = [torch.zeros(w.shape, dtype=torch.float32, device=w.device) for w in weights]
    count = 0
    try:
        for w in weights:
            w.requires_grad_(True)
        for batch in batches:
            with torch.enable_grad():
                grads = torch.autograd.grad(loss_of(batch), weights, allow_unused=True)
            for total, g in zip(sums, grads):
                if g is not None:
                    total += g.float()
            count += 1
    finally:
        for w, flag in zip(weights, flags):
            w.requires_grad_(flag)
    stats = {}
    for (name, layer), total in zip(layers.items(), sums):
        mean = total / max(count, 1)
        stats[name] = {"gradient": mean.T if layer.fan_in_fan_out else mean}
    return stats, {"lora_ga_gamma": STABLE_GAMMA}
