"""Shared helpers for the resume-exactness tests: tiny in-process runs and bit-level comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from lora_lab.config.compose import CONF_DIR
from lora_lab.train import cli_main

# 96 examples / batch 8 = 12 optimizer steps per epoch, 3 epochs; dropout on so the RNG matters
BASE = ["debug=tiny", "logger=none", "task.max_train_samples=96", "task.max_eval_samples=32", "task.batch_size=8",
        "trainer.max_epochs=3", "adapter.dropout=0.1"]
STOP = "+callbacks.stop._target_=tests.resume.signal_at.SignalAt"


def tiny_cfg(*extra: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=[*BASE, *extra])


def adapter_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


def result(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "result.json").read_text())


def assert_same_outcome(ref_dir: Path, run_dir: Path) -> None:
    """Final metrics, curve, step count and adapter weights equal, bit for bit."""
    ref, run = result(ref_dir), result(run_dir)
    assert run["status"] == ref["status"] == "success"
    assert run["optimizer_steps"] == ref["optimizer_steps"]
    assert run["curve"] == ref["curve"]
    assert run["metrics"] == ref["metrics"]
    a, b = adapter_tensors(ref_dir), adapter_tensors(run_dir)
    assert set(a) == set(b)
    diff = {k: float((a[k] - b[k]).abs().max()) for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"adapter tensors differ: {diff}"


def train_cli(argv: list[str]) -> int:
    """``lora-lab train ARGV`` in-process (Hydra's entry point, `cli_main`); returns the exit status."""
    import sys

    saved = sys.argv
    sys.argv = ["lora-lab train", *argv]
    try:
        cli_main(argv)
        return 0
    except SystemExit as stop:
        return int(stop.code or 0)
    finally:
        sys.argv = saved
