"""Evaluation shards under DDP: every example on exactly one rank (no padding, odd N), and per-example
rows gathered from the ranks come back complete and in dataset order."""

import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from lora_lab.tasks.eval_shards import EvalShardSampler, gather_in_order, interleave

N = 33


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_cover_every_example_once(world):
    data = list(range(N))
    shards = [list(EvalShardSampler(data, num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == data  # no duplicate, none missing
    assert [len(s) for s in shards] == [len(EvalShardSampler(data, num_replicas=world, rank=r)) for r in range(world)]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert interleave(shards) == data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        rows = [{"index": i} for i in EvalShardSampler(list(range(N)), num_replicas=world, rank=rank)]
        out.put((rank, gather_in_order(rows)))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_in_order_across_two_processes():
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn", join=True)
    results = dict(out.get() for _ in range(2))
    for rank in (0, 1):  # every rank holds all N rows, in dataset order
        assert [row["index"] for row in results[rank]] == list(range(N))


def test_gather_outside_a_process_group_is_the_identity():
    assert gather_in_order([3, 1, 2]) == [3, 1, 2]
