"""Export to PEFT format: train a few steps, export (from a run dir and in memory), reload with
``PeftModel.from_pretrained`` on the ORIGINAL base and compare logits; key layout equals PEFT's own."""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest
import torch
from safetensors.torch import load_file

from lora_lab.adapters.io import save_adapter
from lora_lab.adapters.peft_export import export_adapter_to_peft, export_run
from lora_lab.errors import ConfigError

from tests.adapters.peft_helpers import base_model, ours_on, peft_on
from tests.helpers import token_batch

pytest.importorskip("peft")

# the plain round trip of every method x init is in the contract table (tests/contract); here the
# rank-2r conversion of the base-mutating inits and its config fields
CASES = [  # (method, init, rslora)
    ("lora", "pissa", False),
    ("lora", "olora", False),
    ("dora", "pissa_niter_2", False),
    ("lora", "pissa", True),
]


def trained(kind, method, init, rslora, steps=3):
    """``(original_base, trained_model, method)``: a few AdamW steps so every adapter tensor moves."""
    base = base_model(kind)
    model = copy.deepcopy(base).train()
    m = ours_on(model, kind, method=method, r=4, alpha=6.0, init=init, rslora=rslora, dropout=0.1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    x, y = token_batch(batch=4, seed=1), torch.tensor([0, 1, 1, 0])
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(input_ids=x).logits, y).backward()
        opt.step()
        opt.zero_grad()
    return base.eval(), model.eval(), m


def load_peft(base, out_dir):
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PeftModel.from_pretrained(copy.deepcopy(base), str(out_dir)).eval()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("method,init,rslora", CASES)
def test_export_run_round_trip_on_original_base(tmp_path, kind, method, init, rslora):
    base, model, m = trained(kind, method, init, rslora)
    run_dir = tmp_path / "run"
    save_adapter(run_dir / "adapter", model, m, backbone={"name": f"tiny-{kind}", "family": "classification", "num_labels": 2})
    out = export_run(run_dir, "peft", tmp_path / "peft")
    peft_model = load_peft(base, out)
    x = token_batch(batch=5, seed=2)
    with torch.no_grad():
        ours, theirs, bare = model(input_ids=x).logits, peft_model(input_ids=x).logits, base(input_ids=x).logits
        with peft_model.disable_adapter():
            head_only = peft_model(input_ids=x).logits  # original base + our trained head
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)
    assert (ours - head_only).abs().max() > 1e-2  # the exported adapters matter, not only the head
    assert (ours - bare).abs().max() > 1e-2
    for layer in peft_model.modules():  # PEFT's base is the original one, not our residual
        if hasattr(layer, "base_layer") and hasattr(layer, "lora_A"):
            name = next(n for n, mod in peft_model.base_model.model.named_modules() if mod is layer)
            torch.testing.assert_close(layer.base_layer.weight, base.get_submodule(name).weight, rtol=0, atol=0)
    config = json.loads((out / "adapter_config.json").read_text())
    factor = 2 if m.layers[next(iter(m.layers))].mutates_base else 1
    assert config["r"] == 4 * factor and config["use_dora"] == (method == "dora")
    expected_alpha = 6.0 * (math.sqrt(2) if rslora else 2) if factor == 2 else 6.0
    assert config["lora_alpha"] == pytest.approx(expected_alpha) and config["init_lora_weights"] is True
    assert config["task_type"] == "SEQ_CLS" and config["base_model_name_or_path"] == f"tiny-{kind}"
    assert json.loads((out / "lora_lab_export.json").read_text())["rank_2r_conversion"] == (factor == 2)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "dora"])
def test_key_layout_equals_peft_save_pretrained(tmp_path, kind, method):
    _, model, m = trained(kind, method, "kaiming", False, steps=0)
    export_adapter_to_peft(model, m, tmp_path / "ours", base_model_name=f"tiny-{kind}")
    reference = peft_on(base_model(kind), kind, r=4, lora_alpha=6.0, use_dora=method == "dora")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.save_pretrained(str(tmp_path / "ref"))
    ours = load_file(str(tmp_path / "ours" / "adapter_model.safetensors"))
    ref = load_file(str(tmp_path / "ref" / "adapter_model.safetensors"))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_in_memory_export_matches_and_refuses_merged(tmp_path):
    base, model, m = trained("gpt2", "dora", "olora", False)
    out = export_adapter_to_peft(model, m, tmp_path / "p", base_model_name="tiny-gpt2")
    x = token_batch(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(load_peft(base, out)(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=1e-4)
    m.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        export_adapter_to_peft(model, m, tmp_path / "q")


def test_cli_export(tmp_path, capsys):
    from lora_lab import cli

    base, model, m = trained("bert", "lora", "pissa", False)
    save_adapter(tmp_path / "run" / "adapter", model, m, backbone={"name": "tiny-bert", "family": "classification"})
    assert cli.main(["export", str(tmp_path / "run"), "--format", "peft", str(tmp_path / "out")]) == 0
    x = token_batch(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(load_peft(base, tmp_path / "out")(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=1e-4)
    assert cli.main(["export", str(tmp_path / "run"), "--format", "onnx", str(tmp_path / "o2")]) == 2
    assert "error: export.format: unknown format 'onnx'; allowed: peft" in capsys.readouterr().err


def test_export_run_errors(tmp_path):
    with pytest.raises(ConfigError, match="export.format: unknown format 'gguf'; allowed: peft"):
        export_run(tmp_path, "gguf", tmp_path / "out")
    with pytest.raises(ConfigError, match="export.run_dir: .* holds no lora_lab adapter"):
        export_run(tmp_path, "peft", tmp_path / "out")
