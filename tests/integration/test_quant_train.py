"""QPiSSA through the entry point as users run it: ``backbone.quantize=nf4 adapter=pissa``, the
quantisation record in result.json, a reload onto a freshly quantised base, a full-precision merge.
One bad value first: one line before anything loads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["debug=tiny", "task.max_train_samples=64", "task.max_eval_samples=16", "trainer.max_epochs=1", "optim.lr=0.01"]


def lora_lab(tmp_path, *args):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_qpissa_run_records_errors_reloads_and_merges_in_full_precision(tmp_path):
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from lora_lab.adapters.io import load_adapter
    from lora_lab.adapters.quant import is_quantized

    bad = lora_lab(tmp_path, "train", *TINY, "backbone.quantize=int4")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "error: backbone.quantize: 'int4'; allowed: null, nf4, fp4, int8"

    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    BertForSequenceClassification(
        BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
    ).save_pretrained(base_dir)
    proc = lora_lab(tmp_path, "train", *TINY, f"backbone.name={base_dir}", "backbone.random_init=null", "backbone.quantize=nf4", "adapter=pissa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "runs").rglob("result.json")).parent
    assert "-nf4/" in str(run_dir)  # never the run directory of the full-precision twin
    quant = json.loads((run_dir / "result.json").read_text())["quantization"]
    assert quant["quant_type"] == "nf4" and quant["double_quant"] is True and quant["kept_full_precision"] == ["classifier"]
    assert 0 < quant["weight_error_with_adapter_init"] < quant["weight_error_qlora"] < 0.5
    assert set(quant["weight_error_per_module"]) == set(json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["adapted_modules"])

    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2).eval()
    method = load_adapter(run_dir / "adapter", model)
    assert all(is_quantized(layer.base_layer) for layer in method.layers.values())
    x = torch.randint(1, 1000, (3, 9))
    with torch.no_grad():
        adapted = model(input_ids=x).logits

    merged = lora_lab(tmp_path, "merge-adapters", str(tmp_path / "merged"), str(run_dir / "adapter"))
    assert merged.returncode == 0, merged.stderr[-3000:]
    full = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert not any(is_quantized(m) for m in full.modules())
    # the original full-precision weights plus the adapter (its saved residual, dequantised): the same model
    # as loading the adapter without quantising the base; the quantised one differs by the other layers' error
    reference = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2).eval()
    load_adapter(run_dir / "adapter", reference, quantize=False)
    with torch.no_grad():
        merged_logits, reference_logits = full(input_ids=x).logits, reference(input_ids=x).logits
    torch.testing.assert_close(merged_logits, reference_logits, rtol=0, atol=1e-5)
    assert 1e-5 < (merged_logits - adapted).abs().max() < 0.05
