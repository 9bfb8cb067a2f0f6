"""A tiny classification module and its data module from the training config (in-process tests)."""

from __future__ import annotations

import lightning as L
from omegaconf import OmegaConf

from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
from lora_lab.tasks.classification.data import ClassificationDataModule
from lora_lab.tasks.classification.module import ClassificationModule
from lora_lab.tasks.registry import parse_task_config
from tests.models.test_module_hooks import tiny_cfg


def tiny_module(tmp_path, *overrides: str, **optim):
    """``(module, datamodule)`` of ``debug=tiny`` plus ``overrides``; ``optim`` replaces optimizer knobs."""
    cfg = OmegaConf.to_container(tiny_cfg(tmp_path, *overrides), resolve=True)
    task = parse_task_config(cfg["task"])
    spec = task.spec()
    tok = load_tokenizer(parse_backbone_config(cfg["backbone"]))
    L.seed_everything(0)
    module = ClassificationModule(cfg["backbone"], cfg["adapter"], {**cfg["optim"], **optim}, cfg["task"], spec.__dict__, tok.pad_token_id)
    return module, ClassificationDataModule(task, spec, tok)
