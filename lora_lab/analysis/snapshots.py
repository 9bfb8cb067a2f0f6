"""Adapter snapshots at chosen optimizer steps: ``<run>/snapshots/step_<k>/`` (`snapshot_schedule`).

Each snapshot is a saved adapter in the ``adapter/`` format (``adapter_config.json`` with a
``snapshot: {step, complete_adapter}`` entry, ``adapter_model.safetensors``) holding the method's
`AdapterMethod.snapshot_keys` (everything for the LoRA family; full fine-tuning keeps only its
``targets`` matrices, not the whole model). ``snapshots/base_weights.safetensors`` keeps, once, the
weight ``W0`` (``[out, in]``, fp32) of every analysed matrix before the first step, as the adapted
model computes it (for PiSSA/OLoRA ``W_res + s B0 A0``, the original weight up to fp32 rounding): the
reference of the update ``dW = W' - W0`` that the analyses measure.

Resume and kills: a snapshot is written to a hidden temporary directory and renamed into place, so
``step_<k>/`` exists complete or not at all; a step whose snapshot exists is never written again, and
a trial resumed from a checkpoint at step ``c`` writes the steps ``>= c`` it still lacks (the step
``c`` one at train start, if the kill fell between the checkpoint and the snapshot). A fresh start
(forced rerun, other config) removes the directory. Under DDP only global rank 0 writes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import save_file
from torch import nn

from lora_lab.adapters.io import CONFIG_NAME, WEIGHTS_NAME, adapter_checkpoint_state, adapter_meta
from lora_lab.analysis.snapshot_schedule import snapshot_due

SNAPSHOT_DIR = "snapshots"
BASE_NAME = "base_weights.safetensors"


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{step}"


def _weight_out_in(module: nn.Module) -> torch.Tensor:
    w = module.weight
    return w if isinstance(module, nn.Linear) else w.T


@torch.no_grad()
def analysed_weights(model: nn.Module, method) -> dict[str, torch.Tensor]:
    """``{module: W}`` of the analysed matrices as the model computes them now (``[out, in]``, fp32):
    an adapter layer's merged weight, a reference method's own weight."""
    out = {}
    for name in method.adapted_module_names():
        layer = method.layers.get(name)
        if layer is not None:
            out[name] = layer.merged_weight(layer.base_weight().float())
        else:
            out[name] = _weight_out_in(model.get_submodule(name)).float()
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def _atomic_dir(target: Path, write) -> None:
    tmp = target.parent / f".{target.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    os.replace(tmp, target)


def write_snapshot(directory: Path, model: nn.Module, method, backbone: dict, step: int) -> Path:
    """Write the method's snapshot state at optimizer step ``step`` into ``directory`` (atomically)."""
    state = adapter_checkpoint_state(model, method)
    keys = method.snapshot_keys()
    if keys is not None:
        state = {k: state[k] if k in state else model.get_parameter(k) for k in sorted(keys)}
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    meta = {**adapter_meta(method, backbone), "snapshot": {"step": int(step), "complete_adapter": keys is None}}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS_NAME))
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, default=str))

    _atomic_dir(Path(directory), write)
    return Path(directory)


def list_snapshots(run_dir: Path) -> list[dict]:
    """``[{"step": k, "path": "snapshots/step_k"}, ...]`` of the complete snapshots on disk, by step."""
    root = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for d in root.glob("step_*") if root.is_dir() else ():
        if d.name[5:].isdigit() and (d / CONFIG_NAME).is_file() and (d / WEIGHTS_NAME).is_file():
            found.append({"step": int(d.name[5:]), "path": f"{SNAPSHOT_DIR}/{d.name}"})
    return sorted(found, key=lambda s: s["step"])


class AdapterSnapshots(Callback):
    """Writes the scheduled snapshots during fit (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, options: dict, backbone: dict):
        self.run_dir = Path(run_dir)
        self.options = options
        self.backbone = backbone
        self.written: list[int] = []  # steps written by this process (tests read it)

    def _maybe(self, trainer, pl_module) -> None:
        step = int(trainer.global_step)
        if not trainer.is_global_zero or not snapshot_due(step, self.options):
            return
        target = step_dir(self.run_dir, step)
        if (target / CONFIG_NAME).is_file():
            return  # written before a kill or a stop: same step, same bytes
        write_snapshot(target, pl_module.model, pl_module.method, self.backbone, step)
        self.written.append(step)

    def on_train_start(self, trainer, pl_module) -> None:
        base = self.run_dir / SNAPSHOT_DIR / BASE_NAME
        if trainer.is_global_zero and trainer.global_step == 0 and not base.is_file():
            base.parent.mkdir(parents=True, exist_ok=True)
            method = pl_module.method
            weights = analysed_weights(pl_module.model, method)
            conv1d = [n for n in weights if n not in method.layers and not isinstance(pl_module.model.get_submodule(n), nn.Linear)]
            tmp = base.with_name("." + BASE_NAME + ".partial")
            save_file(weights, str(tmp), metadata={"conv1d_modules": json.dumps(conv1d)})
            os.replace(tmp, base)
        self._maybe(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._maybe(trainer, pl_module)
