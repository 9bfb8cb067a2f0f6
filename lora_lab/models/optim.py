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

import dataclasses
import math
from dataclasses import dataclass

import torch

from lora_lab.errors import ConfigError, checked_number, did_you_mean

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


@dataclass(frozen=True)
class OptimConfig:
    """The parsed ``optim`` group: AdamW's hyper-parameters and the per-step schedule. Made once by
    `parse_optim` (at the entry point, `lora_lab.config.trial_config.parse`) and handed as is to the module and to
    `build_optimizer`; ``to_dict`` is what ``result.json`` and the checkpoint's hparams keep."""

    name: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: str = "linear"
    warmup_ratio: float = 0.06
    warmup_steps: int | None = None

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps: ``warmup_steps`` when given, else ``round(warmup_ratio * total_steps)``."""
        return self.warmup_steps if self.warmup_steps is not None else int(round(self.warmup_ratio * total_steps))

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "betas": list(self.betas)}


def parse_optim(optim: dict) -> OptimConfig:
    """Check the ``optim`` group and parse it into an `OptimConfig` (raises `ConfigError`: one line
    naming the key, the bad value and what is allowed). Absent keys take the dataclass defaults."""
    for key in optim:
        if key not in OPTIM_KEYS:
            raise ConfigError(f"optim.{key}", f"unknown key{did_you_mean(str(key), OPTIM_KEYS)}; allowed: {', '.join(sorted(OPTIM_KEYS))}")
    defaults = OptimConfig()
    if optim.get("name", defaults.name) != "adamw":
        raise ConfigError("optim.name", f"{optim.get('name')!r}; allowed: adamw")
    lr = optim.get("lr", defaults.lr)
    if isinstance(lr, str):
        try:
            lr = float(lr)
        except ValueError:
            raise ConfigError("optim.lr", f"must be a positive number, got {optim['lr']!r}") from None
    checked_number("optim.lr", lr, minimum=0, strict_min=True)
    weight_decay = checked_number("optim.weight_decay", optim.get("weight_decay", defaults.weight_decay), minimum=0)
    eps = checked_number("optim.eps", optim.get("eps", defaults.eps), minimum=0, strict_min=True)
    betas = optim.get("betas", defaults.betas)
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
        raise ConfigError("optim.betas", f"must be two numbers in [0, 1), got {betas!r}")
    scheduler = optim.get("scheduler", defaults.scheduler)
    if scheduler not in SCHEDULES:
        raise ConfigError("optim.scheduler", f"unknown schedule {scheduler!r}{did_you_mean(str(scheduler), SCHEDULES)}; allowed: {', '.join(SCHEDULES)}")
    ratio = optim.get("warmup_ratio", defaults.warmup_ratio)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio < 1:
        raise ConfigError("optim.warmup_ratio", f"must be in [0, 1), got {ratio!r}")
    warmup_steps = optim.get("warmup_steps")
    if warmup_steps is not None:
        warmup_steps = checked_number("optim.warmup_steps", warmup_steps, integer=True, minimum=0)
    return OptimConfig("adamw", float(lr), float(weight_decay), (float(betas[0]), float(betas[1])), float(eps), scheduler, float(ratio), warmup_steps)


def build_optimizer(groups: list[dict], optim: OptimConfig | dict, total_steps: int):
    """AdamW over the method's parameter groups (`torch_param_groups`) and its LR schedule
    (``optim``: the trial's `OptimConfig`; a plain dict, as tests pass, is parsed once here)."""
    cfg = optim if isinstance(optim, OptimConfig) else parse_optim(optim)
    opt = torch.optim.AdamW(
        torch_param_groups(groups, cfg.lr, cfg.weight_decay), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.scheduler, cfg.warmup(total_steps), total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
