"""Evaluation under DDP without padded duplicates: `EvalShardSampler` and `gather_in_order`.

Lightning's default `DistributedSampler` pads every rank to ``ceil(N / W)`` examples, so 33
validation examples on 2 ranks are scored as 34 (one counted twice). Here rank ``r`` of ``W`` takes
examples ``r, r + W, r + 2W, ...``: every example exactly once, ranks differ by at most one
example. Metrics are summed over ranks by torchmetrics (``compute`` synchronises their states), so a
W-rank evaluation equals the 1-rank one; per-example rows (generation predictions) are gathered with
`gather_in_order`, which restores the dataset order. (Uneven shards are safe because evaluation runs
no collective per batch: the DDP strategy does not broadcast buffers, see ``conf/trainer/ddp.yaml``.)

The sampler subclasses `DistributedSampler` so that Lightning keeps it instead of wrapping it in
its padding sampler.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


class EvalShardSampler(DistributedSampler):
    """Indices ``rank, rank + W, ...`` of ``dataset``: a disjoint, unpadded shard per rank."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    @classmethod
    def for_trainer(cls, dataset: Dataset, trainer) -> "EvalShardSampler":
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return cls(dataset, num_replicas=world, rank=rank)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def interleave(shards: list[list[Any]]) -> list[Any]:
    """Dataset order from per-rank lists in `EvalShardSampler` order: item ``i`` is rank ``i % W``'s
    ``i // W``-th."""
    world = len(shards)
    total = sum(len(s) for s in shards)
    return [shards[i % world][i // world] for i in range(total)]


def gather_in_order(rows: list[Any]) -> list[Any]:
    """Every rank's ``rows`` (one per example of its `EvalShardSampler` shard, in order) as one list in
    dataset order, on every rank; ``rows`` itself outside a multi-process run."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(rows)
    shards: list[list[Any]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(shards, list(rows))
    return interleave(shards)
