"""AdaLoRA (Zhang et al., ICLR 2023, arXiv 2303.10512): SVD-form adapters with a rank budget.

Layer (paper eq. 3, section 3.1)::

    h = W0 x + b0 + P diag(lambda) Q dropout(x) * alpha / (r_init + 1e-5)

``Q = lora_A: [r, in]`` (right singular vectors), ``lambda = lora_E: [r]`` (singular values),
``P = lora_B: [out, r]`` (left singular vectors). The scale is fixed at ``alpha / (r_init + 1e-5)``
(both reference codebases, including their ``+ 1e-5``) and does **not** change when triplets are
masked (author's answer in QingruZhang/AdaLoRA #12). Init: ``lambda = 0``, ``P, Q ~ N(0, 0.02^2)``,
so the adapted model is an exact no-op at init (``init: adalora``, the only init allowed here; a
LoRA-style ``B = 0`` would leave every gradient at zero).

Masking a triplet zeroes ``lambda_i`` (like PEFT, so a masked triplet keeps training and may revive
between masking steps) and records it in the layer's boolean ``rank_mask`` buffer, which is saved
with the adapter; the kept rank of a layer is ``rank_mask.sum()``.

Method (the training hooks the Lightning module calls for every method, so nobody has to remember
a call like PEFT's ``update_and_allocate``):

- ``regularization_loss()`` -- orthogonality regulariser times ``orth_reg_weight``, form chosen by
  ``orth_reg_form``:

  * ``code`` (default; PEFT ``AdaLoraModel.forward`` and the original ``compute_orth_regu``, i.e.
    what produced the published numbers): ``mean over the 2n matrices of ||Q Q^T - I||_F and
    ||P^T P - I||_F`` (not squared);
  * ``paper`` (eq. 4 and the objective of eq. 5): ``sum_k (||P_k^T P_k - I||_F^2 + ||Q_k Q_k^T - I||_F^2)``.

  It is computed in fp32 with autocast disabled;
- ``on_optimizer_step(step, total_steps)`` -- `RankAllocator.step` (importance EMAs, budget
  schedule, masking; see `lora_lab.adapters.rank_allocator` for the equations). It sees the
  accumulated, clipped (unscaled) gradients of the step just taken; under DDP they are all-reduced,
  so every rank computes the same masks, which each allocation verifies with one all-reduce (a
  mismatch raises). Sharded gradients (FSDP, ZeRO) are not supported;
- ``check_schedule(total_steps)`` -- rejects ``tinit + tfinal >= total_steps`` before training;
- ``state_dict()`` -- allocator EMAs, phase flag and allocation history (the masks live in the
  layers' buffers); ``summary()`` -- final rank pattern and budget for result.json;
- ``save_artifacts(run_dir)`` -- the rank heatmap (layers x module kind) and the budget history.

Knobs: ``r`` is the initial rank (one name across methods); ``target_r`` the average final rank
(``bT = target_r * n``); ``tinit`` / ``tfinal`` / ``delta_t`` in optimizer steps; ``beta1`` /
``beta2`` the EMA factors. ``tfinal >= 1`` is required: the final pattern is fixed at the 0-based
step ``T - tfinal``, which must be a step that runs (PEFT's default ``tfinal = 0`` never reaches it
and ends training above the target budget). Notes: docs/algorithms/adalora.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lora_lab.adapters.base import AdapterLayer
from lora_lab.adapters.config import AdapterConfig, check_positive_int, check_positive_number, is_int
from lora_lab.adapters.method import AdapterMethod, register_method
from lora_lab.adapters.rank_allocator import RankAllocator, budget_schedule
from lora_lab.adapters.registry import get_init, register_init
from lora_lab.errors import ConfigError

ADALORA_INIT = "adalora"
ORTH_REG_FORMS = ("code", "paper")


@register_init(ADALORA_INIT, families=(ADALORA_INIT,))
@torch.no_grad()
def adalora_init(layer: nn.Module, name: str) -> None:
    """PEFT's AdaLoRA init: ``lambda = 0`` (an exact no-op at init), ``P, Q ~ N(0, 0.02^2)``, every rank kept."""
    nn.init.zeros_(layer.lora_E)
    nn.init.normal_(layer.lora_A, mean=0.0, std=0.02)
    nn.init.normal_(layer.lora_B, mean=0.0, std=0.02)
    layer.rank_mask.fill_(True)


