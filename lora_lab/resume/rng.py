"""`RngState`: the global RNG streams travel in every checkpoint and come back on resume.

Lightning checkpoints optimizer, scheduler and loop progress but not the RNG states, so a resumed
run would draw different dropout masks than an uninterrupted one. This callback stores the torch
CPU generator, every CUDA device's generator (where CUDA is in use), numpy's and Python's
``random`` state, and restores them when Lightning restores callbacks (after the model is built,
before the first resumed batch). Everything is stored as tensors or plain Python values so the
checkpoint still loads with ``weights_only=True``.

Under DDP the ranks' states differ even with one seed (dynamic padding gives each rank batches of
other shapes, so dropout draws different amounts), so every rank's states are gathered into the
checkpoint rank 0 writes (``state_dict`` runs on all ranks inside ``trainer.save_checkpoint``) and
each rank takes its own back.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _gather(state: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, state)
    return out


class RngState(Callback):
    """Checkpoint and restore every rank's global RNG states (see the module docstring)."""

    def __init__(self) -> None:
        self.rank = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.rank = trainer.global_rank  # known before Lightning restores callback states

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": _gather(capture_rng())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks")
        if not ranks:
            return
        if self.rank >= len(ranks):
            raise RuntimeError(f"the checkpoint holds RNG states of {len(ranks)} rank(s); this is rank {self.rank}: resume with the same world size")
        restore_rng(ranks[self.rank])
