"""The training data order: a function of (seed, epoch), shardable, resumable mid-epoch, and never
drawing from the global RNG (dropout masks must not depend on how many epochs were iterated)."""

import torch

from lora_lab.resume.sampler import ResumableDataLoader, ResumableSampler


def loader(n=50, batch_size=4, seed=0, replicas=1, rank=0, **kw):
    data = list(range(n))
    sampler = ResumableSampler(data, seed=seed, num_replicas=replicas, rank=rank)
    return ResumableDataLoader(data, sampler=sampler, batch_size=batch_size, collate_fn=list, **kw)


def epoch_batches(dl, epoch):
    dl.sampler.set_epoch(epoch)
    return list(dl)


def test_order_depends_on_seed_and_epoch_only():
    a, b = loader(), loader()
    assert epoch_batches(a, 1) == epoch_batches(b, 1)  # b never saw epoch 0
    assert epoch_batches(a, 0) != epoch_batches(a, 1)
    assert epoch_batches(loader(seed=1), 0) != epoch_batches(loader(seed=0), 1)  # seeds do not alias epochs
    assert sorted(x for batch in epoch_batches(a, 3) for x in batch) == list(range(50))


def test_resume_mid_epoch_yields_exactly_the_remaining_batches():
    full = epoch_batches(loader(), 2)
    first = loader()
    first.sampler.set_epoch(2)
    it = iter(first)
    seen = [next(it) for _ in range(5)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 5, "num_batches": 13} and seen == full[:5]

    resumed = loader()
    resumed.load_state_dict(state)  # before Lightning's own set_epoch, as after a real resume
    rest = list(resumed)
    assert rest == full[5:]
    assert resumed.state_dict()["batches"] == 13
    resumed.sampler.set_epoch(3)
    assert list(resumed) == epoch_batches(loader(), 3)  # the skip applied once


def test_complete_epoch_resumes_at_next_epoch_start():
    resumed = loader()
    resumed.load_state_dict({"epoch": 1, "batches": 13, "num_batches": 13})
    assert resumed.sampler.epoch == 2 and list(resumed) == epoch_batches(loader(), 2)


def test_skip_is_dropped_if_lightning_moves_to_another_epoch():
    resumed = loader()
    resumed.load_state_dict({"epoch": 1, "batches": 4, "num_batches": 13})
    resumed.sampler.set_epoch(2)
    assert list(resumed) == epoch_batches(loader(), 2)


def test_ddp_shards_partition_and_resume_per_rank():
    shards = [epoch_batches(loader(replicas=2, rank=r), 1) for r in (0, 1)]
    flat = [x for s in shards for b in s for x in b]
    assert sorted(flat) == list(range(50))
    resumed = loader(replicas=2, rank=1)
    resumed.load_state_dict({"epoch": 1, "batches": 2, "num_batches": 7})
    assert list(resumed) == shards[1][2:]


def test_iterating_leaves_global_rng_alone_with_workers():
    dl = loader(num_workers=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    batches = epoch_batches(dl, 0)
    assert torch.equal(torch.get_rng_state(), before)
    assert batches == epoch_batches(loader(), 0)  # worker processes load the same order
