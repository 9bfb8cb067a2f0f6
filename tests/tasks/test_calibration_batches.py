"""The calibration batches of the data-driven inits (`lora_lab.tasks.loaders.calibration_batches`): drawn
from the task's own training set and collate, seeded on their own, leaving the training order alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
from lora_lab.tasks.classification.data import ClassificationDataModule
from lora_lab.tasks.loaders import calibration_batches
from lora_lab.tasks.registry import parse_task_config
from lora_lab.config.compose import CONF_DIR


def datamodule(seed: int = 1) -> ClassificationDataModule:
    tok = load_tokenizer(parse_backbone_config(OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "backbone/tiny_bert.yaml"))))
    task = parse_task_config({"kind": "synthetic_sentiment", "max_train_samples": 96, "max_eval_samples": 16, "batch_size": 16})
    return ClassificationDataModule(task, task.spec(), tok, seed=seed)


def rows(batches) -> list[tuple[int, ...]]:
    """Each example's tokens without its padding (batches pad to their own longest example)."""
    return [tuple(ids[mask.bool()].tolist()) for b in batches for ids, mask in zip(b["input_ids"], b["attention_mask"])]


def test_calibration_batches_come_from_the_training_set_with_their_own_seed():
    dm = datamodule()
    dm.setup("fit")
    train_order = rows(dm.train_dataloader())
    rng = torch.get_rng_state()
    first = list(calibration_batches(dm, 3, seed=0))
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator is not used
    assert len(first) == 3 and all(b["input_ids"].shape[0] == 16 for b in first)  # the training batch size
    assert set(first[0]) >= {"input_ids", "attention_mask", "labels"}  # the training collate
    assert set(rows(first)) <= set(train_order)  # training examples only (not val)
    assert len(set(rows(first))) == 48  # shuffled without replacement
    assert rows(first) == rows(calibration_batches(dm, 3, seed=0))  # seeded
    assert rows(first) != rows(calibration_batches(dm, 3, seed=1))
    assert rows(first) != train_order[:48]  # not the training loader's own order
    assert rows(dm.train_dataloader()) == train_order  # which drawing them did not change
    assert len(list(calibration_batches(dm, 50, seed=0))) == 6  # at most one pass over 96 examples


def test_training_order_is_the_same_with_and_without_calibration():
    with_calibration, without = datamodule(), datamodule()
    with_calibration.setup("fit")
    list(itertools.islice(calibration_batches(with_calibration, 4, seed=0), 4))
    without.setup("fit")
    assert rows(with_calibration.train_dataloader()) == rows(without.train_dataloader())
