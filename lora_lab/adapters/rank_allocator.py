"""AdaLoRA's rank allocator: importance scores, the budget schedule b(t) and triplet masking.

Paper: Zhang et al., "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning", ICLR 2023
(arXiv 2303.10512), sections 3.2-3.3 and Appendix A. Reference code: PEFT
``tuners/adalora/layer.py::RankAllocator`` and QingruZhang/AdaLoRA ``loralib/adalora.py``.
Where the two differ from the paper we follow the code (docs/algorithms/adalora.md):

Importance (paper eqs. 8-11), for every entry ``w`` of ``Q`` (``lora_A``), ``Λ`` (``lora_E``) and
``P`` (``lora_B``), computed right after ``optimizer.step()`` from the post-step weight and the
gradient of the step just taken (the code's timing; Algorithm 1 uses the pre-step weight)::

    I     = |w * grad|
    Ibar <- beta1 * Ibar + (1 - beta1) * I                 (sensitivity EMA)
    Ubar <- beta2 * Ubar + (1 - beta2) * |I - Ibar|         (uncertainty EMA, with the *updated* Ibar)
    s     = Ibar * Ubar

Triplet score (eq. 9 with the code's means)::

    S_i = s(lambda_i) + mean_j s(Q_ij) + mean_j s(P_ji)

Budget (Appendix A eq. 14 as the code implements it, *without* the paper's stray ``- t_f``), with
``t`` the 0-based optimizer step, ``T`` the total number of optimizer steps, ``b0 = sum of initial
ranks`` and ``bT = target_r * n``::

    t <= t_i              : b(t) = b0, no masking
    t_i < t <= T - t_f    : b(t) = floor(bT + (b0 - bT) * (1 - (t - t_i) / (T - t_f - t_i))^3),
                            masking when t % delta_t == 0 (and always at t = T - t_f)
    t >  T - t_f          : b(t) = bT, the pattern fixed at T - t_f is re-applied every step

Masking sets ``lambda_i = 0`` for every triplet with ``S_i <= tau``, ``tau`` being the
``(b0 - b(t))``-th smallest score over all adapted matrices (``<=``: ties can mask more). Masked
triplets keep their shape and gradients and may revive before the next masking step (paper 3.3).
Each layer also records its boolean ``rank_mask`` so the final phase re-applies an exact pattern.
The EMAs are frozen (and dropped, as in PEFT) once the final pattern is fixed.

Deviations from PEFT, each only where PEFT crashes or silently corrupts the scores:

- a parameter without a gradient is skipped (its EMAs are not updated) instead of crashing
  (peft #1721);
- a step whose gradients are not finite (an fp16 loss-scaler overflow) does not update the EMAs
  (counted in ``skipped_updates``); PEFT would poison every later score with inf/NaN. The test runs
  on the device (``torch.where``), so a step outside allocation never waits for the GPU: host syncs
  happen only at allocation steps (``tau``, the kept count, the DDP mask check);
- ``k = b0 - b(t) <= 0`` masks nothing instead of raising in ``kthvalue``;
- a final phase entered without the allocation at ``T - t_f`` (e.g. ``T`` changed on resume) fixes
  the pattern at the first step it sees instead of crashing (peft #855).
"""

from __future__ import annotations

import torch

#: the three parameters of a triplet, in the order PEFT registers them
TRIPLET_PARAMS = ("lora_A", "lora_B", "lora_E")


def budget_schedule(step: int, b0: int, bT: int, tinit: int, tfinal: int, total_steps: int, delta_t: int) -> tuple[int, bool]:
    """``(b(step), mask_now)`` exactly as PEFT's ``RankAllocator.budget_schedule`` (see module doc)."""
    if step <= tinit:
        return b0, False
    if step > total_steps - tfinal:
        return bT, True
    mul_coeff = 1 - (step - tinit) / (total_steps - tfinal - tinit)
    return int((b0 - bT) * (mul_coeff**3) + bT), step % delta_t == 0