class AdaLoraLayer(AdapterLayer):
    """One frozen linear map plus ``P diag(lambda) Q * alpha / (r_init + 1e-5)``."""

    adapter_parameter_names = ("lora_A", "lora_E", "lora_B")
    adapter_buffer_names = ("rank_mask",)

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__(base_layer)
        self.r, self.alpha = r, float(alpha)
        device = base_layer.weight.device
        self.lora_A = nn.Parameter(torch.zeros(r, self.in_features, device=device, dtype=torch.float32))
        self.lora_E = nn.Parameter(torch.zeros(r, device=device, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, device=device, dtype=torch.float32))
        self.register_buffer("rank_mask", torch.ones(r, dtype=torch.bool, device=device))
        # r_init + 1e-5 as an fp32 [1] tensor, exactly PEFT's ``ranknum + 1e-5`` (never decreased)
        self.register_buffer("ranknum", torch.full((1,), float(r), device=device) + 1e-5, persistent=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def scaling(self) -> float:
        return self.alpha / float(self.ranknum)

    def reset_from_base(self) -> None:
        get_init(ADALORA_INIT, ADALORA_INIT).fn(self, ADALORA_INIT)

    def delta_weight(self) -> torch.Tensor:
        return self.lora_B @ (self.lora_A * self.lora_E[:, None]) * self.alpha / self.ranknum

    def adapter_forward(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x.to(self.lora_A.dtype))
        out = F.linear(F.linear(x, self.lora_A * self.lora_E[:, None]), self.lora_B) * self.alpha / self.ranknum
        return base_out + out.to(base_out.dtype)

    @torch.no_grad()
    def set_rank_mask(self, keep: torch.Tensor) -> None:
        """Record which triplets are kept and zero the singular values of the others."""
        self.rank_mask.copy_(keep.view(-1).to(torch.bool))
        self.apply_rank_mask()

    @torch.no_grad()
    def apply_rank_mask(self) -> None:
        self.lora_E.masked_fill_(~self.rank_mask, 0.0)

    @property
    def kept_rank(self) -> int:
        return int(self.rank_mask.sum())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", r_init={self.r}, alpha={self.alpha}"


def orthogonality_regularizer(layers, form: str = "code") -> torch.Tensor:
    """``R`` of the module doc over the given layers (fp32, autocast off), without the weight."""
    layers = list(layers)
    device = layers[0].lora_A.device
    with torch.autocast(device_type=device.type, enabled=False):
        terms = []
        for layer in layers:
            a, b = layer.lora_A.float(), layer.lora_B.float()
            for cov in (a @ a.T, b.T @ b):
                eye = torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype)
                terms.append(torch.linalg.matrix_norm(cov - eye, ord="fro"))
        stacked = torch.stack(terms)
        return stacked.mean() if form == "code" else (stacked**2).sum()


