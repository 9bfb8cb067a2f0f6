"""Normalised subspace similarity of two learned updates (LoRA, Hu et al. 2021, section 7.2, Figures 3-4).

For two adapters of the same matrix with right-singular bases ``U`` (of ``A_1``, ``[in, r_1]``) and
``V`` (of ``A_2``, ``[in, r_2]``), the similarity of their top-``i`` and top-``j`` directions is

    phi(A_1, A_2, i, j) = ||U_i^T V_j||_F^2 / min(i, j)   in [0, 1]

(``U_i``: the first ``i`` columns): 1 when one subspace contains the other, 0 when they are
orthogonal. The paper takes the right-singular vectors of the LoRA ``A`` matrices; for methods without
a plain ``A`` (DoRA's full update, AdaLoRA, full fine-tuning) the right-singular vectors of ``dW`` span
the same kind of input-space directions (``basis`` column: ``A`` or ``dW``).

Random baseline: for independent uniformly random subspaces of dimensions ``i`` and ``j`` in
``R^d``, ``E ||U_i^T V_j||_F^2 = i j / d`` (each of the ``i j`` squared cosines has mean ``1/d``), so
``E phi = i j / (d min(i, j)) = max(i, j) / d``. The variance of ``||U_i^T V_j||_F^2`` for ``i = j = 1``
is ``2 (d - 1) / (d^2 (d + 2))`` (the squared cosine is Beta(1/2, (d-1)/2)), which the tests use to
set their tolerance.
"""

from __future__ import annotations

import torch


#: unit roundoff of fp32, the precision adapters and weights are stored in
FP32_EPS = 2.0**-23


def numerical_rank(s: torch.Tensor, shape: tuple[int, int], eps: float = FP32_EPS) -> int:
    """Singular values above ``sigma_1 * max(shape) * eps``: the directions a matrix stored at precision
    ``eps`` resolves (the usual numerical-rank threshold, as ``numpy.linalg.matrix_rank``). A LoRA
    ``dW = s B A`` of rank ``r`` has exactly ``r`` of them; the rest is rounding noise with arbitrary
    directions, which would make any two updates look similar."""
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    return int((s > s[0] * max(shape) * eps).sum())


def right_singular_basis(matrix: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """The top right-singular vectors of ``matrix`` (``[rows, d]``) as columns, ``[d, k']``, fp64,
    ordered by decreasing singular value; ``k'`` is the matrix's `numerical_rank`, at most ``k``."""
    _, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    keep = numerical_rank(s, tuple(matrix.shape))
    keep = keep if k is None else min(k, keep)
    return vh[:keep].T


def phi_grid(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``phi[i-1, j-1] = ||U_i^T V_j||_F^2 / min(i, j)`` for every ``i <= U.cols``, ``j <= V.cols``."""
    squared = (u.double().T @ v.double()) ** 2
    cumulative = squared.cumsum(0).cumsum(1)
    i = torch.arange(1, u.shape[1] + 1, dtype=torch.float64)[:, None]
    j = torch.arange(1, v.shape[1] + 1, dtype=torch.float64)[None, :]
    return cumulative / torch.minimum(i, j)


def phi(u: torch.Tensor, v: torch.Tensor, i: int, j: int) -> float:
    """One entry: ``||U_i^T V_j||_F^2 / min(i, j)``."""
    return float(((u[:, :i].double().T @ v[:, :j].double()) ** 2).sum() / min(i, j))


def random_expectation(i: int, j: int, d: int) -> float:
    """``E phi(i, j) = max(i, j) / d`` for independent random subspaces of dimensions i, j in R^d."""
    return max(i, j) / d


def summary(grid: torch.Tensor, d: int) -> dict:
    """One-number summaries of a pair: ``top1 = phi(1, 1)``, ``topk = phi(k, k)`` with ``k`` the
    smaller basis size, the mean over ``i <= k, j <= k``, and the random baselines of the same shapes."""
    k = min(grid.shape)
    return {"k": k, "d": d, "top1": float(grid[0, 0]), "topk": float(grid[k - 1, k - 1]), "mean_kk": float(grid[:k, :k].mean()),
            "random_top1": random_expectation(1, 1, d), "random_topk": random_expectation(k, k, d)}
