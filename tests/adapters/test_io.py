"""Adapter-only save/load: identical logits on a fresh backbone, recorded config and names."""

import torch

from lora_lab.adapters.io import load_adapter, read_adapter_meta, save_adapter
from tests.helpers import attach, perturb_adapters, tiny_bert, tiny_gpt2, token_batch


def test_round_trip_identical_logits(tmp_path):
    for build, mt, head in ((tiny_bert, "bert", "classifier"), (tiny_gpt2, "gpt2", "score")):
        model = build()
        method, _ = attach(model, mt, heads=[head], targets="attn", r=4, alpha=8, rslora=True)
        perturb_adapters(method)
        with torch.no_grad():
            model.get_submodule(head).weight.add_(0.5)  # the trained head is part of the adapter
        x = token_batch()
        expected = model(x).logits
        out = save_adapter(tmp_path / mt, model, method, {"name": "tiny", "revision": None})
        meta = read_adapter_meta(out)
        assert meta["adapter"]["r"] == 4 and meta["adapter"]["rslora"] is True
        assert meta["adapted_modules"] == list(method.layers) and meta["head_modules"] == [head]
        fresh = build()  # same seed: same frozen backbone, different (fresh) head
        assert not torch.allclose(fresh(x).logits, expected)
        load_adapter(out, fresh)
        torch.testing.assert_close(fresh(x).logits, expected, rtol=0, atol=0)
