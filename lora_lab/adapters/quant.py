"""Quantised frozen bases through bitsandbytes: QLoRA and QPiSSA for every adapter method.

QLoRA (Dettmers et al. 2023, arXiv 2305.14314, sections 3-4): the frozen base weight is stored as
``Q(W)`` (4-bit NormalFloat ``nf4`` or ``fp4`` in blocks of 64 with an fp32 absmax per block, the
absmaxes themselves 8-bit quantised with *double quantisation*; or LLM.int8's row-wise ``int8``) and
the adapter, kept in fp32, trains on top of the dequantised weight:

    h = deq(Q(W)) x + b + adapter(x)              (deq in the compute dtype)

QPiSSA (Meng et al. 2024, arXiv 2404.02948, section 4.4): the SVD (or OLoRA's QR) runs on the
full-precision ``W``; only the residual is quantised, so the principal part ``s B0 A0`` is carried
exactly and the quantisation error is that of the smaller residual:

    QLoRA error   e_Q  = ||W - deq(Q(W))||_F / ||W||_F
    QPiSSA error  e_QP = ||W - (deq(Q(W_res)) + s B0 A0)||_F / ||W||_F,   W_res = W - s B0 A0

`quantize_base` therefore runs *after* the adapter is attached and initialised on the full-precision
model (which is also what gives DoRA the norm of the dequantised weight: ``on_base_quantized``
re-derives its magnitude from ``deq(Q(W))`` so that the model is unchanged at init). It replaces every
``nn.Linear`` outside the heads and the output embeddings with a ``bitsandbytes`` ``Linear4bit`` /
``Linear8bitLt`` holding the same quantised weights that ``transformers``' ``BitsAndBytesConfig``
(`bnb_config`) produces when loading the same checkpoint, so a PEFT export loads onto a base quantised
by ``transformers`` and gives our logits.

Inits that pick the quantised base together with the adapter (LoftQ, `lora_lab.adapters.loftq`)
register with `register_quant_aware_init` and run in place of the plain quantisation.

Merging into a quantised base would re-quantise ``W + dW`` (lossy): `merge_refusal` is the error.
A PiSSA/OLoRA residual on a quantised base is saved dequantised (fp32) and re-quantised on load
(exactly the same codes without double quantisation; within ~1e-5 of the absmax with it).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lora_lab.errors import ConfigError

QUANT_TYPES = ("nf4", "fp4", "int8")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
BNB_VERSION = "0.50.2"  # the version tests run with (.ci/constraints.txt)
_PARAM_CLASSES = ("Params4bit", "Int8Params")


@dataclass
class QuantConfig:
    """``backbone.quantize`` and its knobs (`lora_lab.models.backbones.BackboneConfig`)."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "float32"
    blocksize: int = 64

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_quant_config(quantize, double_quant, compute_dtype) -> QuantConfig | None:
    """Validate the backbone's quantisation keys (and that bitsandbytes runs here); None when off."""
    if quantize is None:
        return None
    if quantize not in QUANT_TYPES:
        raise ConfigError("backbone.quantize", f"{quantize!r}; allowed: null, {', '.join(QUANT_TYPES)}")
    if not isinstance(double_quant, bool):
        raise ConfigError("backbone.double_quant", f"{double_quant!r}; allowed: true, false")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError("backbone.compute_dtype", f"{compute_dtype!r}; allowed: {', '.join(COMPUTE_DTYPES)}")
    bitsandbytes(quantize)
    return QuantConfig(quantize, double_quant, compute_dtype)


def bitsandbytes(quantize: str = "nf4"):
    """The ``bitsandbytes`` module, or a `ConfigError` saying why a quantised base cannot run here."""
    try:
        import bitsandbytes as bnb
    except Exception as err:  # ImportError, or a broken native library raising at import
        raise ConfigError(
            "backbone.quantize", f"{quantize!r} needs bitsandbytes, which cannot run here ({type(err).__name__}: {err}); "
            f"pip install bitsandbytes=={BNB_VERSION}, or set backbone.quantize=null",
        ) from None
    return bnb


def is_quantized(module: nn.Module) -> bool:
    """True for a bitsandbytes linear layer (checked by its weight class: bitsandbytes is not imported)."""
    return type(getattr(module, "weight", None)).__name__ in _PARAM_CLASSES


def quant_type_of(module: nn.Module) -> str:
    w = module.weight
    return "int8" if type(w).__name__ == "Int8Params" else w.quant_type