class RankAllocator:
    """Importance EMAs, budget and masks for a set of `AdaLoraLayer` s keyed by module name."""

    def __init__(self, layers: dict[str, torch.nn.Module], target_r: int, tinit: int, tfinal: int, delta_t: int, beta1: float, beta2: float):
        self.layers = layers
        self.target_r, self.tinit, self.tfinal, self.delta_t = target_r, tinit, tfinal, delta_t
        self.beta1, self.beta2 = beta1, beta2
        self.b0 = sum(layer.r for layer in layers.values())
        self.bT = target_r * len(layers)
        self.exp_avg_ipt: dict[str, torch.Tensor] = {}
        self.exp_avg_unc: dict[str, torch.Tensor] = {}
        self.final = False  # pattern fixed, EMAs dropped
        self.last_budget = self.b0
        self._skipped: torch.Tensor | None = None  # device counter of skipped EMA updates (this process)
        self._skipped_loaded = 0  # skipped updates restored from a checkpoint
        self.history: list[tuple[int, int, int]] = []  # (step, budget, kept triplets) at each allocation
        self.rank_history: list[list[int]] = []  # kept rank of every layer (in `layers` order) at each allocation

    # ----- importance ----------------------------------------------------------------------
    def _tracked(self):
        for name, layer in self.layers.items():
            for pname in TRIPLET_PARAMS:
                yield f"{name}.{pname}", getattr(layer, pname)

    @torch.no_grad()
    def update_importance(self) -> bool | torch.Tensor:
        """One EMA update from the current weights and gradients; a device bool, False if skipped
        (non-finite gradients), or False when no parameter has a gradient."""
        keys, params, grads = [], [], []
        for key, p in self._tracked():
            if key not in self.exp_avg_ipt or self.exp_avg_ipt[key].device != p.device:
                self.exp_avg_ipt[key] = self.exp_avg_ipt.get(key, torch.zeros_like(p)).to(p.device)
                self.exp_avg_unc[key] = self.exp_avg_unc.get(key, torch.zeros_like(p)).to(p.device)
            if p.grad is None:
                continue
            keys.append(key)
            params.append(p.detach())
            grads.append(p.grad.detach())
        if not keys:
            return False
        ipt = torch._foreach_mul(params, grads)
        torch._foreach_abs_(ipt)
        # decided on the device (no host sync): a non-finite step leaves the EMAs as they were
        finite = torch.isfinite(torch.stack(torch._foreach_max(ipt))).all()
        ema_i = [self.exp_avg_ipt[k] for k in keys]
        ema_u = [self.exp_avg_unc[k] for k in keys]
        # Ibar = b1 * Ibar + (1 - b1) * I   (same rounding as PEFT: two products, one sum)
        new_i = torch._foreach_mul(ema_i, self.beta1)
        torch._foreach_add_(new_i, torch._foreach_mul(ipt, 1 - self.beta1))
        # Ubar = b2 * Ubar + (1 - b2) * |I - Ibar|
        dev = torch._foreach_sub(ipt, new_i)
        torch._foreach_abs_(dev)
        torch._foreach_mul_(dev, 1 - self.beta2)
        new_u = torch._foreach_mul(ema_u, self.beta2)
        torch._foreach_add_(new_u, dev)
        for ema, new in zip([*ema_i, *ema_u], [*new_i, *new_u]):
            ema.copy_(torch.where(finite, new, ema))
        skipped = (~finite).to(torch.int64)
        self._skipped = skipped if self._skipped is None else self._skipped + skipped.to(self._skipped.device)
        return finite

    @property
    def skipped_updates(self) -> int:
        """Steps whose non-finite gradients left the EMAs unchanged (read on the host: syncs)."""
        return self._skipped_loaded + (0 if self._skipped is None else int(self._skipped))

    def element_score(self, key: str) -> torch.Tensor:
        return self.exp_avg_ipt[key] * self.exp_avg_unc[key]

    @torch.no_grad()
    def triplet_scores(self) -> dict[str, torch.Tensor]:
        """``S_i = s(lambda_i) + (mean_j s(Q_ij) + mean_j s(P_ji))`` per layer, shape ``[r]``."""
        scores = {}
        for name, layer in self.layers.items():
            if f"{name}.lora_A" not in self.exp_avg_ipt:
                scores[name] = torch.zeros(layer.r, device=layer.lora_E.device)
                continue
            s_a = self.element_score(f"{name}.lora_A").mean(dim=1)
            s_b = self.element_score(f"{name}.lora_B").mean(dim=0)
            scores[name] = self.element_score(f"{name}.lora_E") + (s_a + s_b)
        return scores

    # ----- masking -------------------------------------------------------------------------
    @torch.no_grad()
    def mask_to_budget(self, budget: int) -> float | None:
        """Keep the triplets scoring above the ``(b0 - budget)``-th smallest score; returns tau."""
        scores = self.triplet_scores()
        k = self.b0 - budget
        if k <= 0:
            for layer in self.layers.values():
                layer.set_rank_mask(torch.ones(layer.r, dtype=torch.bool, device=layer.lora_E.device))
            return None
        tau = torch.kthvalue(torch.cat([s.view(-1) for s in scores.values()]), k=k)[0].item()
        for name, layer in self.layers.items():
            layer.set_rank_mask(scores[name] > tau)
        self.check_ranks_agree()
        return tau

    @torch.no_grad()
    def check_ranks_agree(self) -> None:
        """Under torch.distributed, raise if the processes hold different masks.

        Every rank computes its mask from the same all-reduced gradients and the same weights, so
        the masks must agree; a mismatch means the hook ran with local (un-reduced) gradients or
        at different steps, and the ranks' models would silently diverge. One all-reduce of ``2 * b0`` integers per
        allocation (not per step of the final phase)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        flat = torch.cat([layer.rank_mask for layer in self.layers.values()]).to(torch.int64)
        both = torch.cat([flat, -flat])
        dist.all_reduce(both, op=dist.ReduceOp.MAX)  # elementwise max and -min over the ranks
        if not torch.equal(both[: flat.numel()], -both[flat.numel() :]):
            raise RuntimeError(
                "AdaLoRA rank masks differ between processes: the allocator must run after the "
                "gradient all-reduce, once per optimizer step, on every rank"
            )

    def reapply_masks(self) -> None:
        for layer in self.layers.values():
            layer.apply_rank_mask()

    def kept_total(self) -> int:
        """Kept triplets over all layers (one host sync)."""
        return int(torch.stack([layer.rank_mask.sum() for layer in self.layers.values()]).sum())

    def record_allocation(self, step: int, budget: int) -> None:
        """Append ``(step, budget, kept)`` to `history` and every layer's kept rank to `rank_history`
        (one host sync, at allocation steps only: what `lora-lab analyze` plots over training)."""
        ranks = [int(v) for v in torch.stack([layer.rank_mask.sum() for layer in self.layers.values()]).tolist()]
        self.history.append((step, budget, sum(ranks)))
        self.rank_history.append(ranks)

    # ----- the per-step entry point ----------------------------------------------------------
    def step(self, step: int, total_steps: int) -> None:
        """PEFT ``AdaLoraModel.update_and_allocate(step)`` with the deviations in the module doc."""
        final_start = total_steps - self.tfinal
        if self.final:
            self.reapply_masks()
            self.last_budget = self.bT
            return
        if step < final_start:
            self.update_importance()
            budget, mask_now = budget_schedule(step, self.b0, self.bT, self.tinit, self.tfinal, total_steps, self.delta_t)
            self.last_budget = budget
            if mask_now:
                self.mask_to_budget(budget)
                self.record_allocation(step, budget)
            return
        # step == T - t_f (or the first step seen past it): fix the final pattern, drop the EMAs
        self.mask_to_budget(self.bT)
        self.last_budget = self.bT
        self.record_allocation(step, self.bT)
        self.final = True
        self.exp_avg_ipt.clear()
        self.exp_avg_unc.clear()

    # ----- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"ema_ipt.{k}": v for k, v in self.exp_avg_ipt.items()}
        state.update({f"ema_unc.{k}": v for k, v in self.exp_avg_unc.items()})
        state["final"] = torch.tensor(self.final)
        state["last_budget"] = torch.tensor(self.last_budget, dtype=torch.int64)
        state["skipped_updates"] = torch.tensor(self.skipped_updates, dtype=torch.int64)
        state["history"] = torch.tensor(self.history, dtype=torch.int64).view(-1, 3)
        state["rank_history"] = torch.tensor(self.rank_history, dtype=torch.int64).view(-1, len(self.layers))
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        known = {f"{kind}.{k}" for kind in ("ema_ipt", "ema_unc") for k, _ in self._tracked()}
        known |= {"final", "last_budget", "skipped_updates", "history", "rank_history"}
        unexpected = sorted(set(state) - known)
        if unexpected:
            raise KeyError(f"unexpected AdaLoRA allocator state: {unexpected[:5]}")
        params = dict(self._tracked())
        self.exp_avg_ipt = {k[len("ema_ipt.") :]: v.clone() for k, v in state.items() if k.startswith("ema_ipt.")}
        self.exp_avg_unc = {k[len("ema_unc.") :]: v.clone() for k, v in state.items() if k.startswith("ema_unc.")}
        for key, ema in list(self.exp_avg_ipt.items()) + list(self.exp_avg_unc.items()):
            if ema.shape != params[key].shape:
                raise ValueError(f"allocator state {key}: shape {tuple(ema.shape)} != parameter {tuple(params[key].shape)}")
        self.final = bool(state["final"]) if "final" in state else False
        self.last_budget = int(state["last_budget"]) if "last_budget" in state else self.b0
        self._skipped_loaded = int(state["skipped_updates"]) if "skipped_updates" in state else 0
        self._skipped = None
        hist = state.get("history")
        self.history = [tuple(int(v) for v in row) for row in hist.tolist()] if hist is not None else []
        ranks = state.get("rank_history")  # absent from checkpoints written before it was recorded
        self.rank_history = [[int(v) for v in row] for row in ranks.tolist()] if ranks is not None else []
