"""The weight-independent inits of the LoRA family's ``(A, B)`` pair, and how a layer applies its init.

``A: [r, in]`` (applied first), ``B: [out, r]``; the adapter adds ``s * B A`` (docs/algorithms/lora.md).

- ``kaiming`` (default; LoRA paper code, PEFT ``init_lora_weights=True``): A ~ kaiming-uniform with
  ``a = sqrt(5)``, i.e. ``U(-1/sqrt(in), 1/sqrt(in))``; B = 0, so the adapter starts as a no-op.
- ``gaussian`` (PEFT ``"gaussian"``): A ~ N(0, (1/r)^2) -- std 1/r, not 1/sqrt(r); B = 0.

Inits that depend on the pretrained weight (``pissa``, ``pissa_niter_<k>``, ``olora``) live in
`lora_lab.adapters.pissa` (``loftq_<T>``, for quantised bases, in `lora_lab.adapters.loftq`) and register
with ``mutates_base=True``: they write the residual ``W - s B A`` into the base weight, and `LoraLayer`
derives its ``mutates_base`` from the init. Every init is registered in `lora_lab.adapters.registry`
(``register_init(name, families=...)``), which also computes the inits a method accepts. Further inits
of the family, one file each: ``orthogonal``, ``milora``, and the data-driven ``eva``, ``corda`` /
``corda_kpm`` and ``lora_ga`` (which also register a calibrator, `lora_lab.adapters.calibration`).

An init of the family may also declare a constraint on the method's knobs (`register_init_check`:
``orthogonal`` needs an even ``r``), reported as one config error when the config is validated, and
how many singular directions per unit of rank it factorises (`INIT_RANK_FACTORS`: LoRA-GA takes
``2r``), which the up-front shape check (`lora_lab.config.backbone_fit`) reads.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from lora_lab.adapters.registry import find_any_init, find_init, get_init, register_init

#: the init family of `LoraLayer` and its subclasses (methods ``lora``, ``loraplus``, ``dora``)
LORA_FAMILY = "lora"


#: init (name or pattern) -> a check of the method config it is used with (`check_init_config`)
INIT_CONFIG_CHECKS: dict[str, Callable[[object], None]] = {}
#: init (name or pattern) -> singular directions per unit of rank it factorises (default 1: `factorised_rank`)
INIT_RANK_FACTORS: dict[str, int] = {}


def register_init_check(name: str) -> Callable[[Callable[[object], None]], Callable[[object], None]]:
    """Register ``check(config)`` for the init ``name``: it raises `ConfigError` for knobs the init cannot
    work with; `check_init_config` runs it when a LoRA-family config is validated."""

    def wrap(check: Callable[[object], None]) -> Callable[[object], None]:
        INIT_CONFIG_CHECKS[name] = check
        return check

    return wrap


def check_init_config(config) -> None:
    """Run the config check of ``config.init``, if its init registered one."""
    spec = find_init(config.init, LORA_FAMILY)
    check = INIT_CONFIG_CHECKS.get(spec.name) if spec is not None else None
    if check is not None:
        check(config)


def factorised_rank(init: str, r: int) -> int:
    """How many directions of a ``[out, in]`` matrix the init ``init`` factorises at rank ``r`` (must not
    exceed ``min(in, out)``): ``r``, or ``2r`` for LoRA-GA."""
    spec = find_init(init, LORA_FAMILY)
    return r * INIT_RANK_FACTORS.get(spec.name if spec is not None else "", 1)


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
