"""The GPU-cluster path, exercised on CPU: bf16 autocast (adapters stay fp32). The 2-process gloo DDP
run through `trainer=ddp` is in test_ddp_cli.py."""

import json

import pytest
import torch

from tests.integration.test_train_cli import run_train

TINY = ["debug=tiny", "task.max_train_samples=64", "task.max_eval_samples=32", "trainer.max_epochs=1", "task.batch_size=8"]


@pytest.mark.slow
def test_bf16_mixed_on_cpu(tmp_path):
    proc = run_train(tmp_path, *TINY, "trainer.precision=bf16-mixed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((tmp_path / "runs").rglob("result.json")).parent
    record = json.loads((run / "result.json").read_text())
    assert record["status"] == "success" and record["config"]["trainer"]["precision"] == "bf16-mixed"
    from safetensors.torch import load_file

    tensors = load_file(str(run / "adapter/adapter_model.safetensors"))
    assert all(t.dtype == torch.float32 for k, t in tensors.items() if k.endswith(("lora_A", "lora_B")))
    assert any(torch.count_nonzero(t) > 0 for k, t in tensors.items() if k.endswith("lora_B"))
