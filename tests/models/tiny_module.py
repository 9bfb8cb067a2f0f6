"""A tiny classification module and its data module from the training config (in-process tests)."""

from __future__ import annotations

import lightning as L
from omegaconf import OmegaConf

from lora_lab.data.classification import ClassificationDataModule
from lora_lab.data.tasks import parse_task_config, task_spec
from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
from lora_lab.models.classification import ClassificationModule
from tests.models.test_module_hooks import tiny_cfg


def tiny_module(tmp_path, *overrides: str, **optim):
    """``(module, datamodule)`` of ``debug=tiny`` plus ``overrides``; ``optim`` replaces optimizer knobs."""
    cfg = OmegaConf.to_container(tiny_cfg(tmp_path, *overrides), resolve=True)
    task = parse_task_config(cfg["task"])
    spec = task_spec(task)
    tok = load_tokenizer(parse_backbone_config(cfg["backbone"]))
    L.seed_everything(0)
    module = ClassificationModule(cfg["backbone"], cfg["adapter"], {**cfg["optim"], **optim}, cfg["task"], spec.__dict__, tok.pad_token_id)
    return module, ClassificationDataModule(task, spec, tok)