@dataclass
class AdaLoraConfig(AdapterConfig):
    """AdaLoRA knobs; defaults follow PEFT's ``AdaLoraConfig`` (``init_r=12``, ``target_r=8``,
    ``lora_alpha=8``, ``beta1=beta2=0.85``, ``orth_reg_weight=0.5``) except ``tfinal >= 1``."""

    method: str = "adalora"
    init: str = ADALORA_INIT
    r: int = 12
    alpha: float = 8.0
    target_r: int = 8
    tinit: int = 0
    tfinal: int = 1
    delta_t: int = 1
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.5
    orth_reg_form: str = "code"

    def validate(self) -> None:
        check_positive_int("r", self.r)
        check_positive_number("alpha", self.alpha)
        super().validate()
        if not is_int(self.target_r) or not 1 <= self.target_r < self.r:
            raise ConfigError("adapter.target_r", f"must be an integer with 1 <= target_r < r = {self.r}, got {self.target_r!r}")
        if not is_int(self.tinit) or self.tinit < 0:
            raise ConfigError("adapter.tinit", f"must be an integer >= 0 (optimizer steps), got {self.tinit!r}")
        if not is_int(self.tfinal) or self.tfinal < 1:
            raise ConfigError(
                "adapter.tfinal",
                f"must be an integer >= 1 (optimizer steps; the final pattern is fixed at step T - tfinal), got {self.tfinal!r}",
            )
        if not is_int(self.delta_t) or self.delta_t < 1:
            raise ConfigError("adapter.delta_t", f"must be an integer >= 1 (optimizer steps), got {self.delta_t!r}")
        for key in ("beta1", "beta2"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v < 1.0:
                raise ConfigError(f"adapter.{key}", f"must be in (0, 1), got {v!r}")
        w = self.orth_reg_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigError("adapter.orth_reg_weight", f"must be a number >= 0, got {w!r}")
        if self.orth_reg_form not in ORTH_REG_FORMS:
            raise ConfigError("adapter.orth_reg_form", f"must be one of {', '.join(ORTH_REG_FORMS)}, got {self.orth_reg_form!r}")

    def check_schedule(self, total_steps: int) -> None:
        if self.tinit + self.tfinal >= total_steps:
            raise ConfigError(
                "adapter.tinit",
                f"tinit + tfinal = {self.tinit} + {self.tfinal} must be < total optimizer steps T = {total_steps} "
                "(computed from the trainer: max_steps, or epochs x batches / accumulate_grad_batches); "
                "lower tinit/tfinal or train longer",
            )


@register_method
class AdaLoraMethod(AdapterMethod):
    name = "adalora"
    display_name = "AdaLoRA"
    table_order = 7
    config_cls = AdaLoraConfig
    examples = ({"r": 6, "target_r": 3},)

    def __init__(self, config: AdaLoraConfig):
        super().__init__(config)
        self._allocator: RankAllocator | None = None
        self.total_steps: int | None = None

    def make_layer(self, base_layer: nn.Module, module_name: str) -> AdaLoraLayer:
        c = self.config
        return AdaLoraLayer(base_layer, r=c.r, alpha=c.alpha, dropout=c.dropout)

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        """``sum r_init (in + out + 1)``: Q ``[r, in]``, P ``[out, r]`` and lambda ``[r]`` as allocated."""
        return sum(self.config.r * (i + o + 1) for i, o in shapes.values())

    @property
    def allocator(self) -> RankAllocator:
        if self._allocator is None:
            if not self.layers:
                raise RuntimeError("attach the AdaLoRA method to a model first")
            c = self.config
            self._allocator = RankAllocator(self.layers, c.target_r, c.tinit, c.tfinal, c.delta_t, c.beta1, c.beta2)
        return self._allocator

    # ----- training hooks --------------------------------------------------------------------
    def regularization_loss(self) -> torch.Tensor | None:
        if self.config.orth_reg_weight == 0 or not self.layers:
            return None
        return self.config.orth_reg_weight * orthogonality_regularizer(self.layers.values(), self.config.orth_reg_form)

    def check_schedule(self, total_steps: int) -> None:
        self.config.check_schedule(total_steps)
        self.total_steps = int(total_steps)

    def on_optimizer_step(self, step: int, total_steps: int) -> None:
        if self.total_steps != total_steps:
            self.check_schedule(total_steps)
        self.allocator.step(int(step), int(total_steps))

    def budget(self, step: int, total_steps: int) -> tuple[int, bool]:
        """``(b(step), mask_now)`` of this method's schedule."""
        a, c = self.allocator, self.config
        return budget_schedule(step, a.b0, a.bT, c.tinit, c.tfinal, total_steps, c.delta_t)

    # ----- state and reporting -----------------------------------------------------------------
    def selectable(self, completed_steps: int, total_steps: int) -> bool:
        """Only evaluations after the final pattern is fixed (0-based step ``T - tfinal`` done)
        compete in model selection: an earlier state holds more than the target budget."""
        return completed_steps > total_steps - self.config.tfinal

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"allocator.{k}": v for k, v in self.allocator.state_dict().items()}
        if self.total_steps is not None:
            state["total_steps"] = torch.tensor(self.total_steps, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        unexpected = sorted(k for k in state if not k.startswith("allocator.") and k != "total_steps")
        if unexpected:
            raise KeyError(f"unexpected AdaLoRA method state: {unexpected[:5]}")
        self.allocator.load_state_dict({k[len("allocator.") :]: v for k, v in state.items() if k.startswith("allocator.")})
        if "total_steps" in state:
            self.total_steps = int(state["total_steps"])

    def rank_pattern(self) -> dict[str, int]:
        """Kept rank per adapted module (``rank_mask.sum()``), in model order."""
        return {name: layer.kept_rank for name, layer in self.layers.items()}

    def module_shapes(self) -> dict[str, list[int]]:
        """``[in_features, out_features]`` per adapted module, in model order."""
        return {name: [int(layer.in_features), int(layer.out_features)] for name, layer in self.layers.items()}

    def final_adapter_params(self) -> int:
        """Parameters of the final rank pattern, ``sum_i r_i * (in_i + out_i + 1)`` (Q, lambda, P of the
        kept triplets; the paper's budget convention), while ``params.adapter_params`` counts the
        allocated ``r_init``."""
        shapes = self.module_shapes()
        return sum(r * (shapes[name][0] + shapes[name][1] + 1) for name, r in self.rank_pattern().items())

    def summary(self) -> dict:
        """Final rank pattern and budget for result.json (``adapter_params_final``: `final_adapter_params`)."""
        a = self.allocator
        pattern = self.rank_pattern()
        return {
            **super().summary(),
            "rank_pattern": pattern,
            "module_shapes": self.module_shapes(),
            "total_rank": sum(pattern.values()),
            "budget_init": a.b0,
            "budget_target": a.bT,
            "budget_final": a.last_budget,
            "n_matrices": len(self.layers),
            "r_init": self.config.r,
            "target_r": self.config.target_r,
            "total_steps": self.total_steps,
            "final_pattern_fixed": a.final,
            "allocations": len(a.history),
            "skipped_importance_updates": a.skipped_updates,
            "orth_reg_form": self.config.orth_reg_form,
            "model_type": self.model_type,
        }

    def save_artifacts(self, run_dir) -> list:
        from lora_lab.adapters.rank_heatmap import plot_rank_heatmap

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        heatmap = plot_rank_heatmap(self.rank_pattern(), self.model_type, run_dir / "adalora_rank_heatmap.png", r_init=self.config.r)
        history = run_dir / "adalora_budget_history.json"
        a = self.allocator
        ranks = a.rank_history if len(a.rank_history) == len(a.history) else [None] * len(a.history)
        rows = [{"step": s, "budget": b, "kept": k, "ranks": r} for (s, b, k), r in zip(a.history, ranks)]
        history.write_text(json.dumps({"budget_init": a.b0, "budget_target": a.bT, "modules": list(self.layers), "total_steps": self.total_steps,
                                       "tinit": self.config.tinit, "tfinal": self.config.tfinal, "delta_t": self.config.delta_t,
                                       "allocations": rows}, indent=1))
        return [heatmap, history]
