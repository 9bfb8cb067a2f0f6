"""Optimizer and learning-rate schedule from the ``optim`` config group.

AdamW over the trainable parameters (adapters + heads) with a per-step schedule:
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


def build_optimizer(params, cfg: dict, total_steps: int):
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
    opt = torch.optim.AdamW(
        params, lr=lr, weight_decay=float(cfg.get("weight_decay", 0.0)),
        betas=tuple(cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
