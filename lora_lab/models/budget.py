"""Budget-matched comparisons (AdaLoRA paper style): pick each method's rank so that its adapter
parameter count is as close as possible to a given budget.

The count is each method's own closed form (`AdapterMethod.closed_form_params`, checked against the
real layers by the contract tests) on the real module shapes: the backbone is built on the ``meta``
device (shapes only, no weights, no download beyond its ``config.json``) and the targets are resolved
exactly as in training. Adapter counts are affine in the rank (``r * sum(in + out)`` for LoRA, plus
``sum(out)`` for DoRA's magnitude, ``r * sum(in + out + 1)`` for AdaLoRA's triplets, ``sum(r + out)``
for VeRA), so the best rank follows from the counts at rank 1 and 2 and is then checked against its
neighbours. A new method needs no change here.

For AdaLoRA the budget is its *final* one: the sweep config sets ``target_r`` to the matched rank
and ``r = ceil(1.5 * target_r)`` (``b(0) = 1.5 b(T)``, paper Table 7); the report's parameter column
shows the count each run actually allocated.

``budget`` accepts an int or a string with a ``K``/``M`` suffix (``300K``, ``1.27M``).
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

from lora_lab.errors import ConfigError


def parse_budget(budget) -> int:
    text = str(budget).strip().upper().replace("_", "")
    scale = {"K": 1e3, "M": 1e6}.get(text[-1:], 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise ConfigError("budget", f"must be a parameter count such as 300000, 300K or 1.2M, got {budget!r}") from None
    if value < 1:
        raise ConfigError("budget", f"must be positive, got {budget!r}")
    return int(round(value))


@lru_cache(maxsize=16)
def _meta_model(backbone_json: str):
    """(model on the meta device, model_type, head module names) for a backbone config."""
    import torch
    import transformers

    from lora_lab.models.backbones import head_modules_for, is_local, parse_backbone_config, resolve_path

    cfg = parse_backbone_config(json.loads(backbone_json))
    if cfg.random_init is not None:
        config = transformers.AutoConfig.for_model(**cfg.random_init, num_labels=2)
    else:
        config = transformers.AutoConfig.from_pretrained(
            resolve_path(cfg.name), revision=None if is_local(cfg.name) else cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
        config.num_labels = 2
    with torch.device("meta"):
        model = transformers.AutoModelForSequenceClassification.from_config(config)
    return model, getattr(config, "model_type", None), head_modules_for(model, "classification")


def adapter_param_count(method: str, rank: int, targets, exclude, backbone: dict) -> int:
    """Adapter parameters ``method`` would train at ``rank`` on ``backbone`` (heads excluded)."""
    from lora_lab.adapters import METHODS
    from lora_lab.adapters.base import in_out_features
    from lora_lab.adapters.targets import resolve_targets

    if method not in METHODS:
        raise ConfigError("adapter.method", f"unknown method {method!r}; allowed: {', '.join(sorted(METHODS))}")
    model, model_type, heads = _meta_model(json.dumps(backbone, sort_keys=True))
    names = resolve_targets(model, targets, exclude or (), model_type, heads)
    config_cls = METHODS[method].config_cls
    known = {f.name for f in dataclasses.fields(config_cls)}
    config = config_cls(**{k: v for k, v in {"method": method, "r": rank, "targets": targets, "exclude": list(exclude or [])}.items() if k in known})
    return METHODS[method](config).closed_form_params({name: in_out_features(model.get_submodule(name)) for name in names})


def budget_rank(budget, method: str, targets, exclude, backbone: dict) -> int:
    """The rank >= 1 whose adapter parameter count is closest to ``budget`` (ties: the smaller rank)."""
    target = parse_budget(budget)
    count = lambda r: adapter_param_count(method, r, targets, exclude, backbone)
    c1, c2 = count(1), count(2)
    slope = c2 - c1
    guess = max(1, round((target - (c1 - slope)) / slope)) if slope > 0 else 1
    candidates = sorted({max(1, guess + d) for d in (-1, 0, 1)})
    return min(candidates, key=lambda r: (abs(count(r) - target), r))
