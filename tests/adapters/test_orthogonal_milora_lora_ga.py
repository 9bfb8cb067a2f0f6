"""``orthogonal`` (parity with PEFT 0.21), ``milora`` and ``lora_ga`` (known answers) -- docs/algorithms/README.md."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.calibration import calibrate
from lora_lab.adapters.dora import DoraLayer
from lora_lab.adapters.lora import LoraLayer
from lora_lab.adapters.lora_ga import STABLE_GAMMA, lora_ga_factors
from lora_lab.adapters.orthogonal import orthogonal_init
from lora_lab.errors import ConfigError

from tests.adapters.peft_helpers import base_model, ours_on, peft_layer, peft_on
from tests.helpers import token_batch

# fp32 rounding bound for O(1) quantities after a few reductions of length <= 64 (eps = 1.2e-7)
ATOL = 1e-5


def known_svd(out_f: int, in_f: int, spectrum: list[float], seed: int = 0):
    """``(W, U, S, V)`` with ``W = U diag(S) V^T`` (float64 factors, float32 W) and the given distinct spectrum."""
    g = torch.Generator().manual_seed(seed)
    k = len(spectrum)
    u, _ = torch.linalg.qr(torch.randn(out_f, k, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(in_f, k, generator=g, dtype=torch.float64))
    s = torch.tensor(spectrum, dtype=torch.float64)
    return (u @ torch.diag(s) @ v.T).float(), u, s, v


def projector(basis: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector on the column span of ``basis`` (float64)."""
    q, _ = torch.linalg.qr(basis.double())
    return q @ q.T


# ----------------------------------------------------------------------------------- orthogonal


def test_orthogonal_equals_peft_from_the_same_generator_state():
    """Same generator state before the init -> the same A and B (bit for bit: the same draws and QR),
    an untouched base, and the same logits."""
    base = base_model("bert")
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    peft_model = peft_on(theirs, "bert", r=4, lora_alpha=8, init_lora_weights="orthogonal")
    method = ours_on(ours, "bert", method="lora", r=4, alpha=8.0, init="orthogonal")
    for i, (name, layer) in enumerate(method.layers.items()):
        torch.manual_seed(100 + i)
        orthogonal_init(layer, "orthogonal")
        p = peft_layer(peft_model, name)
        torch.manual_seed(100 + i)
        p.orthogonal_init("default")
        torch.testing.assert_close(layer.lora_A.detach(), p.lora_A["default"].weight.detach(), rtol=0, atol=0)
        torch.testing.assert_close(layer.lora_B.detach(), p.lora_B["default"].weight.detach(), rtol=0, atol=0)
        torch.testing.assert_close(layer.base_layer.weight, base.get_submodule(name).weight, rtol=0, atol=0)
        assert torch.count_nonzero(layer.lora_A) == layer.lora_A.numel() and torch.count_nonzero(layer.lora_B) == layer.lora_B.numel()
        # B A = G_out (Q_e Q_o^T) G_in^T / 100 = 0 up to the QR's rounding
        assert (layer.lora_B @ layer.lora_A).abs().max() < ATOL
    x = token_batch(batch=4, length=9)
    ours.eval(), peft_model.eval(), base.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=x).logits, peft_model(input_ids=x).logits, rtol=0, atol=ATOL)
        torch.testing.assert_close(ours(input_ids=x).logits, base(input_ids=x).logits, rtol=0, atol=ATOL)


def test_orthogonal_needs_an_even_rank():
    with pytest.raises(ConfigError) as err:
        parse_config({"method": "dora", "r": 3, "init": "orthogonal"})
    assert err.value.key == "adapter.r" and "even" in str(err.value) and "r=3" in str(err.value)


