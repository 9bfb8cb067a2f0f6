"""AdaLoRA rank allocator: budget schedule, importance EMAs, triplet scores, masking, phases, state."""

from __future__ import annotations

import copy

import pytest
import torch

from lora_lab.adapters.adalora import AdaLoraLayer
from lora_lab.adapters.rank_allocator import RankAllocator, budget_schedule
from tests.adapters.adalora_utils import bert_with_adalora, single_thread, train  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")

# ----- schedule ------------------------------------------------------------------------------
WORKED = dict(b0=864, bT=576, tinit=100, tfinal=100, total_steps=500, delta_t=10)


@pytest.mark.parametrize(
    "step, budget",
    [(0, 864), (100, 864), (101, 861), (150, 742), (300, 586), (399, 576), (400, 576), (401, 576), (450, 576), (499, 576)],
)
def test_schedule_worked_values(step, budget):
    assert budget_schedule(step, **WORKED)[0] == budget


def test_schedule_masking_steps():
    mask_steps = [t for t in range(500) if budget_schedule(t, **WORKED)[1]]
    # nothing up to tinit; every delta_t in between (T - tfinal = 400 included); every step after
    assert mask_steps == list(range(110, 401, 10)) + list(range(401, 500))
    assert budget_schedule(100, **WORKED) == (864, False)
    assert budget_schedule(400, **WORKED) == (576, True)
    assert budget_schedule(401, **(WORKED | {"delta_t": 7})) == (576, True)


def test_schedule_is_monotone_and_floors():
    budgets = [budget_schedule(t, **WORKED)[0] for t in range(500)]
    assert all(a >= b for a, b in zip(budgets, budgets[1:]))
    # floor, not round: 576 + 288 * (299/300)^3 = 861.13..
    assert budget_schedule(101, **WORKED)[0] == 861


# ----- importance ----------------------------------------------------------------------------
def _layer(r=2, d_in=3, d_out=2, seed=0):
    torch.manual_seed(seed)
    layer = AdaLoraLayer(torch.nn.Linear(d_in, d_out), r=r, alpha=1)
    layer.reset_from_base()
    return layer


def _set(layer, weights: dict, grads: dict):
    with torch.no_grad():
        for name in ("lora_A", "lora_E", "lora_B"):
            p = getattr(layer, name)
            p.copy_(torch.full_like(p, weights[name]) if isinstance(weights[name], float) else weights[name])
            p.grad = torch.full_like(p, grads[name]) if isinstance(grads[name], float) else grads[name].clone()


def test_ema_after_two_updates_by_hand():
    layer = _layer()
    alloc = RankAllocator({"m": layer}, target_r=1, tinit=0, tfinal=1, delta_t=1, beta1=0.5, beta2=0.75)
    # update 1: |w * g| = |2 * 0.5| = 1  ->  Ibar = 0.5 * 0 + 0.5 * 1 = 0.5, Ubar = 0.75 * 0 + 0.25 * |1 - 0.5| = 0.125
    _set(layer, {"lora_A": 2.0, "lora_E": 2.0, "lora_B": -2.0}, {"lora_A": 0.5, "lora_E": -0.5, "lora_B": 0.5})
    alloc.update_importance()
    for key in ("m.lora_A", "m.lora_E", "m.lora_B"):
        assert torch.allclose(alloc.exp_avg_ipt[key], torch.tensor(0.5))
        assert torch.allclose(alloc.exp_avg_unc[key], torch.tensor(0.125))
    # update 2: I = |1 * 3| = 3  ->  Ibar = 0.25 + 1.5 = 1.75; Ubar (with the *updated* Ibar) = 0.09375 + 0.25 * 1.25 = 0.40625
    # (with the stale Ibar = 0.5 it would be 0.71875)
    _set(layer, {"lora_A": 1.0, "lora_E": 1.0, "lora_B": 1.0}, {"lora_A": 3.0, "lora_E": 3.0, "lora_B": -3.0})
    alloc.update_importance()
    for key in ("m.lora_A", "m.lora_E", "m.lora_B"):
        assert torch.allclose(alloc.exp_avg_ipt[key], torch.tensor(1.75))
        assert torch.allclose(alloc.exp_avg_unc[key], torch.tensor(0.40625))
    # every entry score is 1.75 * 0.40625; triplet score = s_E + mean row of A + mean column of B = 3 s
    s = 1.75 * 0.40625
    torch.testing.assert_close(alloc.triplet_scores()["m"], torch.full((2,), 3 * s))


