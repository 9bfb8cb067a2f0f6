"""VeRA: vector-based random matrix adaptation (Kopiczko et al., ICLR 2024, arXiv 2310.11454, section 3).

One pair of random matrices is drawn once and shared, frozen, by every adapted layer; each layer trains
only two scaling vectors (the method of section 3):

    h = W0 x + b0 + Lambda_b B Lambda_d A dropout(x),     Lambda_b = diag(lambda_b), Lambda_d = diag(lambda_d)

``A: [r, in_max]`` and ``B: [out_max, r]`` are sized by the largest adapted input and output and each
layer uses the slices ``A[:, :in]``, ``B[:out, :]`` (as PEFT does); ``lambda_d: [r]``, ``lambda_b: [out]``
(``vera_lambda_d``, ``vera_lambda_b``). Init (``init: kaiming``, the only one): ``A`` and ``B``
kaiming-uniform (bound ``sqrt(6 / fan_in)``) from a CPU generator seeded with
``projection_prng_key``, ``lambda_d = d_initial`` (0.1), ``lambda_b = 0``, so the adapted model equals
the base at init. ``ΔW = (lambda_b * B) (lambda_d * A)``; there is no ``alpha``. Trainable parameters
per layer: ``r + out``.

The projections live in one `VeraProjections` module registered under every layer (one object, so a
``.to(device)`` keeps it shared); they are method state (``state_dict``), saved with the adapter, so a
reload never depends on regenerating them. Numerics, slicing and the projection generator equal PEFT
0.21 ``VeraModel`` with ``save_projection=True``; the PEFT export writes ``base_model.vera_A`` /
``base_model.vera_B`` and the per-layer ``vera_lambda_*`` vectors. See docs/algorithms/vera.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lora_lab.adapters.base import AdapterLayer, in_out_features
from lora_lab.adapters.config import AdapterConfig, check_positive_int, is_int, is_number
from lora_lab.adapters.export_registry import PEFT_PREFIX, register_peft_exporter, saved_tensor
from lora_lab.adapters.io import METHOD_STATE_PREFIX
from lora_lab.adapters.method import AdapterMethod, register_method
from lora_lab.adapters.registry import get_init, register_init
from lora_lab.errors import ConfigError


def kaiming_uniform(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``U(-b, b)`` with ``b = sqrt(3) * sqrt(2) / sqrt(fan_in)``, ``fan_in = shape[1]`` (PEFT's VeRA init)."""
    bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(shape[1])
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


class VeraProjections(nn.Module):
    """The shared frozen pair: ``vera_A: [r, in_max]``, ``vera_B: [out_max, r]``."""

    def __init__(self, r: int, in_max: int, out_max: int, seed: int, device=None):
        super().__init__()
        generator = torch.Generator(device="cpu").manual_seed(seed)
        self.register_buffer("vera_A", kaiming_uniform((r, in_max), generator).to(device))
        self.register_buffer("vera_B", kaiming_uniform((out_max, r), generator).to(device))


VERA_FAMILY = "vera"
VERA_INIT = "kaiming"  # the shared projections are kaiming-uniform (`VeraProjections`)


@register_init(VERA_INIT, families=(VERA_FAMILY,))
@torch.no_grad()
def vera_init(layer: nn.Module, name: str) -> None:
    """PEFT's VeRA init of the scaling vectors: ``lambda_d = d_initial``, ``lambda_b = 0`` (a no-op at init)."""
    layer.vera_lambda_d.fill_(layer.d_initial)
    layer.vera_lambda_b.zero_()


