"""The adapter state fixed at initialisation, saved once per run next to ``last.ckpt``.

PiSSA/OLoRA write a residual ``W_res = W - s B0 A0`` into every adapted base weight and keep
``A0``/``B0``; none of it changes in training (`AdapterModule.frozen_state`). Stored in every
``last.ckpt`` (and in every best-state copy) it made a checkpoint mostly frozen weights (69 % of the
elements on tiny BERT, all linear layers). `ResumeCheckpoint` writes it instead to
``checkpoints/frozen_state.safetensors`` at the first save of each process (so a forced rerun never
reads a stale one) and loads it back, exactly, when it resumes; ``last.ckpt`` records that it needs it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save

from lora_lab.atomic import atomic_write_bytes

FROZEN_NAME = "frozen_state.safetensors"
CHECKPOINT_KEY = "lora_lab_frozen_state"  # in last.ckpt: the file's name, when the run has frozen state


def save_frozen_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, save({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}))


def load_frozen_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint next to it needs the adapter state fixed at initialisation")
    return load_file(str(path), device="cpu")