def test_triplet_score_uses_row_means_of_A_and_column_means_of_B():
    layer = _layer(r=2, d_in=3, d_out=4)
    alloc = RankAllocator({"m": layer}, target_r=1, tinit=0, tfinal=1, delta_t=1, beta1=0.5, beta2=0.5)
    alloc.exp_avg_ipt = {"m.lora_A": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), "m.lora_E": torch.tensor([10.0, 20.0])}
    alloc.exp_avg_ipt["m.lora_B"] = torch.arange(8.0).view(4, 2)  # columns [0,2,4,6], [1,3,5,7]
    alloc.exp_avg_unc = {k: torch.ones_like(v) for k, v in alloc.exp_avg_ipt.items()}
    alloc.exp_avg_unc["m.lora_E"] = torch.tensor([0.5, 2.0])
    # triplet 0: 10*0.5 + mean(1,2,3) + mean(0,2,4,6) = 5 + 2 + 3 = 10;  triplet 1: 40 + 5 + 4 = 49
    torch.testing.assert_close(alloc.triplet_scores()["m"], torch.tensor([10.0, 49.0]))


def test_parameters_without_gradients_are_skipped():
    layer, other = _layer(seed=0), _layer(seed=1)
    alloc = RankAllocator({"a": layer, "b": other}, target_r=1, tinit=0, tfinal=1, delta_t=1, beta1=0.5, beta2=0.5)
    _set(layer, {"lora_A": 1.0, "lora_E": 1.0, "lora_B": 1.0}, {"lora_A": 1.0, "lora_E": 1.0, "lora_B": 1.0})
    for p in (other.lora_A, other.lora_E, other.lora_B):
        p.grad = None
    assert alloc.update_importance()
    assert torch.equal(alloc.exp_avg_ipt["b.lora_A"], torch.zeros_like(other.lora_A))
    assert torch.allclose(alloc.exp_avg_ipt["a.lora_A"], torch.tensor(0.5))


def test_non_finite_gradients_do_not_poison_the_emas():
    layer = _layer()
    alloc = RankAllocator({"m": layer}, target_r=1, tinit=0, tfinal=1, delta_t=1, beta1=0.5, beta2=0.5)
    _set(layer, {"lora_A": 1.0, "lora_E": 1.0, "lora_B": 1.0}, {"lora_A": 1.0, "lora_E": 1.0, "lora_B": 1.0})
    alloc.update_importance()
    before = copy.deepcopy(alloc.exp_avg_ipt)
    layer.lora_B.grad[0, 0] = float("inf")
    assert not alloc.update_importance()
    assert alloc.skipped_updates == 1
    assert all(torch.equal(before[k], alloc.exp_avg_ipt[k]) for k in before)


# ----- masking -------------------------------------------------------------------------------
def _allocator_with_scores(scores: list[list[float]], target_r=1):
    layers = {f"m{i}": _layer(r=len(s), seed=i) for i, s in enumerate(scores)}
    for layer in layers.values():
        with torch.no_grad():
            layer.lora_E.fill_(1.0)
    alloc = RankAllocator(layers, target_r=target_r, tinit=0, tfinal=1, delta_t=1, beta1=0.5, beta2=0.5)
    alloc.triplet_scores = lambda: {name: torch.tensor(s) for name, s in zip(layers, scores)}
    return alloc, layers


def test_mask_keeps_exactly_the_budget_with_distinct_scores():
    scores = [[0.9, 0.1, 0.5, 0.3], [0.8, 0.2, 0.7, 0.05], [0.6, 0.4, 0.35, 0.15]]
    alloc, layers = _allocator_with_scores(scores)
    for budget in (11, 7, 5, 3):
        alloc.mask_to_budget(budget)
        assert alloc.kept_total() == budget
        nonzero = sum(int(torch.count_nonzero(layer.lora_E)) for layer in layers.values())
        assert nonzero == budget
    # budget 3 keeps the three highest scores: 0.9 (m0), 0.8 and 0.7 (m1)
    assert [layer.kept_rank for layer in layers.values()] == [1, 2, 0]
    assert torch.equal(layers["m1"].rank_mask, torch.tensor([True, False, True, False]))


def test_ties_at_the_threshold_mask_more_like_peft():
    alloc, _ = _allocator_with_scores([[0.5, 0.5, 0.9], [0.5, 0.1, 0.8]])
    alloc.mask_to_budget(4)  # k = 2: tau = 0.5, and every score <= 0.5 is masked
    assert alloc.kept_total() == 2


