"""DoRA layer specifics (docs/algorithms/dora.md): norm axis, identity at init in train mode, eval identity,
detached-norm gradients, dropout semantics, the merged weight, the norm identity (never cached: a
``.data`` edit is seen) and its fixed-shape cancellation correction. The generic contract (identity,
merge/unmerge, save/load, counts, PEFT) is in tests/contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_lab.adapters import dora as dora_module
from lora_lab.adapters.dora import DoraLayer

from tests.adapters.peft_helpers import paired
from tests.helpers import token_batch


def make_linear(out_f=12, in_f=20, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, bias=bias)


def conv1d_like(linear: nn.Linear) -> Conv1D:
    """A GPT-2 Conv1D computing the same map as ``linear`` (weight stored transposed)."""
    conv = Conv1D(linear.out_features, linear.in_features)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.T)
        conv.bias.copy_(linear.bias)
    return conv


def dora(base, r=4, alpha=6.0, dropout=0.0, perturb=True, seed=1):
    layer = DoraLayer(base, r=r, alpha=alpha, dropout=dropout)
    layer.reset_from_base()
    if perturb:  # a trained-looking adapter: B != 0, m != ||W0 + sBA||
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.3)
            layer.magnitude.mul_(1.0 + 0.2 * torch.rand(layer.magnitude.shape, generator=g))
    return layer


def reference_eval(layer: DoraLayer, w0: torch.Tensor, b0: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``(m / ||W0 + sBA||_row)[:, None] * (W0 + sBA) @ x + b0`` in float64."""
    v = w0.double() + layer.scaling * (layer.lora_B.double() @ layer.lora_A.double())
    w = (layer.magnitude.double() / v.norm(dim=1))[:, None] * v
    out = x.double() @ w.T
    return out + b0.double() if b0 is not None else out


def test_norm_axis_is_per_output_row_and_conv1d_agrees():
    lin = make_linear()
    a, b = DoraLayer(lin, r=4, alpha=8), DoraLayer(conv1d_like(lin), r=4, alpha=8)
    torch.manual_seed(3)
    a.reset_from_base()
    torch.manual_seed(3)
    b.reset_from_base()
    assert a.magnitude.shape == (12,) == b.magnitude.shape
    torch.testing.assert_close(a.magnitude, lin.weight.norm(dim=1), rtol=0, atol=1e-6)
    torch.testing.assert_close(b.magnitude, a.magnitude, rtol=0, atol=1e-6)
    assert not torch.allclose(a.magnitude[:12], lin.weight.norm(dim=0)[:12])


@pytest.mark.parametrize("conv", [False, True])
def test_identity_at_init(conv):
    lin = make_linear()
    base = conv1d_like(lin) if conv else lin
    layer = DoraLayer(base, r=4, alpha=8, dropout=0.1)
    layer.reset_from_base()
    x = torch.randn(5, 20)
    for mode in (True, False):
        layer.train(mode)
        torch.testing.assert_close(layer(x), base(x), rtol=0, atol=1e-6)


