"""Pieces every task family's data module shares: a dataset of pre-encoded items and the training
loader (shuffled by ``(seed, epoch)``, sharded over DDP ranks, resumable mid-epoch: `lora_lab.resume.sampler`)."""

from __future__ import annotations

import itertools
from typing import Iterator

import torch

from lora_lab.resume.sampler import ResumableDataLoader, ResumableSampler


class TokenizedDataset(torch.utils.data.Dataset):
    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]


def resumable_train_loader(datamodule, dataset, batch_size: int, collate_fn, num_workers: int) -> ResumableDataLoader:
    """The training loader of ``datamodule`` (a LightningDataModule with a ``seed``)."""
    trainer = datamodule.trainer
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = ResumableSampler(dataset, seed=datamodule.seed, num_replicas=replicas, rank=rank, shuffle=True)
    return ResumableDataLoader(dataset, sampler=sampler, batch_size=batch_size, collate_fn=collate_fn, num_workers=num_workers)


#: offset of the calibration generator's seed from the trial seed (its own stream, not the sampler's)
CALIBRATION_SEED_OFFSET = 7919


def calibration_batches(datamodule, count: int, seed: int) -> Iterator[dict]:
    """Up to ``count`` batches for a data-driven init (`lora_lab.adapters.calibration`): the training
    loader's dataset, batch size and collate, shuffled by a generator of their own seeded with
    ``seed + CALIBRATION_SEED_OFFSET``, unsharded (every DDP rank computes the same init) and without
    workers. The training loader, its sampler and the global RNG are not touched, so the training data
    order is the same with or without calibration."""
    datamodule.setup("fit")
    train = datamodule.train_dataloader()
    generator = torch.Generator().manual_seed(seed + CALIBRATION_SEED_OFFSET)
    loader = torch.utils.data.DataLoader(train.dataset, batch_size=train.batch_size, shuffle=True, generator=generator, collate_fn=train.collate_fn)
    return itertools.islice(iter(loader), count)
