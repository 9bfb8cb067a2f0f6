"""Quantising a model's frozen base under its attached adapters (QLoRA / QPiSSA), model level.

`quantize_base` runs *after* the adapter is attached and initialised on the full-precision model: the
SVD of PiSSA/OLoRA sees the full-precision ``W`` and only the residual is quantised (QPiSSA), and DoRA
re-derives its magnitude from the dequantised weight (``on_base_quantized``) so that the model is
unchanged at init. Every other ``nn.Linear`` outside the heads and the output embeddings is replaced by
its quantised layer (`lora_lab.adapters.quant.quantize_linear`). The errors recorded per adapted module
(equations in `lora_lab.adapters.quant`):

    qlora         e_Q  = ||W - deq(Q(W))||_F / ||W||_F
    adapter_init  e_QP = ||W - (deq(Q(W_res)) + s B0 A0)||_F / ||W||_F   (e_Q when the init is not weight-based)

Inits that choose the quantised base together with the adapter (LoftQ, `lora_lab.adapters.loftq`)
register with `register_quant_aware_init` and run in place of the plain quantisation.
`prepare_for_kbit_training` is QLoRA's preparation of the remaining parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lora_lab.adapters.base import AdapterLayer
from lora_lab.adapters.quant import PARAM_CLASSES, QuantConfig, dequantized_weight, is_quantized, quantize_linear


@dataclass
class QuantReport:
    """What `quantize_base` did, and the weight errors of the adapted modules (for result.json)."""

    config: QuantConfig
    quantized_modules: int = 0
    kept_full_precision: list[str] = field(default_factory=list)
    #: per adapted module: ``{"qlora": e_Q, "adapter_init": e_QP or e_Q}`` (see the module docstring)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)

    def mean_error(self, key: str) -> float | None:
        values = [e[key] for e in self.errors.values()]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        return {
            **self.config.to_dict(),
            "quantized_modules": self.quantized_modules,
            "kept_full_precision": list(self.kept_full_precision),
            "weight_error_qlora": self.mean_error("qlora"),
            "weight_error_with_adapter_init": self.mean_error("adapter_init"),
            "weight_error_per_module": {k: dict(v) for k, v in self.errors.items()},
        }


def _relative_error(original: torch.Tensor, approx: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(original - approx) / torch.linalg.matrix_norm(original))


#: init name prefix -> fn(layer, cfg) -> its quantised base, for inits that choose the quantised base
#: together with the adapter (`lora_lab.adapters.loftq`); they update the adapter's (A0, B0) themselves
QUANT_AWARE_INITS: dict[str, Callable[[nn.Module, QuantConfig], nn.Module]] = {}


def register_quant_aware_init(prefix: str):
    def wrap(fn):
        QUANT_AWARE_INITS[prefix] = fn
        return fn

    return wrap


def _original_weight(layer: nn.Module) -> torch.Tensor:
    """The full-precision ``W`` of an initialised layer: ``W_res + s B0 A0`` for a residual base."""
    stored = layer.base_layer.weight.detach().float()
    if not getattr(layer, "mutates_base", False):
        return stored
    return stored + layer.scaling * (layer.lora_B0 @ layer.lora_A0)


def _init_errors(layer: nn.Module, original: torch.Tensor, quantized: nn.Module, cfg: QuantConfig) -> dict[str, float]:
    """``e_Q`` of the original ``W`` and the error of the initialised adapter layer (``e_QP`` for a
    residual base: ``deq(Q(W_res)) + s B0 A0``; for other inits the adapter is 0 at init, so ``e_Q``)."""
    if not getattr(layer, "mutates_base", False):
        e = _relative_error(original, dequantized_weight(quantized))
        return {"qlora": e, "adapter_init": e}
    plain = quantize_linear(layer.base_layer, cfg, original)
    principal = layer.scaling * (layer.lora_B0 @ layer.lora_A0)
    return {
        "qlora": _relative_error(original, dequantized_weight(plain)),
        "adapter_init": _relative_error(original, dequantized_weight(quantized) + principal),
    }


def _quantize_adapter_base(layer: nn.Module, cfg: QuantConfig, initialize: bool) -> nn.Module:
    init = getattr(layer, "init", None) if initialize else None
    for prefix, fit in QUANT_AWARE_INITS.items():
        if isinstance(init, str) and init.startswith(prefix):
            return fit(layer, cfg)
    return quantize_linear(layer.base_layer, cfg)


def _skipped(model: nn.Module, skip: list[str]) -> set[str]:
    names = set(skip)
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names |= {n for n, m in model.named_modules() if out is not None and m is out}
    return names


@torch.no_grad()
def quantize_base(model: nn.Module, method, cfg: QuantConfig, skip: list[str] = (), initialize: bool = True) -> QuantReport:
    """Quantise every frozen ``nn.Linear`` of ``model`` (an adapter layer's ``base_layer`` included) but
    the ``skip`` modules (heads) and the output embeddings; with ``initialize`` the adapter layers'
    ``on_base_quantized`` runs and the errors of the module docstring are measured."""
    report = QuantReport(cfg)
    skipped = _skipped(model, list(skip))
    adapters = {n: m for n, m in model.named_modules() if isinstance(m, AdapterLayer)}
    for name, layer in adapters.items():
        if not isinstance(layer.base_layer, nn.Linear) or is_quantized(layer.base_layer):
            continue
        original = _original_weight(layer) if initialize else None
        quantized = _quantize_adapter_base(layer, cfg, initialize)
        if initialize:
            report.errors[name] = _init_errors(layer, original, quantized, cfg)
        layer.base_layer = quantized
        report.quantized_modules += 1
    for name, module in list(model.named_modules()):
        inside = [s for s in skipped if name == s or name.startswith(s + ".")]
        if type(module) is not nn.Linear:  # bitsandbytes layers subclass nn.Linear: already quantised
            continue
        if inside:
            report.kept_full_precision.append(name)
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, quantize_linear(module, cfg))
        report.quantized_modules += 1
    if initialize:
        for layer in adapters.values():
            layer.on_base_quantized()
    return report


def prepare_for_kbit_training(model: nn.Module, gradient_checkpointing: bool) -> None:
    """QLoRA's preparation (PEFT ``prepare_model_for_kbit_training``): every remaining fp16/bf16
    parameter (norms, embeddings, heads) in fp32, and with gradient checkpointing the embedding output
    requires grad, so that checkpointed blocks whose parameters are all frozen still backpropagate."""
    for param in model.parameters():
        if param.dtype in (torch.float16, torch.bfloat16) and type(param).__name__ not in PARAM_CLASSES:
            param.data = param.data.float()
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def quantize_for_training(model: nn.Module, method, backbone_cfg, heads: list[str], initialize: bool = True) -> dict | None:
    """Quantise ``model``'s base as ``backbone_cfg`` asks (after ``method`` was attached) and prepare it
    for k-bit training; returns the `QuantReport` as a dict, None for a full-precision base."""
    cfg = backbone_cfg.quant_config()
    if cfg is None:
        return None
    report = quantize_base(model, method, cfg, skip=heads, initialize=initialize)
    prepare_for_kbit_training(model, backbone_cfg.gradient_checkpointing)
    return report.to_dict()