def test_gaussian_init_is_lora_at_init_not_base():
    torch.manual_seed(0)
    lin = make_linear()
    layer = DoraLayer(lin, r=4, alpha=8, init="gaussian")
    layer.reset_from_base()
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.magnitude.copy_(layer.direct_weight_norm())  # re-init m for this B: g == 1
    x = torch.randn(5, 20)
    lora = lin(x) + layer.lora_output(x)
    torch.testing.assert_close(layer(x), lora, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(layer(x), lin(x), atol=1e-3)


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_eval_forward_matches_weight_decomposition(conv, bias):
    lin = make_linear(bias=bias)
    w0, b0 = lin.weight.detach().clone(), (lin.bias.detach().clone() if bias else None)
    base = conv1d_like(lin) if (conv and bias) else lin
    layer = dora(base, dropout=0.2).eval()
    x = torch.randn(3, 5, 20)
    torch.testing.assert_close(layer(x).double(), reference_eval(layer, w0, b0, x), rtol=1e-5, atol=1e-5)


def test_train_dropout_semantics_match_peft_formula():
    """h = W0 x + b0 + (g - 1) * W0 x~ + g * s B A x~ with the same dropout mask x~."""
    lin = make_linear()
    layer = dora(lin, dropout=0.5).train()
    x = torch.randn(4, 20)
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    x_d = torch.nn.functional.dropout(x, 0.5, training=True)
    g = layer.magnitude / (lin.weight + layer.scaling * layer.lora_B @ layer.lora_A).norm(dim=1)
    expected = lin(x) + (g - 1) * (x_d @ lin.weight.T) + g * (x_d @ (layer.scaling * layer.lora_B @ layer.lora_A).T)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # and it is *not* the "dropout the whole input" variant g * V x~ + b0
    v = lin.weight + layer.scaling * layer.lora_B @ layer.lora_A
    assert not torch.allclose(out, (g[:, None] * v @ x_d.T).T + lin.bias, atol=1e-3)


def test_gradients_treat_the_norm_as_a_constant():
    lin = make_linear()
    layer = dora(lin).train()
    x = torch.randn(6, 20)
    target = torch.randn(6, 12)
    ((layer(x) - target) ** 2).sum().backward()
    ours = {n: p.grad.clone() for n, p in layer.adapter_parameters()}

    def reference(detach: bool):
        a, b, m = (p.detach().clone().requires_grad_(True) for p in (layer.lora_A, layer.lora_B, layer.magnitude))
        v = lin.weight + layer.scaling * b @ a
        norm = v.norm(dim=1)
        norm = norm.detach() if detach else norm
        out = x @ ((m / norm)[:, None] * v).T + lin.bias
        ((out - target) ** 2).sum().backward()
        return {"lora_A": a.grad, "lora_B": b.grad, "magnitude": m.grad}

    detached, attached = reference(True), reference(False)
    for name in ours:
        torch.testing.assert_close(ours[name], detached[name], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours["lora_B"], attached["lora_B"], atol=1e-4)


@pytest.mark.parametrize("conv", [False, True])
def test_norm_identity_equals_direct_norm(conv):
    lin = make_linear(out_f=24, in_f=40)
    layer = dora(conv1d_like(lin) if conv else lin, r=6)
    torch.testing.assert_close(layer.weight_norm(), layer.direct_weight_norm(), rtol=1e-6, atol=1e-6)


def test_norm_identity_recomputes_cancelling_rows():
    """A row where s B_i A nearly equals -W_i (1e-3 of its norm left) is recomputed directly: the fp32
    expansion alone is off by O(1) there (checked: ~30% relative error)."""
    torch.manual_seed(0)
    lin = nn.Linear(16, 8, bias=False)
    layer = DoraLayer(lin, r=16, alpha=16.0)  # s = 1
    layer.reset_from_base()
    with torch.no_grad():
        a = torch.randn(16, 16)
        layer.lora_A.copy_(a)
        b = 0.1 * torch.randn(8, 16)
        b[0] = -(lin.weight[0].double() @ torch.linalg.inv(a.double())).float() * (1 - 1e-3)
        layer.lora_B.copy_(b)
    exact = (lin.weight.double() + layer.lora_B.double() @ layer.lora_A.double()).norm(dim=1)
    assert exact[0] < 2e-3 * lin.weight[0].norm()
    torch.testing.assert_close(layer.weight_norm().double(), exact, rtol=1e-3, atol=0)


def test_norm_follows_base_weight_changes_even_through_data():
    """``.data`` edits bypass the version counter: a cache keyed on it served the old norm (outputs
    off by 0.4); the norm is read from the weight at every call."""
    lin = make_linear()
    layer = dora(lin)
    first = layer.weight_norm().clone()
    layer.set_base_weight(lin.weight.detach() * 2.0)
    assert not torch.allclose(layer.weight_norm(), first)
    torch.testing.assert_close(layer.weight_norm(), layer.direct_weight_norm(), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        lin.weight.mul_(0.5)
    torch.testing.assert_close(layer.weight_norm(), first, rtol=1e-6, atol=1e-6)
    lin.weight.data.mul_(2)
    torch.testing.assert_close(layer.weight_norm(), layer.direct_weight_norm(), rtol=1e-6, atol=1e-6)
    x = torch.randn(3, 20)
    layer.eval()
    w = lin.weight.detach()
    formula = (layer.magnitude / layer.direct_weight_norm())[:, None] * (w + layer.scaling * layer.lora_B @ layer.lora_A)
    torch.testing.assert_close(layer(x), x @ formula.T + lin.bias, rtol=1e-5, atol=1e-5)


def test_norm_after_data_edit_equals_peft():
    pytest.importorskip("peft")
    ours, m, theirs = paired("bert", method="dora")
    ours.eval()
    theirs.eval()
    x = token_batch()
    with torch.no_grad():
        ours(input_ids=x)  # a first forward (where the old cache was filled)
        for name, layer in m.layers.items():
            layer.base_layer.weight.data.mul_(2)
            theirs.base_model.model.get_submodule(name).base_layer.weight.data.mul_(2)
        torch.testing.assert_close(ours(input_ids=x).logits, theirs(input_ids=x).logits, rtol=0, atol=1e-5)


def test_cancelling_rows_beyond_the_budget_are_counted():
    """The correction recomputes at most ``_CANCELLATION_BUDGET`` rows (fixed shape: no host sync);
    more cancelling rows are counted on the device and reported in the method summary."""
    torch.manual_seed(0)
    out = dora_module._CANCELLATION_BUDGET + 3
    lin = nn.Linear(out, out, bias=False)
    layer = DoraLayer(lin, r=out, alpha=float(out))  # s = 1, full rank: B A = -W cancels every row
    layer.reset_from_base()
    with torch.no_grad():
        layer.lora_A.copy_(torch.eye(out))
        layer.lora_B.copy_(-lin.weight * (1 - 1e-3))
    exact = (lin.weight.double() + layer.lora_B.double() @ layer.lora_A.double()).norm(dim=1)
    norm = layer.weight_norm().double()
    corrected = torch.isclose(norm, exact, rtol=1e-3, atol=0)
    assert int(corrected.sum()) == dora_module._CANCELLATION_BUDGET
    assert int(layer.rows_over_budget) == 3


@pytest.mark.parametrize("conv", [False, True])
def test_merge_equals_unmerged_and_unmerge_restores(conv):
    lin = make_linear()
    base = conv1d_like(lin) if conv else lin
    layer = dora(base).eval()
    w0 = base.weight.detach().clone()
    x = torch.randn(5, 20)
    unmerged = layer(x)
    layer.merge()
    assert not torch.allclose(base.weight, w0)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-5)
    # the merged weight is g * (W0 + sBA), row-wise in [out, in]
    torch.testing.assert_close(layer.base_weight(), layer.merged_weight(w0.T.float() if conv else w0.float()), rtol=0, atol=1e-6)
    layer.unmerge()
    torch.testing.assert_close(base.weight, w0, rtol=0, atol=1e-5)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-5)


def test_delta_weight_is_the_effective_update_merged_or_not():
    lin = make_linear()
    layer = dora(lin)
    w0 = lin.weight.detach().clone()
    delta = layer.delta_weight()
    layer.merge()
    torch.testing.assert_close(lin.weight - w0, delta, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer.delta_weight(), delta, rtol=0, atol=1e-5)
    layer.unmerge()


def test_low_precision_base_and_autocast_stay_close_to_fp32():
    lin = make_linear(out_f=48, in_f=64)
    layer = dora(lin).eval()
    x = torch.randn(5, 64)
    with torch.no_grad():
        ref = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = layer(x)
    assert auto.dtype == torch.bfloat16
    torch.testing.assert_close(auto.float(), ref, rtol=0, atol=3e-2 * float(ref.abs().max()))
    low = DoraLayer(lin.to(torch.bfloat16), r=4, alpha=6.0)
    with torch.no_grad():
        for name, p in layer.adapter_parameters():
            getattr(low, name).copy_(p)
    with torch.no_grad():
        out = low.eval()(x.bfloat16())
    assert out.dtype == torch.bfloat16 and low.magnitude.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=3e-2 * float(ref.abs().max()))
