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

`lora_lab.adapters.quant_model.quantize_base` therefore runs *after* the adapter is attached and initialised on the full-precision
model (which is also what gives DoRA the norm of the dequantised weight: ``on_base_quantized``
re-derives its magnitude from ``deq(Q(W))`` so that the model is unchanged at init). It replaces every
``nn.Linear`` outside the heads and the output embeddings with a ``bitsandbytes`` ``Linear4bit`` /
``Linear8bitLt`` holding the same quantised weights that ``transformers``' ``BitsAndBytesConfig``
(`bnb_config`) produces when loading the same checkpoint, so a PEFT export loads onto a base quantised
by ``transformers`` and gives our logits.

This module holds the layer-level pieces (quantise one linear, dequantise, re-quantise, refuse a
merge); `lora_lab.adapters.quant_model` quantises a whole model under its adapters.

Merging into a quantised base would re-quantise ``W + dW`` (lossy): `merge_refusal` is the error.
A PiSSA/OLoRA residual on a quantised base is saved in its stored form (`quantized_state`: the packed
4-bit codes with bitsandbytes' own serialised ``QuantState`` -- block absmaxes, code book, and with double
quantisation the 8-bit absmaxes, their code book and offset --, or LLM.int8's ``CB``/``SCB``) beside its
dequantised fp32 matrix, and restored from it bit for bit (`load_quantized_state_`). Re-quantising the
dequantised matrix instead is *not* exact with double quantisation: ``deq(Q(W_res))`` has new block absmaxes
``c_max * deq8(absmax)``, and their second 8-bit quantisation rounds differently, so every weight of a block
moves by up to ``|c| * (deq8 step)``, i.e. ~1e-4 relative (how the rounding falls depends on the CPU's
arithmetic paths); `requantize_` remains only for adapters saved before the stored form was kept.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn

from lora_lab.errors import ConfigError

QUANT_TYPES = ("nf4", "fp4", "int8")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
BNB_VERSION = "0.50.2"  # the version tests run with (.ci/constraints.txt)
PARAM_CLASSES = ("Params4bit", "Int8Params")  # bitsandbytes' quantised parameter types


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
    return type(getattr(module, "weight", None)).__name__ in PARAM_CLASSES


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


def quantized_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The stored form of a bitsandbytes layer's weight, exactly (tensors only, for safetensors): 4-bit:
    ``data`` (packed codes) and ``QuantState.as_dict(packed=True)``; int8: ``CB`` and ``SCB``."""
    w = module.weight
    if type(w).__name__ == "Int8Params":
        scb = w.SCB if w.SCB is not None else module.state.SCB
        return {"CB": w.data, "SCB": scb}
    return {"data": w.data, **w.quant_state.as_dict(packed=True)}


@torch.no_grad()
def load_quantized_state_(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put a `quantized_state` back into a bitsandbytes layer of the same kind and shape, bit for bit."""
    bnb = bitsandbytes()
    device = module.weight.device
    if type(module.weight).__name__ == "Int8Params":
        cb, scb = state["CB"].to(device), state["SCB"].to(device)
        module.weight = bnb.nn.Int8Params(cb, requires_grad=False, has_fp16_weights=False, CB=cb, SCB=scb)
        module.state.SCB, module.state.CB = None, None
        return
    stats = {k: v for k, v in state.items() if k != "data"}
    module.weight = bnb.nn.Params4bit.from_prequantized(state["data"], stats, requires_grad=False, device=device, module=module)


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
