"""Pairs of identical tiny models, one with our adapter and one with HF PEFT's, for parity tests."""

from __future__ import annotations

import copy
import warnings

import torch

from lora_lab.adapters import build_method, parse_config

from tests.helpers import tiny_bert, tiny_gpt2

# model kind -> (builder, our targets / PEFT target_modules, head modules)
KINDS = {
    "bert": (tiny_bert, ["query", "value"], ["classifier"]),
    "gpt2": (tiny_gpt2, ["c_attn", "c_proj"], ["score"]),
}


def base_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny backbone whose head has unit-scale weights, so that logits are O(1) (HF inits heads with
    std 0.02, which would make every difference look small next to an absolute tolerance)."""
    model = KINDS[kind][0](seed=seed)
    with torch.no_grad():
        for head in KINDS[kind][2]:
            model.get_submodule(head).weight.normal_()
    return model


def ours_on(model: torch.nn.Module, kind: str, **adapter):
    """Attach our adapter (``adapter`` = raw config knobs) to ``model``; returns the method."""
    _, targets, heads = KINDS[kind]
    method = build_method(parse_config({"targets": targets, **adapter}))
    method.attach(model, model_type=kind, head_modules=heads)
    return method


def peft_on(model: torch.nn.Module, kind: str, **lora_config):
    """Wrap ``model`` with PEFT (task SEQ_CLS, same targets as `ours_on`)."""
    from peft import LoraConfig, get_peft_model

    _, targets, _ = KINDS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(model, LoraConfig(task_type="SEQ_CLS", target_modules=targets, **lora_config))


def peft_layer(peft_model, name: str):
    return peft_model.base_model.model.get_submodule(name)


@torch.no_grad()
def copy_peft_into_ours(peft_model, method) -> None:
    """Copy A, B (and DoRA's m) of every PEFT layer into ours."""
    for name, layer in method.layers.items():
        p = peft_layer(peft_model, name)
        layer.lora_A.copy_(p.lora_A["default"].weight)
        layer.lora_B.copy_(p.lora_B["default"].weight)
        if hasattr(layer, "magnitude"):
            layer.magnitude.copy_(p.lora_magnitude_vector["default"].weight)


def paired(kind: str, method: str = "lora", r: int = 4, alpha: float = 6.0, dropout: float = 0.0, seed: int = 0):
    """``(our_model, our_method, peft_model)`` on identical weights; PEFT's adapter is perturbed to look
    trained (B != 0, m != ||W0 + sBA||) and copied into ours."""
    base = base_model(kind, seed)
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    peft_model = peft_on(theirs, kind, r=r, lora_alpha=alpha, lora_dropout=dropout, use_dora=method == "dora")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in peft_model.modules():
            if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {}):
                module.lora_B["default"].weight.add_(torch.randn(module.lora_B["default"].weight.shape, generator=g))
                if "default" in module.lora_magnitude_vector:
                    mag = module.lora_magnitude_vector["default"].weight
                    mag.mul_(1.0 + 0.2 * torch.rand(mag.shape, generator=g))
    m = ours_on(ours, kind, method=method, r=r, alpha=alpha, dropout=dropout)
    copy_peft_into_ours(peft_model, m)
    return ours, m, peft_model
