"""Training steps never wait for the device, outside evaluation: every host sync (a tensor read on the
host: ``bool``, ``item``, ``int``, ``float``, ``tolist``) that lora_lab code makes during a training
batch (forward, backward, optimizer step, the method's hook, the resume callback) is counted. LoRA
and DoRA: none. AdaLoRA: none outside allocation steps, a few at each allocation step."""

import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lora_lab.resume.checkpoint import ResumeCheckpoint
from tests.models.tiny_module import tiny_module

SYNCING = ("__bool__", "item", "__int__", "__float__", "tolist")
STEPS = 6


class SyncCounter(Callback):
    """Counts host syncs from lora_lab frames between the start and the end of each training batch."""

    def __init__(self):
        self.per_step: list[int] = []
        self.active = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.per_step.append(0)
        self.active = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.active = False

    def record(self) -> None:
        """A sync made by lora_lab code itself (the caller of the tensor method is ours; a library's
        own reads, e.g. transformers' mask checks, are not ours to remove)."""
        if self.active and "/lora_lab/" in sys._getframe(2).f_code.co_filename.replace("\\", "/"):
            self.per_step[-1] += 1


@pytest.fixture
def counter(monkeypatch):
    counter = SyncCounter()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def patched(self, *args, _original=original, **kwargs):
            counter.record()
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, patched)
    return counter


def fit(tmp_path, counter, *overrides):
    module, datamodule = tiny_module(tmp_path, *overrides)
    trainer = L.Trainer(max_steps=STEPS, logger=False, enable_progress_bar=False, num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[counter, ResumeCheckpoint(tmp_path / "ckpt", every_n_minutes=None)])
    trainer.fit(module, datamodule=datamodule)
    return module


@pytest.mark.parametrize("adapter", ["lora", "dora", "pissa"])
def test_no_host_sync_in_a_training_step(tmp_path, counter, adapter):
    fit(tmp_path, counter, f"adapter={adapter}", "adapter.dropout=0.1")
    assert counter.per_step == [0] * STEPS


def test_adalora_syncs_only_at_allocation_steps(tmp_path, counter):
    module = fit(tmp_path, counter, "adapter=adalora", "adapter.r=4", "adapter.target_r=2", "adapter.tinit=1", "adapter.tfinal=1", "adapter.delta_t=2")
    allocation_steps = {step for step, _, _ in module.method.allocator.history}
    assert allocation_steps == {2, 4, 5}  # delta_t = 2 before T - tfinal = 5, and the final pattern at 5
    for step, syncs in enumerate(counter.per_step):
        if step in allocation_steps:
            assert 1 <= syncs <= 3, (step, syncs)  # tau, the kept count (a DDP run adds the mask check)
        else:
            assert syncs == 0, (step, syncs)
