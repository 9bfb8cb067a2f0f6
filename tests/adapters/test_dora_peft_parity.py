"""DoRA (and LoRA) parity with HF PEFT on identical weights: tiny BERT (nn.Linear with biases) and
tiny GPT-2 (Conv1D). Forward in train and eval mode, gradients of A, B, m, merge and unmerge."""

from __future__ import annotations

import pytest
import torch

from tests.adapters.peft_helpers import paired, peft_layer
from tests.helpers import token_batch

pytest.importorskip("peft")

LABELS = torch.tensor([0, 1, 1])


def run(model, x, seed=123):
    torch.manual_seed(seed)  # same dropout masks in both models (same module call order)
    return model(input_ids=x).logits


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["dora", "lora"])
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_forward_and_gradients_equal_peft(kind, method, dropout):
    ours, m, theirs = paired(kind, method=method, dropout=dropout)
    x = token_batch()
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        a, b = run(ours, x), run(theirs, x)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        if train:
            torch.nn.functional.cross_entropy(a, LABELS).backward()
            torch.nn.functional.cross_entropy(b, LABELS).backward()
    with theirs.disable_adapter():  # the adapters do something
        assert (a - run(theirs, x)).abs().max() > 1e-3
    names = {"lora_A": "lora_A", "lora_B": "lora_B", "magnitude": "lora_magnitude_vector"}
    for name, layer in m.layers.items():
        p = peft_layer(theirs, name)
        for ours_name, param in layer.adapter_parameters():
            ref = getattr(p, names[ours_name])["default"].weight.grad
            assert param.grad is not None and param.grad.abs().max() > 0
            # fp32 sums in a different order: tolerance relative to the gradient's scale
            torch.testing.assert_close(param.grad, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_dora_merge_matches_peft_and_unmerge_restores(kind):
    ours, m, theirs = paired(kind, method="dora")
    ours.eval()
    theirs.eval()
    x = token_batch()
    w0 = {name: layer.base_layer.weight.detach().clone() for name, layer in m.layers.items()}
    with torch.no_grad():
        unmerged = ours(input_ids=x).logits
        m.merge()
        theirs.base_model.merge_adapter()
        merged = ours(input_ids=x).logits
        torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)
        for name, layer in m.layers.items():
            torch.testing.assert_close(layer.base_layer.weight, peft_layer(theirs, name).base_layer.weight, rtol=0, atol=1e-5)
        m.unmerge()
    for name, layer in m.layers.items():
        torch.testing.assert_close(layer.base_layer.weight, w0[name], rtol=0, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=x).logits, unmerged, rtol=0, atol=1e-5)
