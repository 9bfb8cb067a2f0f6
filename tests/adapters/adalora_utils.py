"""Small builders shared by the AdaLoRA adapter-level tests (plain torch loop, no Lightning)."""

from __future__ import annotations

import copy

import pytest
import torch

from lora_lab.adapters import build_method, parse_config
from tests.helpers import tiny_bert, tiny_gpt2



@pytest.fixture
def single_thread():
    """Run a test with one intra-op thread: tiny models gain nothing from threads and on a shared
    2-core machine the default oversubscribes (a 14-step run took 21 s with 2 threads, 0.5 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


X = torch.randint(0, 100, (4, 7), generator=torch.Generator().manual_seed(123))
Y = torch.tensor([0, 1, 1, 0])


def adalora(model, model_type="bert", head="classifier", **knobs):
    """Attach AdaLoRA with the given knobs to ``model``; returns the method."""
    raw = {"method": "adalora", "r": 6, "target_r": 3, "tinit": 2, "tfinal": 3, "delta_t": 2, "targets": ["query", "value"]}
    raw.update(knobs)
    method = build_method(parse_config(raw))
    method.attach(model, model_type=model_type, head_modules=[head])
    return method


def bert_with_adalora(**knobs):
    base = tiny_bert()
    model = copy.deepcopy(base)
    return base, model, adalora(model, **knobs)


def gpt2_with_adalora(**knobs):
    base = tiny_gpt2()
    model = copy.deepcopy(base)
    knobs.setdefault("targets", ["c_attn", "c_fc"])
    return base, model, adalora(model, model_type="gpt2", head="score", **knobs)


def train(model, method, total_steps, lr=3e-2, seed=0, steps=None, start=0, opt=None):
    """Plain torch loop: loss + reg, AdamW, hook after each step; returns the optimizer.

    Batches and dropout masks depend only on ``(seed, step)``, so a run split with ``start``/``steps``
    equals an uninterrupted one."""
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randint(0, 100, (4, 7), generator=gen) for _ in range(total_steps)]
    opt = opt or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for step in range(start, total_steps if steps is None else start + steps):
        torch.manual_seed(10_000 * seed + step)  # dropout masks depend on the step only (resumable)
        loss = model(input_ids=batches[step], labels=Y).loss
        reg = method.regularization_loss()
        (loss if reg is None else loss + reg).backward()
        opt.step()
        method.on_optimizer_step(step, total_steps)
        opt.zero_grad()
    model.eval()
    return opt
