"""Initialisations of the LoRA family's ``(A, B)`` pair, registered by name.

``A: [r, in]`` (applied first), ``B: [out, r]``; the adapter adds ``s * B A`` (docs/algorithms/lora.md).

- ``kaiming`` (default; LoRA paper code, PEFT ``init_lora_weights=True``): A ~ kaiming-uniform with
  ``a = sqrt(5)``, i.e. ``U(-1/sqrt(in), 1/sqrt(in))``; B = 0, so the adapter starts as a no-op.
- ``gaussian`` (PEFT ``"gaussian"``): A ~ N(0, (1/r)^2) -- std 1/r, not 1/sqrt(r); B = 0.

Inits that depend on the pretrained weight (``pissa``, ``pissa_niter_<k>``, ``olora``) live in
`lora_lab.adapters.pissa` (``loftq_<T>``, for quantised bases, in `lora_lab.adapters.loftq`; ``milora``
in `lora_lab.adapters.milora`) and register with ``mutates_base=True``: they write the residual
``W - s B A`` into the base weight, and `LoraLayer` derives its ``mutates_base`` from the init name.
``orthogonal`` (`lora_lab.adapters.orthogonal`) is random like ``kaiming``. The data-driven inits
(``eva``, ``corda``, ``corda_kpm``, ``lora_ga``) also register a calibrator
(`lora_lab.adapters.calibration`) that reads calibration batches once the adapter is attached.

An init may also register a config check (`register_init_check`): a constraint on the method's knobs
(``orthogonal`` needs an even ``r``) reported as one config error before anything runs.

An init is a function ``fn(layer, name) -> None`` that fills ``layer.lora_A`` / ``layer.lora_B``.
Names ending in ``*`` in the registry are prefixes (``pissa_niter_*`` takes ``pissa_niter_4``). Which
inits a method accepts is declared by the method's schema (``inits``, `lora_lab.adapters.config`).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from lora_lab.adapters.config import init_matches
from lora_lab.errors import ConfigError

InitFn = Callable[[nn.Module, str], None]
#: the inits of the LoRA family (``lora``, ``dora``); the weight-dependent ones live in `lora_lab.adapters.pissa`
LORA_FAMILY_INITS: tuple[str, ...] = ("kaiming", "gaussian", "pissa", "pissa_niter_*", "olora", "loftq_*", "orthogonal", "milora",
                                      "eva", "corda", "corda_kpm", "lora_ga")
_INITS: dict[str, InitFn] = {}
#: inits that write a residual into the base weight
MUTATING_INITS: set[str] = set()
#: registered init (name or pattern) -> its display name in tables
INIT_DISPLAY_NAMES: dict[str, str] = {}
#: registered init (name or pattern) -> a check of the method config it is used with
INIT_CONFIG_CHECKS: dict[str, Callable[[object], None]] = {}
#: registered init (name or pattern) -> how many singular directions per unit of rank it factorises
#: (default 1; LoRA-GA takes 2r directions of its gradient): `factorised_rank`
INIT_RANK_FACTORS: dict[str, int] = {}


def register_init(name: str, mutates_base: bool = False, display: str | None = None) -> Callable[[InitFn], InitFn]:
    """Register ``fn`` as the init ``name`` (a name or a ``prefix*`` pattern); ``display`` is how tables
    print it (default: the name)."""

    def wrap(fn: InitFn) -> InitFn:
        _INITS[name] = fn
        if mutates_base:
            MUTATING_INITS.add(name)
        if display:
            INIT_DISPLAY_NAMES[name] = display
        return fn

    return wrap


def register_init_check(name: str) -> Callable[[Callable[[object], None]], Callable[[object], None]]:
    """Register ``check(config)`` for the init ``name``: it raises `ConfigError` for knobs the init cannot
    work with; `check_init_config` runs it when the config is validated."""

    def wrap(check: Callable[[object], None]) -> Callable[[object], None]:
        INIT_CONFIG_CHECKS[name] = check
        return check

    return wrap


def check_init_config(config) -> None:
    """Run the config check of ``config.init``, if its init registered one."""
    check = INIT_CONFIG_CHECKS.get(_lookup(config.init) or "")
    if check is not None:
        check(config)


def factorised_rank(init: str, r: int) -> int:
    """How many directions of a ``[out, in]`` matrix the init ``init`` factorises at rank ``r`` (must
    not exceed ``min(in, out)``)."""
    return r * INIT_RANK_FACTORS.get(_lookup(init) or "", 1)


def _lookup(name: str) -> str | None:
    return next((key for key in _INITS if init_matches(name, key)), None)


def init_display_name(name: str) -> str:
    """How tables print the init ``name`` (``pissa_niter_4`` -> PiSSA); unregistered names as given."""
    return INIT_DISPLAY_NAMES.get(_lookup(name) or name, name)


def init_names() -> list[str]:
    return sorted(_INITS)


def init_mutates_base(name: str) -> bool:
    return _lookup(name) in MUTATING_INITS


def apply_init(layer: nn.Module, name: str) -> None:
    key = _lookup(name)
    if key is None:
        raise ConfigError("adapter.init", f"unknown init {name!r}; allowed: {', '.join(init_names())}")
    _INITS[key](layer, name)


@register_init("kaiming")
@torch.no_grad()
def kaiming_init(layer: nn.Module, name: str) -> None:
    nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))
    nn.init.zeros_(layer.lora_B)


@register_init("gaussian")
@torch.no_grad()
def gaussian_init(layer: nn.Module, name: str) -> None:
    nn.init.normal_(layer.lora_A, mean=0.0, std=1.0 / layer.r)
    nn.init.zeros_(layer.lora_B)
