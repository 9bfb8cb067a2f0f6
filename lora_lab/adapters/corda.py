"""``corda`` / ``corda_kpm``: context-oriented decomposition adaptation (Yang et al. 2024, arXiv
2406.05223, section 3).

CorDA orients the SVD of the pretrained weight by the covariance of the layer's inputs on task data
(section 3): with ``X_j`` the input rows of calibration example ``j`` (its data tokens),
each scaled by its largest entry, and ``C = (1/N) sum_j X_j^T X_j`` (``[in, in]``), damped until
numerically invertible (``C_d = C + d * mean(diag C) * I``, ``d = 0.01`` doubled until
``||C_d C_d^-1 - I||_F < 0.05``, as PEFT 0.21):

    W C_d = U S Vh,        W = U S (Vh C_d^-1) =: U S V^T          (exact: C_d C_d^-1 = I)

The adapter takes ``r`` of these context-oriented components, the frozen residual the rest
(section 3, the IPM and KPM modes):

- ``corda`` -- instruction-previewed mode (IPM, PEFT's default): the ``r`` *largest*, which carry the
  task's context; the adapter starts where the task's inputs act most.
- ``corda_kpm`` -- knowledge-preserved mode (KPM): the ``r`` *smallest*; the components the
  calibration data (question answering data in the paper, to keep world knowledge) uses most stay frozen.

    A0 = diag(sqrt(S_r / s)) V_r^T,    B0 = U_r diag(sqrt(S_r / s)),    W_res := W - s B0 A0

(the ``1/s`` folds the scale in, PEFT's ``corda_init``). ``V_r`` is not orthonormal (it carries
``C_d^-1``). Residual and ``(A0, B0)`` are kept like PiSSA's (`lora_lab.adapters.pissa`). The same
inputs give PEFT 0.21's ``preprocess_corda`` + ``init_lora_weights="corda"`` to rounding
(docs/algorithms/corda.md, tests/adapters/test_eva_corda_parity.py).
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.calibration import layer_inputs, register_calibrator, token_mask, token_rows
from lora_lab.adapters.init import LORA_FAMILY, kaiming_init
from lora_lab.adapters.registry import register_init
from lora_lab.adapters.pissa import checked_float_weight, install_split


def damped_inverse(covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C_d, C_d^-1)``: ``C`` plus the smallest ``d * mean(diag C) * I`` (``d = 0.01 * 2^k``) whose
    inverse reproduces the identity to 0.05 in Frobenius norm."""
    eye = torch.eye(covariance.shape[0], device=covariance.device)
    damp = 0.01
    while True:
        damped = covariance + torch.diag(torch.ones(covariance.shape[0], device=covariance.device) * torch.mean(torch.diag(covariance)) * damp)
        inverse = torch.linalg.inv(damped)
        if torch.dist(damped @ inverse, eye).item() < 0.05:
            return damped, inverse
        damp *= 2


@torch.no_grad()
def corda_init(layer: nn.Module, name: str) -> None:
    """The IPM/KPM split of ``W`` oriented by the calibrated covariance; before calibration kaiming/zero
    with the base untouched."""
    stats = getattr(layer, "calibration", None)
    if stats is None:
        kaiming_init(layer, name)
        return
    weight = checked_float_weight(layer, name)
    damped, inverse = damped_inverse(stats["covariance"].float())
    u, s, vh = torch.linalg.svd(weight @ damped, full_matrices=False)
    v = (vh @ inverse).T
    r = layer.r
    keep = slice(-r, None) if name == "corda_kpm" else slice(0, r)
    root = (s[keep] / layer.scaling).sqrt()
    install_split(layer, weight, v[:, keep].T * root.view(-1, 1), u[:, keep] * root)


register_init("corda", families=(LORA_FAMILY,), mutates_base=True, display="CorDA")(corda_init)
register_init("corda_kpm", families=(LORA_FAMILY,), mutates_base=True, display="CorDA-KPM")(corda_init)


@torch.no_grad()
def corda_calibrate(layers: dict[str, nn.Module], batches, loss_of) -> tuple[dict[str, dict], dict]:
    """``C = (1/N) sum_j X_j^T X_j`` per layer over the ``N`` calibration examples."""
    covariance = {name: torch.zeros(layer.in_features, layer.in_features) for name, layer in layers.items()}
    mask: list = [None]
    examples = [0]

    def accumulate(name: str, x: torch.Tensor) -> None:
        x = x.detach()
        for j in range(x.shape[0]):
            rows = token_rows(x[j : j + 1], None if mask[0] is None else mask[0][j : j + 1]).float()
            rows = rows / torch.max(rows).abs()
            if covariance[name].device != rows.device:
                covariance[name] = covariance[name].to(rows.device)
            covariance[name] += rows.T @ rows

    with layer_inputs(layers, accumulate):
        for batch in batches:
            mask[0] = token_mask(batch)
            loss_of(batch)
            examples[0] += int(batch["input_ids"].shape[0])
    return {name: {"covariance": c / examples[0]} for name, c in covariance.items()}, {}


register_calibrator("corda")(corda_calibrate)
register_calibrator("corda_kpm")(corda_calibrate)
