"""AdaLoRA under DDP (2 CPU processes, gloo): every rank computes the same mask from the all-reduced
gradients, and the allocator refuses to go on when the ranks' masks disagree.

One spawn runs both scenarios (process start-up dominates the cost): a DDP-wrapped model, then an
unwrapped one whose hook sees local, rank-specific gradients."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

T = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scenario(rank: int, use_ddp: bool) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from tests.adapters.adalora_utils import Y, bert_with_adalora

    _, model, method = bert_with_adalora(r=6, target_r=3, tinit=1, tfinal=2, delta_t=1)  # same seed: same init
    net = DDP(model) if use_ddp else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    gen = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    outcome = "ok"
    model.train()
    for step in range(T):
        loss = net(input_ids=torch.randint(0, 100, (4, 7), generator=gen), labels=Y).loss + method.regularization_loss()
        loss.backward()
        if not use_ddp:  # un-reduced gradients that really differ between the ranks
            for layer in method.layers.values():
                for _, p in layer.adapter_parameters():
                    p.grad.mul_(torch.rand(p.shape, generator=gen) * 10)
        opt.step()
        try:
            method.on_optimizer_step(step, T)
        except RuntimeError as err:
            outcome = str(err)
            break
        opt.zero_grad()
    return {
        "outcome": outcome,
        "masks": {n: layer.rank_mask.clone() for n, layer in method.layers.items()},
        "E": {n: layer.lora_E.detach().clone() for n, layer in method.layers.items()},
    }


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.save({"ddp": _scenario(rank, True), "local": _scenario(rank, False)}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, start_method="spawn", join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
def test_ddp_ranks_compute_identical_masks(ranks):
    r0, r1 = ranks[0]["ddp"], ranks[1]["ddp"]
    assert r0["outcome"] == r1["outcome"] == "ok"
    assert sum(int(m.sum()) for m in r0["masks"].values()) == 3 * 4  # target_r * n
    for name in r0["masks"]:
        assert torch.equal(r0["masks"][name], r1["masks"][name])
        assert torch.equal(r0["E"][name], r1["E"][name])


@pytest.mark.slow
def test_ranks_whose_masks_disagree_are_caught(ranks):
    for r in ranks:
        assert "masks differ between processes" in r["local"]["outcome"]
