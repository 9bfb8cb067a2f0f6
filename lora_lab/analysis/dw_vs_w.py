"""How the update relates to the pretrained weight (LoRA, Hu et al. 2021, section 7.3, Table 7).

With ``U`` (``[out, r]``) and ``V`` (``[in, r]``) the top-``r`` left and right singular directions of
``dW``, the projection of ``W`` onto the update's subspace is ``||U^T W V||_F`` (the paper's
``||U^T W_q V^T||_F`` with ``V^T`` written as rows). It is compared with the same norm for

- ``W``'s own top-``r`` directions: ``||U_W^T W V_W||_F = sqrt(sum_{k<=r} sigma_k(W)^2)`` (the largest
  any rank-``r`` projection can be),
- random directions: ``U``, ``V`` uniformly random orthonormal (QR of a Gaussian; the mean over
  ``draws`` seeded draws), whose expected square is ``E ||U^T W V||_F^2 = r^2 ||W||_F^2 / (out in)``
  (``random_rms``, the closed form),

and the amplification factor ``||dW||_F / ||U^T W V||_F``: how much the update amplifies the
directions of ``W`` it touches (the paper: ~21.5 for ``W_q`` at ``r = 4`` on GPT-3, ~2 at ``r = 64``).
"""

from __future__ import annotations

import math

import torch


def random_orthonormal(rows: int, r: int, generator: torch.Generator) -> torch.Tensor:
    q, rr = torch.linalg.qr(torch.randn(rows, r, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(rr))[None, :]  # uniform (Haar) columns


def projection_norms(w: torch.Tensor, dw: torch.Tensor, r: int, draws: int = 8, seed: int = 0) -> dict:
    """Table 7's numbers for one matrix (``w``, ``dw``: ``[out, in]``)."""
    w, dw = w.double(), dw.double()
    out_f, in_f = w.shape
    r = min(r, out_f, in_f)
    u, _, vh = torch.linalg.svd(dw, full_matrices=False)
    proj_dw = float(torch.linalg.matrix_norm(u[:, :r].T @ w @ vh[:r].T))
    s_w = torch.linalg.svdvals(w)
    proj_w = float(torch.sqrt((s_w[:r] ** 2).sum()))
    g = torch.Generator().manual_seed(seed)
    rand = [float(torch.linalg.matrix_norm(random_orthonormal(out_f, r, g).T @ w @ random_orthonormal(in_f, r, g))) for _ in range(draws)]
    norm_dw, norm_w = float(torch.linalg.matrix_norm(dw)), float(torch.linalg.matrix_norm(w))
    return {
        "r": r, "norm_w": norm_w, "norm_dw": norm_dw,
        "proj_dw": proj_dw, "proj_w": proj_w, "proj_random": sum(rand) / len(rand),
        "random_rms": math.sqrt(r * r * norm_w**2 / (out_f * in_f)),
        "amplification": norm_dw / proj_dw if proj_dw > 0 else float("nan"),
    }
