"""PiSSA (exact / randomised SVD) and OLoRA inits (docs/algorithms/pissa.md): reconstruction, spectrum,
orthogonality, identity at init, PEFT parity, dtype guard, save/load of the residual."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_lab.adapters.dora import DoraLayer
from lora_lab.adapters.io import load_adapter, save_adapter
from lora_lab.adapters.lora import LoraLayer
from lora_lab.errors import ConfigError

from tests.adapters.peft_helpers import base_model, ours_on, peft_layer, peft_on
from tests.helpers import token_batch

MUTATING = ["pissa", "pissa_niter_4", "olora"]


def linear(out_f=24, in_f=40, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(in_f, out_f)
    with torch.no_grad():  # a spread-out spectrum, so that the top-r singular vectors are well defined
        u, _, vh = torch.linalg.svd(torch.randn(out_f, in_f), full_matrices=False)
        lin.weight.copy_(u @ torch.diag(torch.logspace(0, -2, min(out_f, in_f))) @ vh)
    return lin


def conv1d_like(lin: nn.Linear) -> Conv1D:
    conv = Conv1D(lin.out_features, lin.in_features)
    with torch.no_grad():
        conv.weight.copy_(lin.weight.T)
        conv.bias.copy_(lin.bias)
    return conv


def init_layer(base, init, r=4, alpha=7.0, cls=LoraLayer, rslora=False):
    layer = cls(base, r=r, alpha=alpha, init=init, rslora=rslora)
    layer.reset_from_base()
    return layer


@pytest.mark.parametrize("init", MUTATING)
@pytest.mark.parametrize("conv", [False, True])
def test_residual_plus_adapter_reconstructs_w(init, conv):
    lin = linear()
    w = lin.weight.detach().clone()
    torch.manual_seed(0)
    layer = init_layer(conv1d_like(lin) if conv else lin, init)
    assert layer.mutates_base
    w_res = layer.base_weight().detach()
    assert not torch.allclose(w_res, w, atol=1e-3)  # the base really holds a residual
    err = (w_res + layer.delta_weight() - w).abs().max() / w.abs().max()
    assert err < 1e-5
    torch.testing.assert_close(layer.lora_A0, layer.lora_A.detach(), rtol=0, atol=0)
    torch.testing.assert_close(layer.lora_B0, layer.lora_B.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("rslora", [False, True])
def test_pissa_spectrum_with_alpha_not_r(rslora):
    lin = linear()
    w = lin.weight.detach().double()
    layer = init_layer(lin, "pissa", r=4, alpha=7.0, rslora=rslora)  # s != 1: a forgotten 1/s shows
    s_w = torch.linalg.svdvals(w)
    s_adapter = torch.linalg.svdvals(layer.delta_weight().double())[:4]
    s_res = torch.linalg.svdvals(layer.base_weight().detach().double())[: s_w.numel() - 4]
    torch.testing.assert_close(s_adapter, s_w[:4], rtol=1e-5, atol=0)
    torch.testing.assert_close(s_res, s_w[4:], rtol=1e-4, atol=1e-6)
    # A rows and B columns are orthogonal, with B^T B = A A^T = diag(S_r / s)
    expected = torch.diag(s_w[:4] / layer.scaling)
    torch.testing.assert_close((layer.lora_B.T @ layer.lora_B).double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close((layer.lora_A @ layer.lora_A.T).double(), expected, rtol=1e-5, atol=1e-6)


def test_pissa_niter_is_seeded_and_close_to_exact():
    lin = linear()
    torch.manual_seed(5)
    a = init_layer(copy.deepcopy(lin), "pissa_niter_4")
    torch.manual_seed(5)
    b = init_layer(copy.deepcopy(lin), "pissa_niter_4")
    torch.manual_seed(6)
    c = init_layer(copy.deepcopy(lin), "pissa_niter_4")
    exact = init_layer(copy.deepcopy(lin), "pissa")
    torch.testing.assert_close(a.lora_A, b.lora_A, rtol=0, atol=0)
    assert not torch.equal(a.lora_A, c.lora_A)
    s_exact = torch.linalg.svdvals(exact.delta_weight())
    torch.testing.assert_close(torch.linalg.svdvals(a.delta_weight())[:4], s_exact[:4], rtol=1e-3, atol=0)


@pytest.mark.parametrize("conv", [False, True])
def test_olora_is_the_qr_of_the_out_in_weight(conv):
    lin = linear()
    q, r = torch.linalg.qr(lin.weight.detach())
    layer = init_layer(conv1d_like(lin) if conv else lin, "olora")
    torch.testing.assert_close(layer.lora_B.detach(), q[:, :4], rtol=0, atol=1e-6)
    torch.testing.assert_close(layer.lora_A.detach(), r[:4], rtol=0, atol=1e-6)
    torch.testing.assert_close(layer.lora_B.T @ layer.lora_B, torch.eye(4), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("init", MUTATING)
def test_model_output_at_init_equals_base(kind, method, init):
    base = base_model(kind)
    model = copy.deepcopy(base)
    m = ours_on(model, kind, method=method, r=4, alpha=7.0, init=init)
    x = token_batch()
    base.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=x).logits, base(input_ids=x).logits, rtol=0, atol=1e-5)
        # disable() gives the residual model, not the original one (documented PiSSA/OLoRA behaviour)
        for layer in m.layers.values():
            layer.disable()
        assert (model(input_ids=x).logits - base(input_ids=x).logits).abs().max() > 1e-3


@pytest.mark.parametrize("kind,init", [("bert", "pissa"), ("gpt2", "pissa"), ("bert", "pissa_niter_3"), ("gpt2", "pissa_niter_3"), ("bert", "olora")])
def test_init_equals_peft(kind, init, monkeypatch):
    """Same A, B and residual as PEFT (OLoRA only on nn.Linear: PEFT factorises Conv1D's [in, out] weight).
    PEFT draws its own kaiming init before the SVD, so the randomised SVD is re-seeded per call in both."""
    import peft.tuners.lora.layer as peft_lora_layer

    real = torch.svd_lowrank
    calls = []

    def seeded(*args, **kwargs):
        calls.append(1)
        torch.manual_seed(1000 + len(calls) % 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "svd_lowrank", seeded)
    monkeypatch.setattr(peft_lora_layer, "svd_lowrank", seeded)
    base = base_model(kind)
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    m = ours_on(ours, kind, method="lora", r=4, alpha=7.0, init=init)
    n_ours = len(calls)
    calls.clear()
    p = peft_on(theirs, kind, r=4, lora_alpha=7.0, init_lora_weights=init)
    assert len(calls) == n_ours == (len(m.layers) if "niter" in init else 0)
    for name, layer in m.layers.items():
        pl = peft_layer(p, name)
        torch.testing.assert_close(layer.lora_A, pl.lora_A["default"].weight, rtol=0, atol=1e-6)
        torch.testing.assert_close(layer.lora_B, pl.lora_B["default"].weight, rtol=0, atol=1e-6)
        torch.testing.assert_close(layer.base_layer.weight, pl.base_layer.weight, rtol=0, atol=1e-6)


def test_non_float_base_and_too_large_rank_are_config_errors():
    lin = linear(out_f=6, in_f=8)
    lin.weight = nn.Parameter(torch.zeros(6, 8, dtype=torch.int8), requires_grad=False)
    for init in MUTATING:
        with pytest.raises(ConfigError, match="adapter.init: .*float32/float16/bfloat16 base weight, got torch.int8"):
            init_layer(lin, init)
    with pytest.raises(ConfigError, match=r"adapter.r: 7 exceeds min\(in, out\) = 6"):
        init_layer(linear(out_f=6, in_f=8), "pissa", r=7)


def test_bf16_base_keeps_a_close_residual():
    lin = linear().to(torch.bfloat16)
    w = lin.weight.detach().float().clone()
    layer = init_layer(lin, "pissa")
    assert lin.weight.dtype == torch.bfloat16 and layer.lora_A.dtype == torch.float32
    err = (layer.base_weight().float() + layer.delta_weight() - w).abs().max() / w.abs().max()
    assert err < 1e-2  # the residual is rounded to bf16 when stored: close, not exact


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_save_load_round_trip_restores_residual(tmp_path, method):
    kind = "gpt2"
    base = base_model(kind)
    model = copy.deepcopy(base).train()
    m = ours_on(model, kind, method=method, r=4, alpha=7.0, init="pissa_niter_2", dropout=0.1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = token_batch()
    for _ in range(2):
        torch.nn.functional.cross_entropy(model(input_ids=x).logits, torch.tensor([0, 1, 1])).backward()
        opt.step()
        opt.zero_grad()
    save_adapter(tmp_path, model, m)
    fresh = copy.deepcopy(base)
    loaded = load_adapter(tmp_path, fresh)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=0)
    name = next(iter(loaded.layers))
    torch.testing.assert_close(loaded.layers[name].lora_A0, m.layers[name].lora_A0, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="unmerge"):
        m.merge()
        save_adapter(tmp_path / "merged", model, m)


def test_dora_magnitude_after_pissa_is_the_original_row_norm():
    lin = linear()
    w = lin.weight.detach().clone()
    layer = init_layer(lin, "pissa", cls=DoraLayer)
    torch.testing.assert_close(layer.magnitude, w.norm(dim=1), rtol=1e-5, atol=1e-6)
