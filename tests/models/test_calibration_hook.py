"""The module's calibration hook (`AdapterModule.configure_model`): a data-driven init runs on the
batches it is handed, in eval mode, before the model trains; without batches and without a checkpoint
fitting is an error, never a silent placeholder init."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lora_lab.tasks.loaders import calibration_batches
from tests.models.tiny_module import tiny_module


def trainer() -> L.Trainer:
    return L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                     limit_val_batches=0, enable_model_summary=False)


def test_fit_without_calibration_batches_is_an_error(tmp_path):
    module, datamodule = tiny_module(tmp_path, "adapter.init=lora_ga")
    with pytest.raises(RuntimeError, match="init 'lora_ga' needs calibration batches"):
        trainer().fit(module, datamodule=datamodule)


def test_calibration_runs_in_eval_mode_before_training_and_is_counted(tmp_path):
    module, datamodule = tiny_module(tmp_path, "adapter.init=corda")
    modes = []
    loss = module.task_loss
    module.task_loss = lambda batch: modes.append(module.model.training) or loss(batch)
    module.calibration_batches = lambda: calibration_batches(datamodule, 3, seed=0)
    module.configure_model()
    assert modes == [False, False, False]  # three calibration forwards, no dropout
    assert module.init_summary == {"name": "corda", "calibration_batches": 3, "calibration_examples": 24}  # batch 8
    assert module.model.training  # back in train mode for fitting
    layer = next(iter(module.method.layers.values()))
    assert torch.count_nonzero(layer.lora_B) > 0 and torch.equal(layer.lora_B0, layer.lora_B.detach())  # the real init
    trainer().fit(module, datamodule=datamodule)
    assert modes[3:] == [True]  # then one training step, in train mode
