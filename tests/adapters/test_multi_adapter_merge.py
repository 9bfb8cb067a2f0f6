"""Weighted multi-adapter merging (task arithmetic) of saved LoRA-family adapters."""

from __future__ import annotations

import copy

import pytest
import torch

from lora_lab.adapters.compose import adapter_deltas, merge_adapters
from lora_lab.adapters.io import load_adapter, save_adapter
from lora_lab.errors import ConfigError

from tests.adapters.peft_helpers import base_model, ours_on
from tests.helpers import token_batch, train_classifier

KIND = "gpt2"  # Conv1D: the [in, out] layout is where merge bugs hide


def saved(tmp_path, name, method, init, seed, targets=None, backbone="tiny", family=None):
    """Train an adapter two steps from the shared base and save it; returns its directory."""
    model = base_model(KIND).train()
    torch.manual_seed(seed)
    extra = {"targets": targets} if targets else {}
    m = ours_on(model, KIND, method=method, r=4, alpha=6.0, init=init, **extra)
    train_classifier(model, steps=2, lr=2e-2, seed=seed)
    record = {"name": backbone, **({"family": family, "num_labels": 2} if family else {})}
    return save_adapter(tmp_path / name, model, m, backbone=record)


def loaded_and_merged(path):
    """The reference: load one adapter onto a fresh base and merge it with the layer's own merge."""
    model = base_model(KIND)
    method = load_adapter(path, model)
    method.merge()
    return model, method


def weights(model, names):
    out = {}
    for n in names:
        module = model.get_submodule(n)
        module = getattr(module, "base_layer", module)
        out[n] = module.weight.detach().clone()
    return out


@pytest.mark.parametrize("method,init", [("lora", "kaiming"), ("dora", "kaiming"), ("lora", "pissa"), ("dora", "olora")])
def test_single_adapter_weight_one_equals_merging_it(tmp_path, method, init):
    path = saved(tmp_path, "a", method, init, seed=1)
    ref, ref_method = loaded_and_merged(path)
    model = base_model(KIND)
    report = merge_adapters(model, [(path, 1.0)], head_from=0)
    names = list(ref_method.layers)
    assert sorted(report.modules) == sorted(names)
    for n, w in weights(model, names).items():
        torch.testing.assert_close(w, weights(ref, [n])[n], rtol=0, atol=1e-5)
    x = token_batch(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(input_ids=x).logits, ref.eval()(input_ids=x).logits, rtol=0, atol=1e-5)


def test_weighted_sum_of_deltas(tmp_path):
    a = saved(tmp_path, "a", "lora", "kaiming", seed=1)
    b = saved(tmp_path, "b", "dora", "pissa", seed=2)
    c = saved(tmp_path, "c", "lora", "kaiming", seed=3, targets=["c_fc"])  # disjoint modules
    base = base_model(KIND)
    w0 = {n: (m.weight.detach().T.clone()) for n, m in base.named_modules() if n.endswith(("c_attn", "c_proj", "c_fc"))}
    deltas = []
    for path in (a, b, c):  # each delta from its own reference merge: W_merged - W (in [out, in])
        ref, ref_method = loaded_and_merged(path)
        deltas.append({n: weights(ref, [n])[n].T - w0[n] for n in ref_method.layers})
    model = base_model(KIND)
    report = merge_adapters(model, [(a, 0.5), (b, -1.5), (c, 2.0)], head_from="none")
    assert report.modules["transformer.h.0.attn.c_attn"] == 2 and report.modules["transformer.h.0.mlp.c_fc"] == 1
    for n in w0:
        expected = w0[n] + sum(w * d[n] for w, d in zip((0.5, -1.5, 2.0), deltas) if n in d)
        torch.testing.assert_close(model.get_submodule(n).weight.T, expected, rtol=0, atol=1e-5)
    # the DoRA delta is not the LoRA product: it includes the magnitude rescaling of W
    _, dora_deltas = adapter_deltas(base_model(KIND), b)
    ref_b, ref_b_method = loaded_and_merged(b)
    layer = ref_b_method.layers["transformer.h.0.attn.c_attn"]
    lora_part = layer.scaling * (layer.lora_B @ layer.lora_A - layer.lora_B0 @ layer.lora_A0)
    assert (dora_deltas["transformer.h.0.attn.c_attn"] - lora_part).abs().max() > 1e-4


def test_bad_inputs_are_config_errors(tmp_path):
    a = saved(tmp_path, "a", "lora", "kaiming", seed=1)
    other = saved(tmp_path, "o", "lora", "kaiming", seed=2, backbone="another")
    model = base_model(KIND)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match="compose.adapters: needs at least one"):
        merge_adapters(model, [])
    with pytest.raises(ConfigError, match="compose.weights"):
        merge_adapters(model, [(a, float("nan"))])
    with pytest.raises(ConfigError, match="compose.adapters: adapters were trained on different backbones"):
        merge_adapters(model, [(a, 1.0), (other, 1.0)])
    with pytest.raises(ConfigError, match="compose.head_from"):
        merge_adapters(model, [(a, 1.0)], head_from=1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing was written
    load_adapter(a, model)
    with pytest.raises(ConfigError, match="compose.model: .* is LoraLayer; merge adapters into a bare base model"):
        merge_adapters(model, [(a, 1.0)])


def test_cli_merge_adapters_loads_the_recorded_base(tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    from lora_lab import cli

    base_model(KIND).save_pretrained(tmp_path / "base")
    a = saved(tmp_path, "a", "lora", "kaiming", seed=1, backbone=str(tmp_path / "base"), family="classification")
    b = saved(tmp_path, "b", "dora", "kaiming", seed=2, backbone=str(tmp_path / "base"), family="classification")
    assert cli.main(["merge-adapters", str(tmp_path / "merged"), f"{a}=0.5", f"{b}=2", "--head-from", "1"]) == 0
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    expected = base_model(KIND)
    merge_adapters(expected, [(a, 0.5), (b, 2.0)], head_from=1)
    x = token_batch(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=x).logits, expected.eval()(input_ids=x).logits, rtol=0, atol=1e-6)
    assert cli.main(["merge-adapters", str(tmp_path / "m2"), f"{a}=x"]) == 2
    assert "error: compose.weights: " in capsys.readouterr().err
