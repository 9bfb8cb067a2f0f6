"""The weight-independent inits of the LoRA family's ``(A, B)`` pair, and how a layer applies its init.

``A: [r, in]`` (applied first), ``B: [out, r]``; the adapter adds ``s * B A`` (docs/algorithms/lora.md).

- ``kaiming`` (default; LoRA paper code, PEFT ``init_lora_weights=True``): A ~ kaiming-uniform with
  ``a = sqrt(5)``, i.e. ``U(-1/sqrt(in), 1/sqrt(in))``; B = 0, so the adapter starts as a no-op.
- ``gaussian`` (PEFT ``"gaussian"``): A ~ N(0, (1/r)^2) -- std 1/r, not 1/sqrt(r); B = 0.

Inits that depend on the pretrained weight (``pissa``, ``pissa_niter_<k>``, ``olora``) live in
`lora_lab.adapters.pissa` (``loftq_<T>``, for quantised bases, in `lora_lab.adapters.loftq`) and register
with ``mutates_base=True``: they write the residual ``W - s B A`` into the base weight, and `LoraLayer`
derives its ``mutates_base`` from the init. Every init is registered in `lora_lab.adapters.registry`
(``register_init(name, families=...)``), which also computes the inits a method accepts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lora_lab.adapters.registry import find_any_init, find_init, get_init, register_init

#: the init family of `LoraLayer` and its subclasses (methods ``lora``, ``loraplus``, ``dora``)
LORA_FAMILY = "lora"


def init_display_name(name: str) -> str:
    """How tables print the init ``name`` (``pissa_niter_4`` -> PiSSA); unregistered names as given."""
    spec = find_any_init(name)
    return (spec.display or spec.name) if spec is not None and spec.display else name


def init_mutates_base(name: str, family: str = LORA_FAMILY) -> bool:
    spec = find_init(name, family)
    return spec is not None and spec.mutates_base


def apply_init(layer: nn.Module, name: str, family: str = LORA_FAMILY) -> None:
    """Run the init ``name`` of ``family`` on ``layer`` (a one-line error for an unregistered one)."""
    get_init(name, family).fn(layer, name)


@register_init("kaiming", families=(LORA_FAMILY,))
@torch.no_grad()
def kaiming_init(layer: nn.Module, name: str) -> None:
    nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))
    nn.init.zeros_(layer.lora_B)


@register_init("gaussian", families=(LORA_FAMILY,))
@torch.no_grad()
def gaussian_init(layer: nn.Module, name: str) -> None:
    nn.init.normal_(layer.lora_A, mean=0.0, std=1.0 / layer.r)
    nn.init.zeros_(layer.lora_B)
