"""OmegaConf resolvers used by the configs (registered once by `register_resolvers`).

- ``adapter_tag`` -- run-directory part naming the adapter (`lora_lab.config.naming`).
- ``scale_lr:BASE,SCALE`` -- ``BASE * SCALE`` rounded to 6 significant digits, so the learning rate
  in a run name is concrete and readable (``lr0.00025``, never ``lr0.00025000000000000006``).
  ``conf/optim/adamw.yaml`` sets ``optim.lr`` to the method's own default (``method_lr``) times the
  nuisance multiplier ``lr_scale``.
- ``quant_tag:QUANTIZE`` -- ``""`` for a full-precision base, ``"-nf4"`` etc. for a quantised one (so a
  QLoRA run never shares a run directory with its full-precision twin).
- ``name_number:X`` -- a number in a run name, at most 4 significant digits (`lora_lab.config.naming.name_number`:
  ``lr0.000626_b25b`` never ``lr0.0006260326907499736``).
- ``ceil_mul:X,FACTOR`` -- ``ceil(X * FACTOR)`` as an int (AdaLoRA's ``init_r = 1.5 x target_r``).
- ``budget_rank:BUDGET,METHOD,TARGETS,EXCLUDE,BACKBONE`` -- the rank whose adapter parameter count
  is closest to BUDGET (`lora_lab.models.budget`).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache

from omegaconf import OmegaConf

from lora_lab.errors import ConfigError
from lora_lab.config.naming import adapter_tag, name_number
from lora_lab.models.budget import budget_rank


def scale_lr(base, scale) -> float:
    try:
        value = float(base) * float(scale)
    except (TypeError, ValueError):
        raise ConfigError("optim.lr", f"learning rate {base!r} x lr_scale {scale!r} is not a number") from None
    if value <= 0:
        raise ConfigError("optim.lr", f"must be positive, got {base!r} x lr_scale {scale!r}")
    return float(f"{value:.6g}")


def quant_tag(quantize) -> str:
    return "" if quantize in (None, "", "null") else f"-{quantize}"


def ceil_mul(x, factor) -> int:
    return int(math.ceil(float(x) * float(factor) - 1e-9))


def _budget_rank(budget, method, targets, exclude, backbone) -> int:
    container = lambda v: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
    return _cached_budget_rank(json.dumps([budget, method, container(targets), container(exclude), container(backbone)], sort_keys=True))


@lru_cache(maxsize=256)
def _cached_budget_rank(args_json: str) -> int:
    return budget_rank(*json.loads(args_json))


def register_resolvers() -> None:
    for name, fn in (("adapter_tag", adapter_tag), ("scale_lr", scale_lr), ("ceil_mul", ceil_mul), ("quant_tag", quant_tag), ("budget_rank", _budget_rank),
                     ("name_number", name_number)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
