"""`AtomicCheckpointIO`: Lightning checkpoints written with temp file + fsync + rename.

Lightning's `TorchCheckpointIO` stages the file through fsspec in the system temp dir and moves it
into place; across filesystems (node-local ``/tmp``, run dirs on a shared filesystem) that move is a
copy into the final path, so a job killed mid-save can leave a truncated ``last.ckpt`` that the next
job would try to resume from. This plugin writes next to the target instead (`lora_lab.atomic`):
``last.ckpt`` is always either the previous complete checkpoint or the new one.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lora_lab.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Atomic writes; loads map every tensor to the CPU explicitly (each rank's module and optimizer
    state are then copied onto that rank's device), never onto the device it was saved from."""

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: bool | None = False) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint does not take storage_options")
        atomic_write(path, lambda fh: torch.save(checkpoint, fh))
