"""Gradient checkpointing (``backbone.gradient_checkpointing``) changes memory, not numbers: with it,
every method gives the same loss and the same adapter gradients, bit for bit, on tiny BERT
(classification) and tiny LLaMA (causal LM), dropout on (the recomputation replays the RNG)."""

import copy

import pytest
import torch

from tests.helpers import attach, tiny_bert, tiny_llama, token_batch

METHODS = {
    "lora": {"method": "lora", "r": 4, "dropout": 0.1},
    "dora": {"method": "dora", "r": 4, "dropout": 0.1},
    "adalora": {"method": "adalora", "r": 4, "target_r": 2, "dropout": 0.1},
    "pissa": {"method": "lora", "r": 4, "init": "pissa", "dropout": 0.1},
}
BACKBONES = {"bert": (tiny_bert, "bert"), "llama": (tiny_llama, "llama")}


def loss_and_grads(model, method, x, checkpointing: bool):
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    torch.manual_seed(7)  # same dropout masks in both runs
    out = model(input_ids=x, labels=torch.tensor([0, 1, 1]) if model.config.model_type == "bert" else x)
    loss = out.loss + (method.regularization_loss() if method.regularization_loss() is not None else 0)
    loss.backward()
    grads = {f"{n}.{k}": p.grad.clone() for n, layer in method.layers.items() for k, p in layer.adapter_parameters()}
    return loss.detach(), grads


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("name", list(METHODS))
def test_checkpointing_gives_the_same_loss_and_gradients(backbone, name):
    build, model_type = BACKBONES[backbone]
    model = build()
    heads = ["classifier"] if backbone == "bert" else []
    method, _ = attach(model, model_type, heads=heads, targets="all_linear", **METHODS[name])
    with torch.no_grad():  # B != 0 so that every adapter parameter gets a gradient
        for layer in method.layers.values():
            layer.lora_B.normal_(std=0.1)
            if hasattr(layer, "lora_E"):
                layer.lora_E.normal_(std=0.1)
    twin = copy.deepcopy(model)
    twin_method = copy.deepcopy(method)
    twin_method.layers = {n: twin.get_submodule(n) for n in method.layers}
    x = token_batch()
    loss, grads = loss_and_grads(model, method, x, checkpointing=False)
    loss_ckpt, grads_ckpt = loss_and_grads(twin, twin_method, x, checkpointing=True)
    assert twin.is_gradient_checkpointing and not model.is_gradient_checkpointing
    assert torch.equal(loss, loss_ckpt)
    assert grads.keys() == grads_ckpt.keys() and all(g.abs().max() > 0 for g in grads.values())
    different = [k for k in grads if not torch.equal(grads[k], grads_ckpt[k])]
    assert not different, different[:5]
