"""Singular-value spectrum and effective rank of an update ``dW`` (``[out, in]``).

For every method the update is the change of the weight the model computes: LoRA ``s B A``; DoRA the
full ``W' - W0`` (magnitude included); PiSSA/OLoRA against the original ``W`` (``s (B A - B0 A0)``,
not against the residual); AdaLoRA the masked ``P Lambda Q``; full fine-tuning ``W_t - W_0``.

Two effective ranks, both reported:

- **entropy effective rank** (Roy and Vetterli 2007, "The effective rank", EUSIPCO, eq. 2):
  ``erank = exp(H(p))``, ``p_k = sigma_k / sum_l sigma_l``, ``H(p) = -sum_k p_k ln p_k`` (``0 ln 0 = 0``);
  equals ``n`` for ``n`` equal non-zero singular values;
- **stable rank**: ``||dW||_F^2 / ||dW||_2^2 = sum_k sigma_k^2 / sigma_1^2`` (Rudelson and Vershynin 2007),
  ``<= rank``, insensitive to tiny singular values.

Both are undefined (NaN) for ``dW = 0``.
"""

from __future__ import annotations

import math

import torch


def singular_values(dw: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(dw.double())


def entropy_effective_rank(s: torch.Tensor) -> float:
    s = s.double()
    total = float(s.sum())
    if total <= 0:
        return float("nan")
    p = s[s > 0] / total
    return math.exp(float(-(p * p.log()).sum()))


def stable_rank(s: torch.Tensor) -> float:
    s = s.double()
    top = float(s.max()) if s.numel() else 0.0
    return float((s**2).sum()) / top**2 if top > 0 else float("nan")
