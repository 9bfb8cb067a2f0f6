"""Parity with HF peft (dev-only dependency): same weights -> same logits, tiny BERT and GPT-2."""

import copy

import pytest
import torch

peft = pytest.importorskip("peft")

from tests.helpers import attach, perturb_adapters, tiny_bert, tiny_gpt2, token_batch  # noqa: E402


@pytest.mark.parametrize(
    "build,mt,head,targets,peft_targets",
    [
        (tiny_bert, "bert", "classifier", "attn_mlp", ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]),
        (tiny_gpt2, "gpt2", "score", "attn_mlp", ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]),
    ],
)
@pytest.mark.parametrize("rslora", [False, True])
def test_lora_logits_match_peft(build, mt, head, targets, peft_targets, rslora):
    ours = build()
    theirs = copy.deepcopy(ours)
    method, _ = attach(ours, mt, heads=[head], targets=targets, r=4, alpha=12, rslora=rslora)
    perturb_adapters(method)
    cfg = peft.LoraConfig(r=4, lora_alpha=12, target_modules=peft_targets, use_rslora=rslora, task_type="SEQ_CLS")
    pm = peft.get_peft_model(theirs, cfg)
    peft_layers = {n.removeprefix("base_model.model."): m for n, m in pm.named_modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})}
    assert sorted(peft_layers) == sorted(method.layers)
    with torch.no_grad():
        for name, layer in method.layers.items():
            peft_layers[name].lora_A["default"].weight.copy_(layer.lora_A)
            peft_layers[name].lora_B["default"].weight.copy_(layer.lora_B)
    x = token_batch()
    pm.eval()
    torch.testing.assert_close(ours(x).logits, pm(input_ids=x).logits, rtol=0, atol=1e-5)
