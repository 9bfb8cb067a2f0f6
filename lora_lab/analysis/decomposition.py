"""DoRA's weight-decomposition analysis (Liu et al. 2024, section 3, eqs. 4-5, Figure 2).

Write a weight as magnitude times direction, column by column in the paper's ``[in, out]`` layout:
``W = m V / ||V||_c``. In our ``[out, in]`` layout the paper's column ``n`` is row ``n`` (output unit
``n``, as PEFT's DoRA norms). Against the pretrained ``W0`` and an updated ``W'`` (a snapshot: for an
adapter ``W' = W0 + dW``, for full fine-tuning the trained weight), over the ``K`` output units:

    dM = (1/K) sum_n | ||W'_n|| - ||W0_n|| |                         (magnitude change, eq. 4)
    dD = (1/K) sum_n (1 - cos(W'_n, W0_n))                            (direction change, eq. 5)

One point per matrix and snapshot; the paper plots ``dM`` against ``dD`` for the query matrices of
every layer over training checkpoints and reads the sign of their relation: negative for full
fine-tuning and DoRA, positive for LoRA. `correlation` gives Pearson's ``r`` of the points (the
sign is the finding). Pure scaling of rows (``W'_n = c_n W0_n``, ``c_n > 0``) gives ``dD = 0``; a pure
rotation of each row (norm kept) gives ``dM = 0``.
"""

from __future__ import annotations

import math

import torch


def magnitude_direction(w0: torch.Tensor, w1: torch.Tensor) -> tuple[float, float]:
    """``(dM, dD)`` of ``w1`` against ``w0`` (both ``[out, in]``), computed in fp64."""
    w0, w1 = w0.double(), w1.double()
    m0, m1 = w0.norm(dim=1), w1.norm(dim=1)
    cos = (w0 * w1).sum(dim=1) / (m0 * m1)
    return float((m1 - m0).abs().mean()), float((1 - cos).mean())


def correlation(x: list[float], y: list[float]) -> float:
    """Pearson's r of the points (NaN with fewer than 3 points or no spread)."""
    if len(x) < 3:
        return float("nan")
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    tx, ty = tx - tx.mean(), ty - ty.mean()
    denom = float(tx.norm() * ty.norm())
    return float((tx * ty).sum()) / denom if denom > 0 else float("nan")


def sign_of(r: float) -> str:
    return "undefined" if math.isnan(r) else "negative" if r < 0 else "positive" if r > 0 else "zero"