class VeraLayer(AdapterLayer):
    """One frozen linear map plus ``lambda_b * (B[:out] (lambda_d * (A[:, :in] x)))``."""

    adapter_parameter_names = ("vera_lambda_d", "vera_lambda_b")

    def __init__(self, base_layer: nn.Module, projections: VeraProjections, d_initial: float = 0.1, dropout: float = 0.0):
        super().__init__(base_layer)
        self.projections = projections
        self.r = int(projections.vera_A.shape[0])
        self.d_initial = float(d_initial)
        device = base_layer.weight.device
        self.vera_lambda_d = nn.Parameter(torch.zeros(self.r, device=device, dtype=torch.float32))
        self.vera_lambda_b = nn.Parameter(torch.zeros(self.out_features, device=device, dtype=torch.float32))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def reset_from_base(self) -> None:
        get_init(VERA_INIT, VERA_FAMILY).fn(self, VERA_INIT)

    def sliced_projections(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A[:, :in], B[:out, :])`` of the shared pair."""
        return self.projections.vera_A[:, : self.in_features], self.projections.vera_B[: self.out_features, :]

    def delta_weight(self) -> torch.Tensor:
        a, b = self.sliced_projections()
        return (self.vera_lambda_b[:, None] * b.float()) @ (self.vera_lambda_d[:, None] * a.float())

    def adapter_forward(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        a, b = self.sliced_projections()
        x = self.dropout(x.to(self.vera_lambda_d.dtype))
        update = self.vera_lambda_b * F.linear(self.vera_lambda_d * F.linear(x, a), b)
        return (base_out + update).to(base_out.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", r={self.r}, d_initial={self.d_initial}"


@dataclass
class VeraConfig(AdapterConfig):
    """VeRA knobs; defaults follow PEFT's ``VeraConfig`` (``r = 256``, ``d_initial = 0.1``,
    ``projection_prng_key = 0``). ``r`` is the rank of the shared projections."""

    method: str = "vera"
    init: str = VERA_INIT
    r: int = 256
    d_initial: float = 0.1
    projection_prng_key: int = 0

    def validate(self) -> None:
        check_positive_int("r", self.r)
        if not is_number(self.d_initial):
            raise ConfigError("adapter.d_initial", f"must be a number, got {self.d_initial!r}")
        if not is_int(self.projection_prng_key) or self.projection_prng_key < 0:
            raise ConfigError("adapter.projection_prng_key", f"must be an integer >= 0, got {self.projection_prng_key!r}")
        super().validate()


@register_method
class VeraMethod(AdapterMethod):
    name = "vera"
    display_name = "VeRA"
    table_order = 6
    config_cls = VeraConfig
    examples = ({"r": 8, "d_initial": 0.1},)

    def __init__(self, config: VeraConfig):
        super().__init__(config)
        self.projections: VeraProjections | None = None

    def before_attach(self, modules: dict[str, nn.Module]) -> None:
        shapes = [in_out_features(m) for m in modules.values()]
        device = next(iter(modules.values())).weight.device
        c = self.config
        self.projections = VeraProjections(c.r, max(i for i, _ in shapes), max(o for _, o in shapes), c.projection_prng_key, device)

    def make_layer(self, base_layer: nn.Module, module_name: str) -> VeraLayer:
        return VeraLayer(base_layer, self.projections, d_initial=self.config.d_initial, dropout=self.config.dropout)

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        """``sum (r + out)``: ``lambda_d: [r]`` and ``lambda_b: [out]``; the shared A, B are frozen."""
        return sum(self.config.r + o for _, o in shapes.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.projections is None else {"vera_A": self.projections.vera_A, "vera_B": self.projections.vera_B}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"vera_A", "vera_B"} or self.projections is None:
            raise KeyError(f"VeRA method state must be exactly vera_A, vera_B of an attached method, got {sorted(state)}")
        for key, value in state.items():
            target = getattr(self.projections, key)
            if tuple(value.shape) != tuple(target.shape):
                raise KeyError(f"VeRA {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
            target.copy_(value.to(device=target.device, dtype=target.dtype))


@register_peft_exporter("vera")
def export_vera(meta: dict, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """PEFT ``VeraConfig`` fields (``save_projection=True``) and tensors: the shared projections under
    ``base_model.vera_A`` / ``base_model.vera_B``, the vectors per module."""
    cfg = meta["adapter"]
    out = {f"base_model.{key}": tensors[METHOD_STATE_PREFIX + key] for key in ("vera_A", "vera_B")}
    for module in meta["adapted_modules"]:
        for key in VeraLayer.adapter_parameter_names:
            out[f"{PEFT_PREFIX}{module}.{key}"] = saved_tensor(tensors, module, key)
    fields = {
        "peft_type": "VERA",
        "r": int(cfg["r"]),
        "projection_prng_key": int(cfg["projection_prng_key"]),
        "save_projection": True,
        "vera_dropout": float(cfg.get("dropout", 0.0)),
        "d_initial": float(cfg["d_initial"]),
        "init_weights": True,
    }
    return fields, out
