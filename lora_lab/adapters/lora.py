"""LoRA (Hu et al. 2021, arXiv 2106.09685, section 4.1) with rsLoRA scaling (arXiv 2312.03732).

    h = W0 x + b0 + s * B A dropout(x),     s = alpha / r     (rsLoRA: s = alpha / sqrt(r))

``A: [r, in]``, ``B: [out, r]``; dropout sits on the adapter branch only, the base path sees the clean
input. ``ΔW = s * B A`` (``[out, in]``); merge adds it to ``W0``, unmerge subtracts it.
Initialisation is a separate axis (`lora_lab.adapters.init`): ``kaiming`` (default, B = 0, exact
no-op at init), ``gaussian``, or the weight-dependent ``pissa``, ``pissa_niter_<k>`` and ``olora``
(`lora_lab.adapters.pissa`), which write the residual ``W - s B0 A0`` into the base weight and keep
``(A0, B0)`` as buffers. Adapter weights stay in fp32 whatever the base dtype; under autocast
the matmuls run in the autocast dtype. Notes: docs/algorithms/lora.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lora_lab.adapters.base import AdapterLayer
from lora_lab.adapters.calibration import calibrated_init_names, needs_calibration
from lora_lab.adapters.config import AdapterConfig, check_bool, check_positive_int, check_positive_number
from lora_lab.adapters.init import LORA_FAMILY, apply_init, check_init_config, init_mutates_base
from lora_lab.adapters.method import AdapterMethod, register_method
from lora_lab.errors import ConfigError


#: calibration batches a data-driven init reads unless ``adapter.init_batches`` says otherwise
DEFAULT_INIT_BATCHES = 8


class LoraLayer(AdapterLayer):
    """One frozen linear map plus a rank-``r`` update ``s * B A``."""

    adapter_parameter_names = ("lora_A", "lora_B")

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0, rslora: bool = False, init: str = "kaiming"):
        super().__init__(base_layer)
        self.r, self.alpha, self.rslora, self.init = r, float(alpha), rslora, init
        self.scaling = self.alpha / (r**0.5) if rslora else self.alpha / r
        device = base_layer.weight.device
        self.lora_A = nn.Parameter(torch.zeros(r, self.in_features, device=device, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, device=device, dtype=torch.float32))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # instance attribute shadows the class default: PiSSA/OLoRA inits write a residual base
        self.mutates_base = init_mutates_base(init)
        if self.mutates_base:
            # the initial pair (A0, B0) with W = W_res + s B0 A0: saved with the adapter so that it can be
            # exported as plain LoRA of rank 2r on the original base (`lora_lab.adapters.peft_export`)
            self.register_buffer("lora_A0", torch.zeros_like(self.lora_A))
            self.register_buffer("lora_B0", torch.zeros_like(self.lora_B))
            self.adapter_buffer_names = ("lora_A0", "lora_B0")
            self.frozen_buffer_names = ("lora_A0", "lora_B0")  # constant: saved once, never broadcast by DDP

    def reset_from_base(self) -> None:
        apply_init(self, self.init)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    def lora_output(self, x: torch.Tensor) -> torch.Tensor:
        """``s * B A x`` for an already dropped-out input, in the adapter's compute dtype."""
        return F.linear(F.linear(x.to(self.lora_A.dtype), self.lora_A), self.lora_B) * self.scaling

    def add_lora_output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``y + s * B A x`` for an already dropped-out input. When ``y`` has the adapter's dtype (fp32,
        no autocast) the scale and the sum are fused into one ``addmm``; otherwise as `lora_output`."""
        h = F.linear(x.to(self.lora_A.dtype), self.lora_A)
        if y.dtype == h.dtype and y.shape[:-1] == h.shape[:-1]:
            flat = torch.addmm(y.reshape(-1, y.shape[-1]), h.reshape(-1, self.r), self.lora_B.T, alpha=self.scaling)
            return flat.view(y.shape)
        return y + (F.linear(h, self.lora_B) * self.scaling).to(y.dtype)

    def adapter_forward(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        return self.add_lora_output(base_out, self.dropout(x))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", r={self.r}, alpha={self.alpha}, scaling={self.scaling:.4g}, init={self.init}"


@dataclass
class LoraConfig(AdapterConfig):
    """LoRA knobs: the shared ones plus ``r``, ``alpha`` and ``rslora``; ``s = alpha / r``
    (``alpha / sqrt(r)`` with ``rslora``). ``init_batches``: how many training batches the data-driven
    inits (``eva``, ``corda``, ``corda_kpm``, ``lora_ga``; `lora_lab.adapters.calibration`) read (set for
    another init, an error); not in ``conf/adapter/*.yaml`` (so it is no part of the identity of runs
    that do not set it): set it with ``+adapter.init_batches=16``."""

    method: str = "lora"
    init: str = "kaiming"
    r: int = 8
    alpha: float = 8.0
    rslora: bool = False
    init_batches: int = DEFAULT_INIT_BATCHES

    init_family: ClassVar[str] = LORA_FAMILY

    def validate(self) -> None:
        check_positive_int("r", self.r)
        check_positive_number("alpha", self.alpha)
        check_bool("rslora", self.rslora)
        check_positive_int("init_batches", self.init_batches)
        super().validate()
        check_init_config(self)
        if self.init_batches != DEFAULT_INIT_BATCHES and not needs_calibration(self.init):
            raise ConfigError("adapter.init_batches", f"is read only by the data-driven inits ({', '.join(calibrated_init_names())}); "
                              f"init {self.init!r} reads no calibration batches")

    @property
    def scaling(self) -> float:
        return self.alpha / (self.r**0.5) if self.rslora else self.alpha / self.r


@register_method
class LoraMethod(AdapterMethod):
    name = "lora"
    display_name = "LoRA"
    table_order = 0
    named_inits = {"pissa": "PiSSA", "olora": "OLoRA"}
    update_is_scaled_ba = True
    config_cls = LoraConfig
    examples = ({"r": 4, "alpha": 8}, {"r": 4, "alpha": 8, "rslora": True})

    def make_layer(self, base_layer: nn.Module, module_name: str) -> LoraLayer:
        c = self.config
        return LoraLayer(base_layer, r=c.r, alpha=c.alpha, dropout=c.dropout, rslora=c.rslora, init=c.init)

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        """``sum r (in + out)``: A is ``[r, in]``, B is ``[out, r]``."""
        return sum(self.config.r * (i + o) for i, o in shapes.values())
