"""Parity with PEFT's AdaLoRA: forward, orthogonality regulariser, and the allocator step by step.

Both models start from the same weights. Every step PEFT's model takes a real training step; its
post-step weights and gradients are copied into ours, then PEFT's ``update_and_allocate(step)`` and
our ``on_optimizer_step(step, T)`` run with the same 0-based step index. At every step the budgets,
EMAs, triplet scores and the resulting singular values / masks must be identical.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

peft = pytest.importorskip("peft")

from tests.adapters.adalora_utils import X, Y, adalora, single_thread  # noqa: E402, F401
from tests.helpers import tiny_bert, tiny_gpt2  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

TRIPLET = ("lora_A", "lora_B", "lora_E")


def peft_adalora(base, model_type="bert", T=14, **kw):
    from peft import AdaLoraConfig, get_peft_model

    cfg = dict(task_type="SEQ_CLS", init_r=6, target_r=3, tinit=2, tfinal=3, deltaT=2, total_step=T, lora_alpha=8, target_modules=["query", "value"])
    cfg.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(copy.deepcopy(base), AdaLoraConfig(**cfg))


def peft_param(pm, module, pname):
    return dict(pm.named_parameters())[f"base_model.model.{module}.{pname}.default"]


@torch.no_grad()
def copy_from_peft(pm, method, model, head="classifier", grads=True):
    for name, layer in method.layers.items():
        for pname in TRIPLET:
            src, dst = peft_param(pm, name, pname), getattr(layer, pname)
            dst.copy_(src.view_as(dst))
            dst.grad = src.grad.detach().clone().view_as(dst) if grads else None
    getattr(model, head).load_state_dict(getattr(pm.base_model.model, head).modules_to_save.default.state_dict())


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_forward_equals_peft_bitwise(arch):
    base = tiny_bert() if arch == "bert" else tiny_gpt2()
    targets, head = (["query", "value"], "classifier") if arch == "bert" else (["c_attn", "c_fc"], "score")
    pm = peft_adalora(base, target_modules=targets).eval()
    ours = copy.deepcopy(base)
    method = adalora(ours, model_type=arch, head=head, targets=targets, alpha=8)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a trained-looking adapter: non-zero singular values
        for name in method.layers:
            peft_param(pm, name, "lora_E").copy_(torch.randn(6, 1, generator=g))
    copy_from_peft(pm, method, ours, head=head, grads=False)
    assert torch.equal(pm(input_ids=X).logits, ours(input_ids=X).logits)
    assert not torch.equal(ours(input_ids=X).logits, base(input_ids=X).logits)


def test_orth_regulariser_equals_peft_loss_term():
    base = tiny_bert()
    pm = peft_adalora(base, orth_reg_weight=0.3)
    ours = copy.deepcopy(base)
    method = adalora(ours, orth_reg_weight=0.3, alpha=8)
    copy_from_peft(pm, method, ours, grads=False)
    pm.eval()
    out = pm(input_ids=X, labels=Y)  # PEFT adds gamma * R to .loss when labels are given
    task = torch.nn.functional.cross_entropy(out.logits, Y)
    torch.testing.assert_close(method.regularization_loss(), out.loss - task, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("delta_t, tinit, tfinal, T", [(2, 2, 3, 14), (1, 0, 1, 8), (3, 1, 4, 15)])
def test_allocator_equals_peft_update_and_allocate_every_step(delta_t, tinit, tfinal, T):
    base = tiny_bert()
    targets = ["query", "key", "value", "dense"]  # includes attention.output.dense and both FFN denses
    pm = peft_adalora(base, T=T, deltaT=delta_t, tinit=tinit, tfinal=tfinal, target_modules=targets)
    ours = copy.deepcopy(base)
    method = adalora(ours, targets=targets, alpha=8, delta_t=delta_t, tinit=tinit, tfinal=tfinal)
    copy_from_peft(pm, method, ours, grads=False)
    ra = pm.base_model.rankallocator
    assert (ra.init_bgt, ra.target_bgt) == (method.allocator.b0, method.allocator.bT)

    peft_scores = []
    combine = ra._combine_ipt
    ra._combine_ipt = lambda e, ab: peft_scores.append(combine(e, ab)) or peft_scores[-1]

    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-2)
    gen = torch.Generator().manual_seed(0)
    pm.train()
    masked_steps = 0
    for step in range(T):
        torch.manual_seed(step)
        pm(input_ids=torch.randint(0, 100, (4, 7), generator=gen), labels=Y).loss.backward()
        opt.step()
        copy_from_peft(pm, method, ours)
        peft_scores.clear()
        before = method.allocator.triplet_scores() if step <= T - tfinal else None

        pm.base_model.update_and_allocate(step)
        method.on_optimizer_step(step, T)

        assert method.budget(step, T) == ra.budget_schedule(step)
        for name, layer in method.layers.items():
            assert torch.equal(layer.lora_E, peft_param(pm, name, "lora_E").view(-1)), (step, name)
            for pname in TRIPLET:
                key = f"{name}.{pname}.default"
                if key in ra.exp_avg_ipt:
                    assert torch.equal(method.allocator.exp_avg_ipt[f"{name}.{pname}"], ra.exp_avg_ipt[key].view(-1) if pname == "lora_E" else ra.exp_avg_ipt[key])
                    assert torch.equal(method.allocator.exp_avg_unc[f"{name}.{pname}"], ra.exp_avg_unc[key].view(-1) if pname == "lora_E" else ra.exp_avg_unc[key])
                else:  # PEFT dropped its EMAs after fixing the final pattern; so must we
                    assert f"{name}.{pname}" not in method.allocator.exp_avg_ipt
        if peft_scores:  # PEFT masked at this step: same scores (computed from the same EMAs) and mask
            masked_steps += 1
            # scores after this step's EMA update; at T - tfinal neither side updates the EMAs
            ours_now = method.allocator.triplet_scores() if step < T - tfinal else before
            assert len(peft_scores) == len(ours_now)
            for s_peft, s_ours in zip(peft_scores, ours_now.values()):
                assert torch.equal(s_peft.view(-1), s_ours)
            pattern = pm.peft_config["default"].rank_pattern
            for name, layer in method.layers.items():
                assert layer.rank_mask.tolist() == pattern[f"{name}.lora_E.default"]
    # allocations: every delta_t step in (tinit, T - tfinal] and at T - tfinal (later steps re-apply)
    expected = [t for t in range(tinit + 1, T - tfinal + 1) if t % delta_t == 0 or t == T - tfinal]
    assert masked_steps == len(expected) and [s for s, _, _ in method.allocator.history] == expected
    assert method.allocator.kept_total() == method.allocator.bT
    # the saved PEFT rank pattern and ours describe the same final allocation
    final = {k[: -len(".lora_E.default")]: sum(v) for k, v in pm.peft_config["default"].rank_pattern.items()}
    assert final == method.rank_pattern()
    pm.eval()
    assert torch.equal(pm(input_ids=X).logits, ours.eval()(input_ids=X).logits)


def test_budget_schedule_equals_peft_on_a_grid():
    from lora_lab.adapters.rank_allocator import budget_schedule

    base = tiny_bert()
    for T, tinit, tfinal, dt in [(500, 100, 100, 10), (37, 0, 1, 1), (50, 7, 13, 4)]:
        pm = peft_adalora(base, T=T, tinit=tinit, tfinal=tfinal, deltaT=dt)
        ra = pm.base_model.rankallocator
        for t in range(T + 2):
            assert budget_schedule(t, ra.init_bgt, ra.target_bgt, tinit, tfinal, T, dt) == ra.budget_schedule(t)