def dequantized_weight(module: nn.Module) -> torch.Tensor:
    """``deq(Q(W))`` of a bitsandbytes linear layer as fp32 ``[out, in]`` (no graph)."""
    w = module.weight
    with torch.no_grad():
        if type(w).__name__ == "Int8Params":
            scb = w.SCB if w.SCB is not None else module.state.SCB  # bitsandbytes moves it after a forward
            return w.data.float() * (scb.float()[:, None] / 127.0)
        from bitsandbytes.functional import dequantize_4bit

        return dequantize_4bit(w.data, w.quant_state).float()


def merge_refusal(module: nn.Module) -> str:
    return (
        f"cannot merge into a quantised ({quant_type_of(module)}) base layer: W + dW would have to be re-quantised, "
        "which loses most of the update (lossy); keep the adapter separate (export it), or merge into the "
        "full-precision base (lora-lab merge-adapters rebuilds it from the original weights)"
    )


def _quantized_param(weight_out_in: torch.Tensor, cfg: QuantConfig):
    bnb = bitsandbytes(cfg.quant_type)
    data = weight_out_in.detach().float().contiguous().clone()
    if cfg.quant_type == "int8":  # Int8Params quantises only when moved off the CPU-side copy
        param = bnb.nn.Int8Params(data.cpu(), requires_grad=False, has_fp16_weights=False)
    else:
        param = bnb.nn.Params4bit(
            data, requires_grad=False, quant_type=cfg.quant_type, compress_statistics=cfg.double_quant, blocksize=cfg.blocksize
        )
    return param.to(weight_out_in.device)  # bitsandbytes quantises when the parameter is moved


def quantize_linear(linear: nn.Linear, cfg: QuantConfig, weight_out_in: torch.Tensor | None = None) -> nn.Module:
    """A bitsandbytes layer holding ``Q(weight_out_in)`` (default: the layer's weight) and its bias."""
    bnb = bitsandbytes(cfg.quant_type)
    weight = linear.weight if weight_out_in is None else weight_out_in
    bias = linear.bias is not None
    if cfg.quant_type == "int8":
        # LLM.int8 casts fp32/bf16 inputs to fp16 for its int8 matmul and logs that at *every* call
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias, has_fp16_weights=False, threshold=0.0)
    else:
        layer = bnb.nn.Linear4bit(
            linear.in_features, linear.out_features, bias=bias, compute_dtype=getattr(torch, cfg.compute_dtype),
            compress_statistics=cfg.double_quant, quant_type=cfg.quant_type,
        )
    layer.weight = _quantized_param(weight, cfg)
    keep_cpu_layout(layer)
    if bias:
        layer.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    return layer.train(linear.training)


def keep_cpu_layout(model: nn.Module) -> nn.Module:
    """Switch off bitsandbytes' CPU repacking of 4-bit weights (on CPUs with AVX512-BF16, in eval mode
    without grad it rewrites the weight in place into another layout with *bf16* block absmaxes): eval
    logits would differ from train-mode ones and from a GPU's, and layers narrower than a block fail.
    Applies to every ``Linear4bit`` in ``model`` (e.g. one loaded with `bnb_config`); returns ``model``."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


@torch.no_grad()
def requantize_(module: nn.Module, weight_out_in: torch.Tensor) -> None:
    """Replace the quantised weight of a bitsandbytes layer by ``Q(weight_out_in)`` (same settings)."""
    w = module.weight
    if type(w).__name__ == "Int8Params":
        cfg = QuantConfig("int8")
        module.state.SCB, module.state.CB = None, None
    else:
        cfg = QuantConfig(w.quant_type, bool(w.compress_statistics), blocksize=w.blocksize)
    module.weight = _quantized_param(weight_out_in.to(w.device), cfg)


def bnb_config(cfg: QuantConfig, skip: list[str] = ("lm_head",)):
    """The ``transformers.BitsAndBytesConfig`` that quantises a checkpoint to the same weights as
    `quantize_base`; ``skip``: the modules it keeps in full precision (the heads and the output
    embeddings, e.g. ``["classifier"]`` or ``["lm_head"]``)."""
    from transformers import BitsAndBytesConfig

    if cfg.quant_type == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip))
    return BitsAndBytesConfig(
        load_in_4bit=True, llm_int8_skip_modules=list(skip), bnb_4bit_quant_type=cfg.quant_type, bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, cfg.compute_dtype),
    )


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
    from lora_lab.adapters.base import AdapterLayer

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
        if param.dtype in (torch.float16, torch.bfloat16) and type(param).__name__ not in _PARAM_CLASSES:
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