def test_budget_at_b0_masks_nothing():
    alloc, layers = _allocator_with_scores([[0.5, 0.2], [0.1, 0.3]])
    assert alloc.mask_to_budget(alloc.b0) is None
    assert alloc.kept_total() == 4 and all(torch.count_nonzero(layer.lora_E) == 2 for layer in layers.values())


# ----- phases through the method ----------------------------------------------------------------
def test_total_rank_follows_schedule_and_ends_at_target():
    _, model, method = bert_with_adalora(r=6, target_r=3, tinit=2, tfinal=3, delta_t=2, targets="attn_mlp")
    T = 14
    train(model, method, T)
    hist = method.allocator.history
    b0, bT = method.allocator.b0, method.allocator.bT
    assert (b0, bT) == (6 * 12, 3 * 12)
    # allocations at every delta_t step inside (tinit, T - tfinal] and once at T - tfinal = 11
    assert [s for s, _, _ in hist] == [4, 6, 8, 10, 11]
    for step, budget, kept in hist:
        assert budget == budget_schedule(step, b0, bT, 2, 3, T, 2)[0]
        assert kept == budget  # distinct (continuous) scores: no ties
    assert method.allocator.final and not method.allocator.exp_avg_ipt  # EMAs dropped after the final allocation
    assert sum(method.rank_pattern().values()) == bT
    for layer in method.layers.values():
        assert torch.equal(layer.lora_E != 0, layer.rank_mask)


def test_final_phase_reapplies_the_fixed_pattern():
    _, model, method = bert_with_adalora()
    T = 14
    opt = train(model, method, T, steps=12)
    masks = {n: layer.rank_mask.clone() for n, layer in method.layers.items()}
    with torch.no_grad():
        for layer in method.layers.values():
            layer.lora_E.add_(1.0)  # "revive" every triplet
    train(model, method, T, start=12, steps=1, opt=opt)
    for name, layer in method.layers.items():
        assert torch.equal(layer.rank_mask, masks[name])
        assert torch.equal(layer.lora_E != 0, masks[name])


def test_missed_final_allocation_step_still_fixes_the_pattern():
    _, model, method = bert_with_adalora(r=6, target_r=3, tinit=2, tfinal=3, delta_t=5)
    T = 14
    train(model, method, T, steps=10)  # steps 0..9, never reaches T - tfinal = 11
    model.train()
    model(input_ids=torch.randint(0, 100, (4, 7)), labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    method.on_optimizer_step(12, T)
    assert method.allocator.final and method.allocator.kept_total() == method.allocator.bT


def test_allocator_state_round_trip_continues_identically():
    base, model, method = bert_with_adalora(r=6, target_r=3, tinit=2, tfinal=3, delta_t=2, targets="attn_mlp")
    T = 14
    opt = train(model, method, T, steps=6)
    state = {k: v.clone() for k, v in method.state_dict().items()}
    snapshot = copy.deepcopy((model, opt.state_dict()))
    assert any(k.startswith("allocator.ema_ipt.") for k in state) and "allocator.history" in state
    train(model, method, T, start=6, steps=8, opt=opt)

    # rebuild from the snapshot: fresh method, adapter weights + masks, optimizer and allocator state
    from lora_lab.adapters.io import adapter_checkpoint_state
    from tests.adapters.adalora_utils import adalora

    model2 = copy.deepcopy(base)
    method2 = adalora(model2, r=6, target_r=3, tinit=2, tfinal=3, delta_t=2, targets="attn_mlp")
    snap_model, snap_opt = snapshot
    model2.load_state_dict(snap_model.state_dict())
    method2.load_state_dict(state)
    opt2 = torch.optim.AdamW([p for p in model2.parameters() if p.requires_grad], lr=3e-2)
    opt2.load_state_dict(snap_opt)
    train(model2, method2, T, start=6, steps=8, opt=opt2)
    assert method2.allocator.history == method.allocator.history
    a, b = adapter_checkpoint_state(model, method), adapter_checkpoint_state(model2, method2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_state_rejects_foreign_keys_and_shapes():
    _, _, method = bert_with_adalora()
    with pytest.raises(KeyError):
        method.load_state_dict({"allocator.ema_ipt.nope.lora_A": torch.zeros(1)})
    name = next(iter(method.layers))
    with pytest.raises(ValueError, match="shape"):
        method.load_state_dict({f"allocator.ema_ipt.{name}.lora_A": torch.zeros(1)})
