"""LoRA layer behaviour: scaling, inits, dropout placement, merge/unmerge on a layer (the generic contract
over methods and backbones is in tests/contract)."""

import math

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_lab.adapters.lora import LoraLayer
from tests.helpers import attach, perturb_adapters, tiny_bert, token_batch


def test_scaling_and_rslora():
    lin = nn.Linear(20, 12)
    assert LoraLayer(lin, r=4, alpha=8).scaling == 2.0
    assert LoraLayer(nn.Linear(20, 12), r=4, alpha=8, rslora=True).scaling == 4.0
    # output of the update scales with s: same A, B, doubling alpha doubles the delta
    a = LoraLayer(nn.Linear(20, 12), r=4, alpha=8)
    b = LoraLayer(nn.Linear(20, 12), r=4, alpha=16)
    for l in (a, b):
        l.reset_from_base()
    with torch.no_grad():
        b.lora_A.copy_(a.lora_A)
        a.lora_B.normal_()
        b.lora_B.copy_(a.lora_B)
    torch.testing.assert_close(b.delta_weight(), 2 * a.delta_weight())


def test_kaiming_bound_and_gaussian_std():
    torch.manual_seed(0)
    layer = LoraLayer(nn.Linear(256, 64), r=16, alpha=16, init="kaiming")
    layer.reset_from_base()
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(256)
    assert layer.lora_A.abs().max() > 0.9 / math.sqrt(256)  # uniform fills the interval
    assert torch.count_nonzero(layer.lora_B) == 0
    g = LoraLayer(nn.Linear(2048, 64), r=16, alpha=16, init="gaussian")
    g.reset_from_base()
    assert abs(g.lora_A.std().item() - 1 / 16) < 0.003  # std 1/r, not 1/sqrt(r)
    assert torch.count_nonzero(g.lora_B) == 0


def test_dropout_only_on_adapter_branch():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    layer = LoraLayer(base, r=4, alpha=4, dropout=0.5)
    layer.reset_from_base()
    x = torch.randn(5, 16)
    layer.train()
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)  # B == 0: dropout cannot leak into base path
    with torch.no_grad():
        layer.lora_B.normal_()
    layer.eval()
    expected = base(x) + layer.scaling * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("base_factory", [lambda: nn.Linear(20, 12), lambda: Conv1D(12, 20)], ids=["linear", "conv1d"])
def test_merge_equals_unmerged_and_unmerge_restores(base_factory):
    torch.manual_seed(0)
    base = base_factory()
    w0 = base.weight.detach().clone()
    layer = LoraLayer(base, r=4, alpha=8, init="kaiming")
    layer.reset_from_base()
    with torch.no_grad():
        layer.lora_B.normal_()
    assert (layer.in_features, layer.out_features) == (20, 12)
    x = torch.randn(6, 20)
    unmerged = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), unmerged, rtol=1e-6, atol=1e-6)  # fp32 rounding only
    layer.unmerge()
    torch.testing.assert_close(base.weight, w0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(layer(x), unmerged, rtol=1e-6, atol=1e-6)


def test_merge_not_tied_to_train_eval_and_double_merge_refused():
    layer = LoraLayer(nn.Linear(8, 8), r=2, alpha=2)
    layer.reset_from_base()
    layer.merge()
    layer.train()
    layer.eval()
    assert layer.merged
    with pytest.raises(RuntimeError):
        layer.merge()
    with pytest.raises(RuntimeError):
        layer.disable()


def test_disable_gives_base_output():
    model = tiny_bert()
    x = token_batch()
    ref = model(x).logits
    method, _ = attach(model, "bert", r=4, alpha=8)
    perturb_adapters(method)
    from lora_lab.adapters import adapters_disabled

    with adapters_disabled(method.layers.values()):
        torch.testing.assert_close(model(x).logits, ref, rtol=0, atol=0)
    assert not torch.allclose(model(x).logits, ref)


def test_bf16_autocast_keeps_adapter_fp32():
    model = tiny_bert()
    method, _ = attach(model, "bert", r=4, alpha=8)
    perturb_adapters(method)
    x = token_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x).logits
    assert all(p.dtype == torch.float32 for l in method.layers.values() for _, p in l.adapter_parameters())
    torch.testing.assert_close(out.float(), model(x).logits, rtol=0.05, atol=0.05)
