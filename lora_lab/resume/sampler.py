"""A training data order that can be resumed mid-epoch: `ResumableSampler` + `ResumableDataLoader`.

The order of epoch ``e`` is a function of ``(seed, e)`` only (a `DistributedSampler` shuffle, so
under DDP each rank takes its shard and Lightning leaves the sampler alone), never of how many
epochs this process has iterated. The loader counts the batches it has handed out in the current
epoch and implements Lightning's ``state_dict`` / ``load_state_dict`` loader protocol: the count
travels in ``last.ckpt`` and, on resume, the first iteration of the restored epoch skips exactly
those batches (at the index level: nothing skipped is loaded or collated). A checkpoint taken when
the epoch was complete resumes at the start of the next epoch.

Lightning calls ``set_epoch`` before each epoch, but after a resume it creates the first iterator
before that call; `load_state_dict` therefore sets the epoch itself. The loader's own generator
(worker base seeds) is reseeded from ``(seed, epoch)`` too, so it never draws from the global RNG.

Lightning hands the saved loader state over only if it builds the train loader after restoring its
loops; our module asks for ``trainer.estimated_stepping_batches`` in ``configure_optimizers``, which
builds the loader earlier, and the state would be dropped silently. `LoaderStateRestore` applies it
at ``on_train_start`` instead, before the first batch is drawn (the loader's iterator is lazy).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset, DistributedSampler

_EPOCH_STRIDE = 1_000_003  # seed * stride + epoch: distinct seeds never share an epoch's order


class ResumableSampler(DistributedSampler):
    """Shuffled (or sequential) indices of epoch ``self.epoch``; the resumed epoch skips its head."""

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=int(seed) * _EPOCH_STRIDE, drop_last=drop_last)
        self._resume: tuple[int, int] | None = None  # (epoch, indices to skip) for the next iteration

    def resume_at(self, epoch: int, skip: int) -> None:
        """Make the next iteration of ``epoch`` start after its first ``skip`` indices."""
        self.set_epoch(epoch)
        self._resume = (int(epoch), int(skip))

    def pending_skip(self) -> int:
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0

    def __iter__(self):
        skip = self.pending_skip()
        self._resume = None
        indices = list(super().__iter__())
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """A `DataLoader` over a `ResumableSampler` whose position Lightning checkpoints."""

    def __init__(self, dataset: Dataset, *, sampler: ResumableSampler, batch_size: int = 1, **kwargs: Any):
        if not isinstance(sampler, ResumableSampler):
            raise TypeError("ResumableDataLoader needs a ResumableSampler")
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, sampler=sampler, batch_size=batch_size, **kwargs)
        self.batches_seen = 0  # batches of the current epoch handed out (resumed-over ones included)

    def __iter__(self):
        sampler: ResumableSampler = self.sampler
        self.generator.manual_seed(sampler.seed + sampler.epoch)
        skipped = sampler.pending_skip() // self.batch_size
        self.batches_seen = skipped
        for batch in super().__iter__():
            self.batches_seen += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self.batches_seen), "num_batches": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # the epoch was complete: resume at the start of the next one
            epoch, batches = epoch + 1, 0
        self.sampler.resume_at(epoch, batches * self.batch_size)
        self.batches_seen = batches


def _flat_loaders(loaders: Any) -> list:
    if isinstance(loaders, dict):
        return [x for v in loaders.values() for x in _flat_loaders(v)]
    if isinstance(loaders, (list, tuple)):
        return [x for v in loaders for x in _flat_loaders(v)]
    return [loaders]


class LoaderStateRestore(Callback):
    """Give the checkpointed position back to the train loader(s) before the first resumed batch."""

    def __init__(self) -> None:
        self._states: list[dict] | None = None

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader")

    def on_train_start(self, trainer, pl_module) -> None:
        states, self._states = self._states, None
        if not states:
            return
        loaders = [dl for dl in _flat_loaders(trainer.train_dataloader) if isinstance(dl, ResumableDataLoader)]
        if len(loaders) != len(states):
            raise RuntimeError(f"the checkpoint holds {len(states)} train loader position(s) but the run has {len(loaders)} resumable loader(s)")
        for loader, state in zip(loaders, states):
            loader.load_state_dict(state)
