"""DoRA: weight-decomposed low-rank adaptation (Liu et al. 2024, arXiv 2402.09353, sections 3-4).

With ``V = W0 + s B A`` (``[out, in]``, the LoRA update included) and a trainable magnitude ``m``
(``[out]``), the adapted weight is (paper eq. 5)

    W' = m / ||V||_row * V,        g := m / ||V||_row   (one scalar per output unit)

``||.||_row`` is the L2 norm over the *input* dimension of the ``[out, in]`` weight (the paper's
"column-wise" norm of the ``x W`` layout; GPT-2 ``Conv1D`` is transposed first). At init
``m = ||W0 + s B A||_row``, so ``g = 1`` and the layer equals LoRA (= the base model with B = 0).
The norm is detached from the graph (paper section 4.3): it is a constant for autograd, ``m`` gets
the exact gradient and ``V`` gets ``(m / ||V||) dL/dW'`` (eq. 11).

Forward (docs/algorithms/dora.md; identical to PEFT 0.21 ``DoraLinearVariant`` and NVlabs ``dora.py``):

    h = y0 + (g - 1) * (W0 x~) + g * (s B A x~),     y0 = W0 x + b0,  x~ = dropout(x)

The base bias is not rescaled. Without active dropout (p = 0 or eval mode) ``W0 x~ = y0 - b0``, so
``h = g * (y0 + s B A x) + (1 - g) * b0`` costs no second base matmul. With active dropout the
``(g - 1)`` correction uses the *dropped* input while ``y0`` uses the clean one (PEFT/NVlabs
semantics, explained in peft PR #2153): we reproduce it deliberately so our numbers equal PEFT's.

Row norm without an ``[out, in]`` temporary (PEFT builds ``B A`` through an ``in x in`` identity
matmul, adds it to ``W0`` and takes the norm: several passes over ``[out, in]`` per step):

    ||W_i + s B_i A||^2 = ||W_i||^2 + 2 s B_i (A W_i^T) + s^2 B_i (A A^T) B_i^T

``||W_i||^2`` is recomputed at every call (one read of ``W0``, no temporary): a cache keyed on the
weight's storage and version counter missed in-place edits made through ``.data`` (which bypass the
version counter) and then served a stale norm, and nothing cheaper than reading the weight can
detect every edit. ``A W^T`` is one ``[r, in] x [in, out]`` matmul and the rest is
``O(r^2 (in + out))``. In fp32 the expansion loses relative accuracy only where ``||V_i||^2`` is much
smaller than ``||W_i||^2 + ||s B_i A||^2`` (the adapter cancelling most of a row); such rows
(ratio < 0.05) are recomputed directly, so the norm is as accurate as PEFT's direct fp32 norm. The
correction has a fixed shape so that it never waits on the device (no host sync): the
``_CANCELLATION_BUDGET`` rows with the smallest ratio are recomputed and used where they are
cancelling rows; more cancelling rows than that in one layer (never seen in training: a LoRA update
is small next to ``W0``) are counted on the device and reported in the method summary
(``norm_rows_over_budget``). Merge and unmerge use the direct norm. Not FSDP-aware (PEFT's
identity-matmul detour exists for FSDP).

Merge (exact, fp32): ``W <- g * (W0 + s B A)`` with ``g`` from the pre-merge weight; the norm is
cached because unmerge cannot recompute it from the merged weight: ``W0 = W / g - s B A``
(docs/algorithms/dora.md; the transpose for ``Conv1D`` is handled once in `AdapterLayer`).
`delta_weight` returns DoRA's *effective* update ``W' - W0`` (not additive across adapters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lora_lab.adapters.init import LORA_FAMILY
from lora_lab.adapters.lora import LoraConfig, LoraLayer
from lora_lab.adapters.method import AdapterMethod, register_method
from lora_lab.adapters.quant import is_quantized

#: rows whose squared norm is below this fraction of ``||W_i||^2 + ||s B_i A||^2`` are recomputed directly
_CANCELLATION_RATIO = 0.05
#: at most this many rows per layer and call are recomputed (the ones with the smallest ratio)
_CANCELLATION_BUDGET = 16


class DoraLayer(LoraLayer):
    """LoRA plus a trainable per-output magnitude; see the module docstring for the equations."""

    adapter_parameter_names = ("lora_A", "lora_B", "magnitude")

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0, rslora: bool = False, init: str = "kaiming"):
        super().__init__(base_layer, r=r, alpha=alpha, dropout=dropout, rslora=rslora, init=init)
        self.magnitude = nn.Parameter(torch.zeros(self.out_features, device=base_layer.weight.device, dtype=torch.float32))
        self._merge_norm: torch.Tensor | None = None
        self.rows_over_budget: torch.Tensor | None = None  # cancelling rows left uncorrected (device counter)

    # ----- norms --------------------------------------------------------------------------
    def _base_row_sq_norm(self) -> torch.Tensor:
        """``||W0_i||^2`` (fp32, ``[out]``), read from the weight at every call (never cached)."""
        dim = 0 if self.fan_in_fan_out else 1
        return torch.linalg.vector_norm(self.base_layer.weight.detach(), dim=dim, dtype=torch.float32).square()

    @torch.no_grad()
    def direct_weight_norm(self, base_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``||W0 + s B A||_row`` (fp32, ``[out]``) from a materialised ``[out, in]`` matrix."""
        w = self.base_weight().float() if base_weight is None else base_weight.float()
        return torch.linalg.vector_norm(w + self.scaling * (self.lora_B @ self.lora_A), dim=1)

    @torch.no_grad()
    def weight_norm(self) -> torch.Tensor:
        """``||W0 + s B A||_row`` (fp32, ``[out]``, no graph) via the norm identity, no ``[out, in]`` temporary.
        Autocast is off here: the products run in the base dtype (fp32 for an fp32 base), sums in fp32.
        A quantised base (QDoRA) takes the direct norm of ``deq(Q(W0)) + s B A``."""
        if is_quantized(self.base_layer):
            return self.direct_weight_norm()
        with torch.autocast(device_type=self.lora_A.device.type, enabled=False):
            return self._weight_norm()

    def _weight_norm(self) -> torch.Tensor:
        a, b, s = self.lora_A, self.lora_B, self.scaling
        w = self.base_layer.weight  # stored layout: [out, in] (Linear) or [in, out] (Conv1D)
        a_w = a.to(w.dtype)  # low-precision base: matmul in the base dtype (as PEFT's norm), then fp32
        # W A^T as [out, r]; each layout in the orientation its BLAS call is fastest in (measured)
        wa = (a_w @ w).T if self.fan_in_fan_out else w @ a_w.T
        wa = wa.to(a.dtype)
        w_sq = self._base_row_sq_norm()
        cross = (b * wa).sum(dim=1)  # B_i . (A W_i^T)
        quad = ((b @ (a @ a.T)) * b).sum(dim=1)  # B_i (A A^T) B_i^T
        sq = w_sq + (2.0 * s) * cross + (s * s) * quad
        parts = w_sq + (s * s) * quad
        bad = sq < _CANCELLATION_RATIO * parts
        # fixed-shape correction, no host sync: the rows with the smallest ratio, recomputed directly
        rows = torch.topk(sq / parts.clamp_min(torch.finfo(parts.dtype).tiny), min(_CANCELLATION_BUDGET, sq.shape[0]), largest=False).indices
        direct = torch.linalg.vector_norm(self.base_weight()[rows].float() + s * (b[rows] @ a), dim=1).square()
        fix = bad[rows]
        sq = sq.index_put((rows,), torch.where(fix, direct, sq[rows]))
        missed = bad.sum() - fix.sum()
        self.rows_over_budget = missed if self.rows_over_budget is None else self.rows_over_budget + missed
        return sq.clamp_min(0.0).sqrt()

    # ----- life cycle ---------------------------------------------------------------------
    def reset_from_base(self) -> None:
        super().reset_from_base()  # the LoRA init (PiSSA/OLoRA write the residual first)
        with torch.no_grad():
            self.magnitude.copy_(self.direct_weight_norm())

    @torch.no_grad()
    def on_base_quantized(self) -> None:
        self.magnitude.copy_(self.direct_weight_norm())  # m = ||deq(Q(W0)) + s B A||: g = 1 at init

    def adapter_forward(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        dropped = self.dropout(x)
        g = self.magnitude / self.weight_norm()
        bias = self.base_layer.bias
        if isinstance(self.dropout, nn.Identity) or not self.training:
            # W0 x = y0 - b0:  h = g * (y0 + s B A x) + (1 - g) * b0
            v_x = self.add_lora_output(base_out, dropped)
            out = g * v_x if bias is None else torch.addcmul((1.0 - g) * bias, g, v_x)
        else:
            # dropped input: W0 x~ needs its own matmul;  h = y0 - W0 x~ + g * (W0 x~ + s B A x~)
            base_dropped = F.linear(dropped.to(base_out.dtype), self.base_weight())
            out = torch.addcmul(base_out - base_dropped, g, self.add_lora_output(base_dropped, dropped))
        return out.to(base_out.dtype)

    # ----- merge --------------------------------------------------------------------------
    def merged_weight(self, base_weight: torch.Tensor) -> torch.Tensor:
        v = base_weight + self.scaling * (self.lora_B @ self.lora_A)
        norm = torch.linalg.vector_norm(v, dim=1)
        return (self.magnitude / norm)[:, None] * v

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self._merge_norm = self.direct_weight_norm()
        super().merge()

    def unmerged_weight(self, merged_weight: torch.Tensor) -> torch.Tensor:
        if self._merge_norm is None:
            raise RuntimeError("no cached DoRA norm: this layer was not merged through merge()")
        g = self.magnitude / self._merge_norm
        return merged_weight / g[:, None] - self.scaling * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def unmerge(self) -> None:
        super().unmerge()
        self._merge_norm = None

    def delta_weight(self) -> torch.Tensor:
        """DoRA's effective update ``W' - W0`` (fp32, ``[out, in]``); depends on ``W0``, so not additive."""
        w = self.base_weight().float()
        if self.merged:
            return w - self.unmerged_weight(w)
        return self.merged_weight(w) - w

    def lora_delta_weight(self) -> torch.Tensor:
        """The LoRA part ``s B A`` alone."""
        return LoraLayer.delta_weight(self)


@dataclass
class DoraConfig(LoraConfig):
    """DoRA knobs: exactly LoRA's (``r``, ``alpha``, ``rslora``, ``dropout``, ``targets``, ``init`` ...)."""

    method: str = "dora"
    init_family: ClassVar[str] = LORA_FAMILY


@register_method
class DoraMethod(AdapterMethod):
    name = "dora"
    display_name = "DoRA"
    table_order = 5
    config_cls = DoraConfig
    examples = ({"r": 4, "alpha": 8},)

    def make_layer(self, base_layer: nn.Module, module_name: str) -> DoraLayer:
        c = self.config
        return DoraLayer(base_layer, r=c.r, alpha=c.alpha, dropout=c.dropout, rslora=c.rslora, init=c.init)

    def summary(self) -> dict:
        """``norm_rows_over_budget``: cancelling rows the norm identity could not recompute (0 expected;
        read once, at the end of a run)."""
        counts = [layer.rows_over_budget for layer in self.layers.values() if layer.rows_over_budget is not None]
        return {**super().summary(), "norm_rows_over_budget": int(sum(int(c) for c in counts))}

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        """``sum r (in + out) + out``: LoRA's A and B plus the magnitude ``m: [out]``."""
        return sum(self.config.r * (i + o) + o for i, o in shapes.values())