# ----------------------------------------------------------------------------------------- milora


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("cls", [LoraLayer, DoraLayer])
def test_milora_takes_the_minor_singular_directions(conv, cls):
    """W with a known SVD: s B0 A0 = U_m S_m V_m^T (the r smallest), B0's columns span U_m, A0's rows
    span V_m, and W_res + s B0 A0 = W to fp32 rounding."""
    spectrum = [20.0, 15.0, 11.0, 8.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5]  # full rank min(12, 16)
    w, u, s, v = known_svd(12, 16, spectrum)
    lin = nn.Linear(16, 12)
    with torch.no_grad():
        lin.weight.copy_(w)
    base = lin
    if conv:
        base = Conv1D(12, 16)
        with torch.no_grad():
            base.weight.copy_(w.T)
    layer = cls(base, r=3, alpha=5.0, init="milora")
    layer.reset_from_base()
    minor = (u[:, -3:] @ torch.diag(s[-3:]) @ v[:, -3:].T).float()
    torch.testing.assert_close(LoraLayer.delta_weight(layer), minor, rtol=0, atol=ATOL)
    torch.testing.assert_close(projector(layer.lora_B.detach()), projector(u[:, -3:]), rtol=0, atol=ATOL)
    torch.testing.assert_close(projector(layer.lora_A.detach().T), projector(v[:, -3:]), rtol=0, atol=ATOL)
    torch.testing.assert_close(layer.base_weight() + LoraLayer.delta_weight(layer), w, rtol=0, atol=ATOL)
    # the principal part stays frozen: W_res = U_p S_p V_p^T
    torch.testing.assert_close(layer.base_weight().double(), u[:, :-3] @ torch.diag(s[:-3]) @ v[:, :-3].T, rtol=0, atol=ATOL * 20)
    assert layer.mutates_base
    torch.testing.assert_close(layer.lora_A0, layer.lora_A.detach(), rtol=0, atol=0)
    if cls is DoraLayer:  # g = 1 at init: m = ||W_res + s B0 A0||_row = ||W||_row
        torch.testing.assert_close(layer.magnitude.detach(), torch.linalg.vector_norm(w, dim=1), rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------------------- lora_ga


def test_lora_ga_factors_of_a_known_gradient():
    """G = U S V^T known: A0 = zeta V[:, :r]^T, B0 = zeta U[:, r:2r] (up to a sign per column pair),
    zeta = out^(1/4) / sqrt(gamma); hence A0 A0^T = B0^T B0 = zeta^2 I."""
    g, u, s, v = known_svd(20, 12, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0])
    r = 3
    a, b = lora_ga_factors(g, r)
    zeta = 20**0.25 / STABLE_GAMMA**0.5
    assert abs(zeta - 20**0.25 / 4) < 1e-12
    # singular vectors are unique up to sign (distinct singular values): compare |cosines|
    torch.testing.assert_close((a.double() @ v[:, :r]).abs(), zeta * torch.eye(r, dtype=torch.float64), rtol=0, atol=ATOL)
    torch.testing.assert_close((u[:, r : 2 * r].T @ b.double()).abs(), zeta * torch.eye(r, dtype=torch.float64), rtol=0, atol=ATOL)
    torch.testing.assert_close(a @ a.T, zeta**2 * torch.eye(r), rtol=0, atol=ATOL)
    torch.testing.assert_close(b.T @ b, zeta**2 * torch.eye(r), rtol=0, atol=ATOL)


@pytest.mark.parametrize("method_name", ["lora", "dora"])
def test_lora_ga_calibrates_on_the_full_weight_gradient(method_name):
    """A one-layer model with loss L = sum_t c . (W x_t + b): dL/dW = c (sum_t x_t)^T exactly (rank 1) --
    averaged over the batches. The init reads that gradient: A0's first row is +-zeta x_bar/|x_bar|,
    B0 spans U[:, r:2r] of a rank-1 G (orthogonal to c), W_res + s B0 A0 = W, and no .grad is left."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8))
    w = model[0].weight.detach().clone()
    c = torch.randn(8)
    method = build_method(parse_config({"method": method_name, "r": 2, "alpha": 4.0, "init": "lora_ga", "targets": ["0"]}))
    method.attach(model)
    xs = [torch.randn(1, 5, 10) for _ in range(3)]
    summary = calibrate(method, iter([{"input_ids": x, "attention_mask": torch.ones(1, 5)} for x in xs]),
                        lambda batch: (model(batch["input_ids"]) * c).sum())
    assert summary["calibration_batches"] == 3 and summary["lora_ga_gamma"] == STABLE_GAMMA
    layer = method.layers["0"]
    x_sum = torch.stack([x.sum(dim=(0, 1)) for x in xs]).mean(0)  # G = c x_sum^T: the mean gradient
    zeta = 8**0.25 / 4.0
    first = layer.lora_A.detach()[0]
    torch.testing.assert_close(first.abs(), zeta * (x_sum / x_sum.norm()).abs(), rtol=0, atol=ATOL)
    # B0's columns are left singular vectors beyond the first: orthogonal to c
    torch.testing.assert_close(c @ layer.lora_B.detach(), torch.zeros(2), rtol=0, atol=ATOL * c.norm().item())
    torch.testing.assert_close(layer.base_weight() + LoraLayer.delta_weight(layer), w, rtol=0, atol=ATOL)
    assert layer.base_layer.weight.grad is None and not layer.base_layer.weight.requires_grad
    assert layer.lora_A.grad is None and layer.lora_A.requires_grad


def test_lora_ga_rank_over_half_the_width_is_a_config_error():
    model = nn.Sequential(nn.Linear(6, 5))
    method = build_method(parse_config({"method": "lora", "r": 3, "alpha": 4.0, "init": "lora_ga", "targets": ["0"]}))
    method.attach(model)
    with pytest.raises(ConfigError, match="2r <= min"):
        calibrate(method, iter([{"input_ids": torch.randn(1, 4, 6)}]), lambda batch: model(batch["input_ids"]).sum())


def test_calibration_leaves_the_global_rng_as_it_found_it():
    model = base_model("bert")
    method = ours_on(model, "bert", method="lora", r=4, alpha=8.0, init="eva")
    state = torch.get_rng_state()
    x = token_batch(batch=8, length=12)
    calibrate(method, iter([{"input_ids": x, "attention_mask": torch.ones_like(x)}] * 3), lambda b: model(**b).logits.sum())
    assert torch.equal(torch.get_rng_state(), state)
