"""AdaLoRA layer and config: init distribution, the fixed alpha / r_init scale, merge, regulariser, validation
(identity at init and the parameter count are in the contract table, tests/contract)."""

from __future__ import annotations

import pytest
import torch

from lora_lab.adapters import parse_config
from lora_lab.adapters.adalora import AdaLoraLayer, orthogonality_regularizer
from lora_lab.errors import ConfigError
from tests.adapters.adalora_utils import X, Y, bert_with_adalora, single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


def test_init_distribution_and_shapes():
    torch.manual_seed(0)
    layer = AdaLoraLayer(torch.nn.Linear(200, 300), r=16, alpha=8)
    layer.reset_from_base()
    assert layer.lora_A.shape == (16, 200) and layer.lora_E.shape == (16,) and layer.lora_B.shape == (300, 16)
    for p in (layer.lora_A, layer.lora_B):
        assert abs(p.std().item() - 0.02) < 0.001 and abs(p.mean().item()) < 0.001


def _perturbed(layer, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.lora_E.copy_(torch.randn(layer.r, generator=g))
    return layer


@pytest.mark.parametrize("conv1d", [False, True])
def test_delta_weight_scale_and_forward(conv1d):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    base = Conv1D(12, 20) if conv1d else torch.nn.Linear(20, 12)  # in=20, out=12 either way
    layer = AdaLoraLayer(base, r=5, alpha=10)
    layer.reset_from_base()
    _perturbed(layer)
    scale = 10 / (5 + 1e-5)
    expected = layer.lora_B @ torch.diag(layer.lora_E) @ layer.lora_A * scale
    torch.testing.assert_close(layer.delta_weight(), expected, rtol=1e-6, atol=1e-7)
    x = torch.randn(3, 20)
    w0 = base.weight.T if conv1d else base.weight
    torch.testing.assert_close(layer(x), x @ (w0 + expected).T + base.bias, rtol=1e-5, atol=1e-6)
    # merge / unmerge round trip
    before = layer(x)
    w_before = base.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), before, rtol=1e-5, atol=1e-6)
    layer.unmerge()
    torch.testing.assert_close(base.weight, w_before, rtol=0, atol=1e-6)


def test_scale_is_unchanged_by_masking():
    layer = AdaLoraLayer(torch.nn.Linear(8, 8), r=4, alpha=8)
    layer.reset_from_base()
    _perturbed(layer)
    scale_before = layer.scaling
    keep = torch.tensor([True, False, True, False])
    layer.set_rank_mask(keep)
    assert layer.scaling == scale_before == pytest.approx(8 / 4, rel=1e-5)
    assert torch.equal(layer.lora_E != 0, keep)
    expected = layer.lora_B[:, keep] @ torch.diag(layer.lora_E[keep]) @ layer.lora_A[keep] * 8 / (4 + 1e-5)
    torch.testing.assert_close(layer.delta_weight(), expected, rtol=1e-6, atol=1e-8)


def test_dropout_only_on_adapter_branch():
    torch.manual_seed(0)
    layer = AdaLoraLayer(torch.nn.Linear(16, 16), r=4, alpha=4, dropout=0.5)
    layer.reset_from_base()
    x = torch.randn(5, 16)
    layer.train()
    assert torch.equal(layer(x), layer.base_layer(x))  # lambda = 0: dropout cannot leak into the base path
    _perturbed(layer)
    layer.eval()
    expected = layer.base_layer(x) + x @ layer.delta_weight().T
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_first_step_gradients_flow_only_into_lambda():
    _, model, method = bert_with_adalora()
    model.train()
    model(input_ids=X, labels=Y).loss.backward()
    for layer in method.layers.values():
        assert torch.count_nonzero(layer.lora_A.grad) == 0 and torch.count_nonzero(layer.lora_B.grad) == 0
        assert torch.count_nonzero(layer.lora_E.grad) > 0


