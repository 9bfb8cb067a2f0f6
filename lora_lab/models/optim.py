"""Optimizer and learning-rate schedule from the ``optim`` config group.

AdamW over the trainable parameters (adapters + heads), grouped by the adapter method's
``param_groups(model)`` hook (`lora_lab.adapters.method`): a group may scale the learning rate
(``lr_multiplier``, e.g. LoRA+'s ``B`` matrices) or set its own ``weight_decay``; one group of
everything by default. A per-step schedule multiplies every group's learning rate:
``linear`` (warm-up then linear decay to 0, the LoRA/AdaLoRA GLUE recipe), ``cosine`` (warm-up then
cosine to 0, the PiSSA recipe) or ``constant`` (warm-up then flat). Warm-up is
``warmup_ratio * total_steps`` unless ``warmup_steps`` is given.
"""

from __future__ import annotations

import math

import torch

from lora_lab.errors import ConfigError

SCHEDULES = ("linear", "cosine", "constant")
OPTIM_KEYS = ("name", "lr", "weight_decay", "betas", "eps", "scheduler", "warmup_ratio", "warmup_steps")


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        progress = min(max(progress, 0.0), 1.0)
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def torch_param_groups(groups: list[dict], lr: float, weight_decay: float) -> list[dict]:
    """Method groups (``params``, optional ``lr_multiplier`` and ``weight_decay``) -> torch groups with
    explicit ``lr`` and ``weight_decay``; empty groups are dropped."""
    out = []
    for group in groups:
        unknown = set(group) - {"params", "lr_multiplier", "weight_decay"}
        if unknown:
            raise ValueError(f"parameter group has unknown keys {sorted(unknown)}")
        params = list(group["params"])
        if params:
            wd = group.get("weight_decay")
            out.append({"params": params, "lr": lr * float(group.get("lr_multiplier", 1.0)), "weight_decay": weight_decay if wd is None else float(wd)})
    return out


def build_optimizer(groups: list[dict], cfg: dict, total_steps: int):
    """AdamW over the method's parameter groups (`torch_param_groups`) and its LR schedule."""
    unknown = [k for k in cfg if k not in OPTIM_KEYS]
    if unknown:
        raise ConfigError(f"optim.{unknown[0]}", f"unknown key; allowed: {', '.join(OPTIM_KEYS)}")
    if cfg.get("name", "adamw") != "adamw":
        raise ConfigError("optim.name", f"{cfg.get('name')!r}; allowed: adamw")
    lr = float(cfg.get("lr", 5e-4))
    if lr <= 0:
        raise ConfigError("optim.lr", f"must be positive, got {lr}")
    schedule = cfg.get("scheduler", "linear")
    if schedule not in SCHEDULES:
        raise ConfigError("optim.scheduler", f"{schedule!r}; allowed: {', '.join(SCHEDULES)}")
    warmup = cfg.get("warmup_steps")
    warmup = int(warmup) if warmup is not None else int(round(float(cfg.get("warmup_ratio", 0.06)) * total_steps))
    weight_decay = float(cfg.get("weight_decay", 0.0))
    opt = torch.optim.AdamW(
        torch_param_groups(groups, lr, weight_decay), lr=lr, weight_decay=weight_decay,
        betas=tuple(cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
