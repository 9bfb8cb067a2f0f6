"""Finished runs built in-process for the analysis tests: a real method attached to the tiny BERT,
its trained tensors moved by seeded steps, snapshots and ``adapter/`` written by the real writers
(`lora_lab.analysis.snapshots`, `lora_lab.adapters.io`), a ``result.json`` and a ``metrics.csv``.
No training loop: the analyses only read what a run leaves on disk. Every run gets
``snapshots/base_weights.safetensors`` (``W0``): the tiny backbone is randomly initialised, which
`load_recorded_base` (the fallback of a real run without snapshots) refuses to rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.io import save_adapter
from lora_lab.analysis.snapshots import BASE_NAME, analysed_weights, list_snapshots, step_dir, write_snapshot
from lora_lab.models.backbones import head_modules_for
from tests.helpers import tiny_bert


@torch.no_grad()
def _move(method, generator: torch.Generator, std: float) -> None:
    """One "training step": every trained tensor of the method gets seeded noise."""
    for tensor in method.adapter_state_dict().values():
        if tensor.is_floating_point() and tensor.requires_grad:
            tensor.add_(torch.randn(tensor.shape, generator=generator) * std)


def make_run(root: Path, name: str, adapter: dict, seed: int = 0, move_seed: int | None = None, steps=(0, 4, 8), snapshots: bool = True,
             std: float = 0.05, model=None, backbone: dict | None = None, base_file: bool = True) -> tuple[Path, dict]:
    """A finished run in ``root/name``; returns ``(run_dir, {step: {module: W' the live model computes}})``.
    ``model`` / ``backbone``: another base and the backbone record its adapter is saved with (default:
    the tiny BERT, which cannot be rebuilt); ``base_file=False``: no ``snapshots/base_weights.safetensors``,
    as a run trained without snapshots leaves it (the analyses then rebuild ``W0`` from the record)."""
    run_dir = root / name
    model = model if model is not None else tiny_bert(seed=0)  # every run shares the base
    method = build_method(parse_config({"targets": "qv", **adapter}))
    method.attach(model, "bert", head_modules_for(model, "classification"))
    backbone = backbone or {"name": "tiny_bert", "model_kind": "classification", "num_labels": 2}
    (run_dir / "snapshots").mkdir(parents=True)
    if base_file:
        save_file(analysed_weights(model, method), str(run_dir / "snapshots" / BASE_NAME), metadata={"conv1d_modules": "[]"})
    g = torch.Generator().manual_seed(1000 + (seed if move_seed is None else move_seed))
    live = {}
    for i, step in enumerate(steps):
        if i:
            _move(method, g, std)
        live[step] = analysed_weights(model, method)
        if snapshots:
            write_snapshot(step_dir(run_dir, step), model, method, backbone, step)
    save_adapter(run_dir / "adapter", model, method, backbone)
    curve = [{"step": s, "epoch": 0, "val/accuracy": 0.5 + 0.01 * i + 0.001 * seed, "selectable": True} for i, s in enumerate(steps) if s]
    record = {"status": "success", "run_dir": str(run_dir), "primary_metric": "val/accuracy", "curve": curve,
              "config": {"seed": seed, "adapter": method.config.to_dict(), "task": {"name": "synthetic"}, "optim": {"lr": 1e-3}},
              "snapshots": list_snapshots(run_dir)}
    (run_dir / "result.json").write_text(json.dumps(record))
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    rows = "".join(f"0,{s},{1.0 / (1 + s) + 0.01 * seed}\n" for s in range(max(steps) + 1))
    (run_dir / "logs" / "metrics.csv").write_text("epoch,step,train/loss\n" + rows)
    return run_dir, live
