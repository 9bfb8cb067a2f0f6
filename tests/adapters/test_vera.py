"""VeRA specifics beyond the contract table: one projection pair shared by every layer (also after a
dtype/device move), sliced per layer shape, and a strict method state."""

import pytest
import torch

from lora_lab.adapters import build_method, parse_config

from tests.helpers import tiny_gpt2


def vera_on_gpt2(r: int = 8):
    model = tiny_gpt2()
    method = build_method(parse_config({"method": "vera", "r": r, "targets": "attn_mlp"}))
    method.attach(model, "gpt2", ["score"])
    return model, method


def test_one_shared_pair_sliced_per_layer_and_kept_shared_after_a_move():
    model, method = vera_on_gpt2()
    layers = list(method.layers.values())
    shapes = {(layer.in_features, layer.out_features) for layer in layers}
    assert len(shapes) > 1  # c_attn 32->96, c_proj 32->32, c_fc 32->128, mlp.c_proj 128->32
    assert method.projections.vera_A.shape == (8, max(i for i, _ in shapes))
    assert method.projections.vera_B.shape == (max(o for _, o in shapes), 8)
    for layer in layers:
        a, b = layer.sliced_projections()
        assert a.shape == (8, layer.in_features) and b.shape == (layer.out_features, 8)
    model.to(torch.float64)
    assert all(layer.projections is method.projections for layer in layers)
    assert method.projections.vera_A.dtype == torch.float64
    assert all(layer.projections.vera_A.data_ptr() == method.projections.vera_A.data_ptr() for layer in layers)
    assert not any(p.requires_grad for p in method.projections.buffers())


def test_method_state_is_exactly_the_projections():
    _, method = vera_on_gpt2()
    state = {k: v.clone() for k, v in method.state_dict().items()}
    assert sorted(state) == ["vera_A", "vera_B"]
    method.load_state_dict({k: v + 1 for k, v in state.items()})
    assert torch.equal(method.projections.vera_A, state["vera_A"] + 1)
    with pytest.raises(KeyError, match="exactly vera_A, vera_B"):
        method.load_state_dict({"vera_A": state["vera_A"]})
    with pytest.raises(KeyError, match="shape"):
        method.load_state_dict({"vera_A": state["vera_A"][:, :4], "vera_B": state["vera_B"]})
