"""Checkpoints hold what training changes: PiSSA/OLoRA's residual base weights and A0/B0 are saved
once per run (checkpoints/frozen_state.safetensors), not in last.ckpt or in best-state copies; a
PiSSA last.ckpt is then about the size of a LoRA one. Checkpoints load onto the CPU explicitly, and
DDP does not broadcast the constant A0/B0 buffers."""

import socket

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from lora_lab.resume.checkpoint_io import AtomicCheckpointIO
from lora_lab.resume.frozen_state import FROZEN_NAME
from lora_lab.train import train
from tests.models.test_module_hooks import tiny_cfg
from tests.models.tiny_module import tiny_module

ALL_LINEAR = ["adapter.targets=all_linear"]


def test_pissa_checkpoint_is_lora_sized_and_frozen_state_saved_once(tmp_path):
    train(tiny_cfg(tmp_path, "adapter=lora", *ALL_LINEAR), tmp_path / "lora")
    record = train(tiny_cfg(tmp_path, "adapter=pissa", *ALL_LINEAR), tmp_path / "pissa")
    assert record["status"] == "success"
    lora_size = (tmp_path / "lora/checkpoints/last.ckpt").stat().st_size
    pissa_size = (tmp_path / "pissa/checkpoints/last.ckpt").stat().st_size
    assert abs(pissa_size - lora_size) <= 0.10 * lora_size, (pissa_size, lora_size)
    ckpt = torch.load(tmp_path / "pissa/checkpoints/last.ckpt", weights_only=False, map_location="cpu")
    per_step = set(ckpt["state_dict"]) | set(ckpt["lora_lab_eval"]["best_state"])
    assert not [k for k in per_step if k.endswith(("base_layer.weight", "lora_A0", "lora_B0"))]
    frozen = load_file(str(tmp_path / "pissa/checkpoints" / FROZEN_NAME))
    saved = load_file(str(tmp_path / "pissa/adapter/adapter_model.safetensors"))  # the adapter keeps everything
    assert frozen and all(torch.equal(saved[k], v) for k, v in frozen.items())
    assert {k.rsplit(".", 1)[-1] for k in frozen} == {"weight", "lora_A0", "lora_B0"}


def test_checkpoints_load_onto_the_cpu_explicitly(tmp_path, monkeypatch):
    path = tmp_path / "x.ckpt"
    AtomicCheckpointIO().save_checkpoint({"t": torch.ones(2)}, path)
    seen = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: seen.append(kw.get("map_location")) or real_load(*a, **kw))
    assert torch.equal(AtomicCheckpointIO().load_checkpoint(path)["t"], torch.ones(2))
    assert seen == ["cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_does_not_broadcast_pissa_buffers(tmp_path):
    module, _ = tiny_module(tmp_path, "adapter=pissa")
    module.configure_model()
    constant = {n for n, _ in module.named_buffers() if n.endswith(("lora_A0", "lora_B0"))}
    assert len(constant) == 2 * 2 * 2  # (q, v) x 2 layers x (A0, B0)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(module)
        broadcast = {id(b) for b in ddp.modules_buffers}
        named = dict(module.named_buffers())
        assert broadcast and not {id(named[n]) for n in constant} & broadcast
    finally:
        dist.destroy_process_group()
