"""Pieces every task family's data module shares: a dataset of pre-encoded items and the training
loader (shuffled by ``(seed, epoch)``, sharded over DDP ranks, resumable mid-epoch: `lora_lab.resume.sampler`)."""

from __future__ import annotations

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
