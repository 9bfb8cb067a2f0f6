"""Incremental PCA (Ross et al. 2008, "Incremental learning for robust visual tracking";
the scikit-learn ``IncrementalPCA`` update), the part EVA's init needs (`lora_lab.adapters.eva`).

After batches ``X_1 .. X_t`` (rows are samples) it holds the top ``k`` principal directions of all rows
seen so far without storing them. The first batch is centred by its mean and factorised,
``X_1 - mu_1 = U S V^T``; each later batch ``X`` (``m`` rows, mean ``x_bar``) is merged by factorising

    [ diag(S) V^T ;  X - x_bar ;  sqrt(n m / (n + m)) (mu - x_bar) ]        (n rows seen before)

whose right singular vectors are those of all rows centred by the running mean ``mu`` (the last row
corrects for the shift of the mean); the mean and variance are updated with Chan et al.'s pairwise
formulas in float64. Only the top ``k`` components are kept, so the result approximates the PCA of
the concatenation; ``torch.svd_lowrank(q = 2k, niter = 4)`` seeded with a fixed seed inside a forked
RNG makes each update deterministic without touching the global generator, and the sign of each
component is fixed (largest-magnitude entry positive). Operation for operation this is PEFT 0.21's
``peft.utils.incremental_pca.IncrementalPCA(lowrank=True, lowrank_seed=42)``, so EVA's components
match PEFT's to rounding (tests/adapters/test_eva_corda_parity.py).
"""

from __future__ import annotations

import torch


def _mean_and_var(x: torch.Tensor, mean, var, count: torch.Tensor):
    """Running mean and (biased) variance after the rows of ``x``, in float64."""
    new_count = torch.tensor([x.shape[0]], device=x.device)
    total = count + new_count
    last_sum = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device) if mean is None else mean * count
    new_sum = x.sum(dim=0, dtype=torch.float64)
    new_mean = (last_sum + new_sum) / total
    centred = x - new_sum / new_count
    correction = centred.sum(dim=0, dtype=torch.float64).square()
    new_unnormalised = centred.square().sum(dim=0, dtype=torch.float64) - correction / new_count
    if var is None:
        return new_mean, new_unnormalised / total, total
    ratio = count.double() / new_count
    unnormalised = var * count + new_unnormalised + ratio / total * (last_sum / ratio - new_sum).square()
    return new_mean, unnormalised / total, total


class IncrementalPCA:
    """The top ``n_components`` principal directions of the rows passed to `partial_fit` so far."""

    def __init__(self, n_components: int, seed: int = 42, niter: int = 4):
        self.n_components, self.seed, self.niter = n_components, seed, niter
        self.components_: torch.Tensor | None = None  # [k, features], orthonormal rows
        self.singular_values_: torch.Tensor | None = None
        self.mean_ = self.var_ = None
        self.n_samples_seen_ = torch.tensor([0])

    def _svd(self, x: torch.Tensor):
        with torch.random.fork_rng(devices=[x.device.index or 0] if x.is_cuda else []):
            torch.manual_seed(self.seed)
            u, s, v = torch.svd_lowrank(x, q=2 * self.n_components, niter=self.niter)
        return u, s, v.mH

    def partial_fit(self, x: torch.Tensor) -> "IncrementalPCA":
        """Merge the rows of ``x`` (``[n, features]``, ``n >= n_components``)."""
        x = x.to(torch.float32).clone()
        n = x.shape[0]
        if self.components_ is None:
            self.n_samples_seen_ = torch.tensor([0], device=x.device)
        mean, var, total = _mean_and_var(x, self.mean_, self.var_, self.n_samples_seen_)
        if self.components_ is None:
            x -= mean
        else:
            batch_mean = torch.mean(x, dim=0)
            x -= batch_mean
            shift = torch.sqrt((self.n_samples_seen_.double() / total) * n) * (self.mean_ - batch_mean)
            x = torch.vstack((self.singular_values_.view(-1, 1) * self.components_, x, shift))
        _, s, vt = self._svd(x)
        signs = torch.sign(vt[range(vt.shape[0]), torch.argmax(torch.abs(vt), dim=1)])
        vt = vt * signs.view(-1, 1)
        self.n_samples_seen_, self.mean_, self.var_ = total, mean, var
        self.components_ = vt[: self.n_components]
        self.singular_values_ = s[: self.n_components]
        return self
