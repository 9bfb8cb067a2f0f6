"""`ResumeCheckpoint`: the one writer of ``<run_dir>/checkpoints/last.ckpt``.

``last.ckpt`` is written (atomically, through the trainer's `AtomicCheckpointIO`)

- at the end of every validation during fit (what Lightning's ``ModelCheckpoint(save_last=True)``
  did before 2.6, which now writes ``last.ckpt`` only together with a top-k checkpoint),
- every ``every_n_minutes`` of training, at the next safe point (bounds what a hard kill loses),
- when SLURM signals a stop (`lora_lab.resume.signals`), at the next safe point; training then
  stops with `RunPreempted` (unless it was about to finish anyway),
- at the end of training.

A *safe point* is the end of a training batch that completed an optimizer step (no gradients are
being accumulated; those are not checkpointed) and is not followed by a validation: Lightning
resumes a checkpoint taken there at the next batch but would skip that validation. For such
batches the save happens at the end of the validation instead, the state Lightning expects there.
Under DDP the decision is reduced over ranks so all of them save and stop at the same step; at
training batches that all-reduce runs about every ``CHECK_SECONDS`` (a step count the ranks agree
on), not at every step, so a step costs no host sync.

What PiSSA/OLoRA fix at initialisation (residual base weights, ``A0``/``B0``) is not in ``last.ckpt``:
it is written once per process to ``frozen_state.safetensors`` and loaded back on resume
(`lora_lab.resume.frozen_state`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Checkpoint

from lora_lab.resume.frozen_state import CHECKPOINT_KEY, FROZEN_NAME, load_frozen_state, save_frozen_state
from lora_lab.resume.signals import RunPreempted, StopSignals, requeue_signal

log = logging.getLogger("lora_lab.resume")
LAST_NAME = "last.ckpt"
#: under DDP, stop/save decisions at training batches are all-reduced about this often (seconds)...
CHECK_SECONDS = 10.0
#: ...and at least every this many optimizer steps
MAX_CHECK_INTERVAL = 64


class ResumeCheckpoint(Checkpoint):
    def __init__(self, dirpath: str | Path, every_n_minutes: float | None = None, handle_signals: bool = True):
        self.dirpath = Path(dirpath)
        self.every_n_minutes = every_n_minutes
        self.handle_signals = handle_signals
        self.signals = StopSignals()
        self.saved_steps: list[int] = []  # global steps of the saves in this process (tests read it)
        self._last_save_time = time.monotonic()
        self._step_at_batch_start = -1
        self._frozen_saved = False  # frozen_state.safetensors written by this process
        self._next_check_step = 0  # DDP: the next training step whose stop/save decision is all-reduced
        self._checked_at = (-1, 0.0)  # (global step, monotonic time) of the last all-reduced decision

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST_NAME

    # ----- signal handlers live for the duration of fit -----------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self.handle_signals:
            self.signals.capture_previous()  # before Lightning registers its own

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_save_time = time.monotonic()
        if self.handle_signals:
            self.signals.install()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.signals.restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.signals.restore()

    # ----- the adapter state fixed at initialisation, saved once (lora_lab.resume.frozen_state) ----
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if getattr(pl_module, "frozen_state", dict)():
            checkpoint[CHECKPOINT_KEY] = FROZEN_NAME

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        name = checkpoint.get(CHECKPOINT_KEY)
        if name is not None:
            pl_module.load_frozen_state(load_frozen_state(self.dirpath / name))

    # ----- safe points ----------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self._step_at_batch_start:
            return  # accumulating gradients: not a safe point
        stop, periodic = self._decisions(trainer, every_step=False)
        if not (stop or periodic) or self._training_finishes(trainer) or self._validation_follows(trainer):
            return
        self.save(trainer)
        if stop:
            self._stop(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        stop, _ = self._decisions(trainer)
        self.save(trainer)
        if stop and not self._training_finishes(trainer):
            self._stop(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.saved_steps or self.saved_steps[-1] != trainer.global_step:
            self.save(trainer)

    # ----- helpers --------------------------------------------------------------------------------
    def save(self, trainer) -> None:
        if trainer.fast_dev_run:  # like ModelCheckpoint: a wiring check leaves nothing to resume from
            return
        if not self._frozen_saved:
            frozen = getattr(trainer.lightning_module, "frozen_state", dict)()
            if frozen and trainer.is_global_zero:
                save_frozen_state(self.dirpath / FROZEN_NAME, frozen)
            self._frozen_saved = True
        trainer.save_checkpoint(str(self.last_path))
        self.saved_steps.append(int(trainer.global_step))
        self._last_save_time = time.monotonic()

    def _decisions(self, trainer, every_step: bool = True) -> tuple[bool, bool]:
        """(a stop signal arrived on any rank, rank 0's periodic save is due), the same on every rank.

        Under DDP agreeing costs an all-reduce (and a host sync), so at training batches it happens
        only every `_check_every` optimizer steps: as many steps as take about `CHECK_SECONDS`
        (measured, the smallest over the ranks, so every rank reduces at the same steps), at
        least 1 and at most `MAX_CHECK_INTERVAL`. ``every_step=False`` marks such a batch."""
        stop = self.signals.pending is not None
        periodic = self.every_n_minutes is not None and time.monotonic() - self._last_save_time >= 60.0 * float(self.every_n_minutes)
        if trainer.world_size > 1:
            if not every_step and trainer.global_step < self._next_check_step:
                return False, False
            now = time.monotonic()
            steps = max(trainer.global_step - self._checked_at[0], 1)
            per_step = (now - self._checked_at[1]) / steps if self._checked_at[0] >= 0 else CHECK_SECONDS
            interval = int(min(max(CHECK_SECONDS // max(per_step, 1e-6), 1), MAX_CHECK_INTERVAL))
            flags = trainer.strategy.reduce(torch.tensor([float(stop), float(periodic and trainer.is_global_zero), -float(interval)],
                                                         device=trainer.strategy.root_device), reduce_op="max")
            flags = flags.tolist()  # the one host sync of the check
            stop, periodic = flags[0] > 0, flags[1] > 0
            self._checked_at = (trainer.global_step, now)
            self._next_check_step = trainer.global_step + int(-flags[2])
        return stop, periodic

    @staticmethod
    def _training_finishes(trainer) -> bool:
        """This batch / validation is the last of training: finishing beats stopping."""
        if trainer.max_steps is not None and trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
            return True
        max_epochs = trainer.max_epochs
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        return bool(last_batch and max_epochs is not None and max_epochs != -1 and trainer.current_epoch + 1 >= max_epochs)

    @staticmethod
    def _validation_follows(trainer) -> bool:
        """Will Lightning validate right after this batch? (Its own decision, a private method; should
        that move, fall back to "at the end of every epoch", the default schedule.)"""
        if not trainer.limit_val_batches:
            return False
        loop = trainer.fit_loop
        try:
            return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
        except AttributeError:  # pragma: no cover - only with a Lightning that renamed it
            return bool(loop.epoch_loop.batch_progress.is_last_batch)

    def _stop(self, trainer) -> None:
        signum = self.signals.pending
        if signum is None:  # another rank got the signal; act as if it were the requeue signal there too
            signum = int(requeue_signal())
        raise RunPreempted(signum, trainer.global_step, requeue=signum == int(requeue_signal()),
                           previous_handler=self.signals.previous.get(signum))