# ----- orthogonality regulariser -------------------------------------------------------------
def test_orth_reg_zero_for_orthonormal_factors():
    layer = AdaLoraLayer(torch.nn.Linear(10, 7), r=3, alpha=1)
    with torch.no_grad():
        layer.lora_A.copy_(torch.linalg.qr(torch.randn(10, 3))[0].T)  # orthonormal rows
        layer.lora_B.copy_(torch.linalg.qr(torch.randn(7, 3))[0])  # orthonormal columns
    for form in ("code", "paper"):
        assert orthogonality_regularizer([layer], form).item() == pytest.approx(0.0, abs=1e-5)


def test_orth_reg_code_and_paper_forms():
    layers = []
    for seed in range(2):
        torch.manual_seed(seed)
        layer = AdaLoraLayer(torch.nn.Linear(10, 7), r=3, alpha=1)
        layer.reset_from_base()
        layers.append(layer)
    norms = []
    for layer in layers:
        a, b = layer.lora_A.detach(), layer.lora_B.detach()
        norms.append(torch.sqrt(((a @ a.T - torch.eye(3)) ** 2).sum()))
        norms.append(torch.sqrt(((b.T @ b - torch.eye(3)) ** 2).sum()))
    norms = torch.stack(norms)
    torch.testing.assert_close(orthogonality_regularizer(layers, "code"), norms.mean())  # mean over 2n, not squared
    torch.testing.assert_close(orthogonality_regularizer(layers, "paper"), (norms**2).sum())  # eq. 4, summed
    assert not torch.allclose(norms.mean(), (norms**2).sum())


def test_regularization_loss_weight_form_and_fp32_under_autocast():
    _, model, method = bert_with_adalora(orth_reg_weight=0.3)
    expected = 0.3 * orthogonality_regularizer(method.layers.values(), "code")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reg = method.regularization_loss()
    assert reg.dtype == torch.float32
    torch.testing.assert_close(reg, expected)
    reg.backward()
    assert all(layer.lora_A.grad is not None and layer.lora_B.grad is not None for layer in method.layers.values())
    _, _, paper = bert_with_adalora(orth_reg_weight=0.3, orth_reg_form="paper")
    torch.testing.assert_close(paper.regularization_loss(), 0.3 * orthogonality_regularizer(paper.layers.values(), "paper"))
    _, _, off = bert_with_adalora(orth_reg_weight=0.0)
    assert off.regularization_loss() is None


# ----- config ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "knobs, key",
    [
        ({"target_r": 6}, "adapter.target_r"),
        ({"target_r": 7}, "adapter.target_r"),
        ({"target_r": 0}, "adapter.target_r"),
        ({"delta_t": 0}, "adapter.delta_t"),
        ({"tfinal": 0}, "adapter.tfinal"),
        ({"tinit": -1}, "adapter.tinit"),
        ({"beta1": 1.0}, "adapter.beta1"),
        ({"beta2": 0}, "adapter.beta2"),
        ({"orth_reg_weight": -0.1}, "adapter.orth_reg_weight"),
        ({"orth_reg_form": "squared"}, "adapter.orth_reg_form"),
        ({"init": "kaiming"}, "adapter.init"),
        ({"rslora": True}, "adapter.rslora"),
        ({"init_r": 12}, "adapter.init_r"),
    ],
)
def test_config_rejects_inconsistent_values(knobs, key):
    raw = {"method": "adalora", "r": 6, "target_r": 3, "tinit": 2, "tfinal": 3} | knobs
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_lora_rejects_adalora_knobs():
    with pytest.raises(ConfigError, match=r"adapter.target_r: .*adalora"):
        parse_config({"method": "lora", "target_r": 4})


def test_check_schedule_rejects_short_runs_and_shows_total_steps():
    _, _, method = bert_with_adalora(tinit=40, tfinal=60)
    with pytest.raises(ConfigError, match=r"T = 100\b"):
        method.check_schedule(100)
    method.check_schedule(101)
    with pytest.raises(ConfigError, match=r"T = 90\b"):
        method.on_optimizer_step(0, 90)


def test_defaults_follow_peft():
    c = parse_config({"method": "adalora"})
    assert (c.r, c.target_r, c.alpha, c.beta1, c.beta2, c.orth_reg_weight, c.delta_t) == (12, 8, 8.0, 0.85, 0.85, 0.5, 1)
    assert (c.tinit, c.tfinal, c.init, c.orth_reg_form) == (0, 1, "adalora", "code")
