"""Target matching (suffix vs substring, regex, presets, zero match) and exact parameter counts."""

import pytest
import torch
from torch import nn

from lora_lab.adapters.targets import module_kind, resolve_targets
from lora_lab.errors import ConfigError
from tests.helpers import attach, tiny_bert, tiny_gpt2, tiny_llama


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(8, 8)
        self.query_proj = nn.Linear(8, 8)
        self.value = nn.Linear(8, 4)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])
        self.classifier = nn.Linear(8, 2)


def test_list_is_dotted_suffix_not_substring():
    names = resolve_targets(Toy(), ["query"])
    assert names == ["layers.0.query", "layers.1.query"]


def test_regex_is_full_match():
    assert resolve_targets(Toy(), r"layers\.1\.query.*") == ["layers.1.query", "layers.1.query_proj"]
    with pytest.raises(ConfigError, match="matches no adaptable module"):
        resolve_targets(Toy(), "query")  # a regex must match the whole name


def test_zero_match_error_names_candidates():
    with pytest.raises(ConfigError) as err:
        resolve_targets(Toy(), ["nope"], head_modules=["classifier"])
    msg = str(err.value)
    assert msg.startswith("adapter.targets") and "layers.N.query_proj" in msg and "classifier" not in msg.split("candidates:")[1]


def test_heads_never_adapted_and_exclude():
    names = resolve_targets(Toy(), "all_linear", head_modules=["classifier"])
    assert "classifier" not in names and len(names) == 6
    assert resolve_targets(Toy(), "all_linear", exclude=["query_proj"], head_modules=["classifier"]) == [
        "layers.0.query", "layers.0.value", "layers.1.query", "layers.1.value"]


def test_presets_per_architecture():
    bert = resolve_targets(tiny_bert(), "attn_mlp", model_type="bert", head_modules=["classifier"])
    assert len(bert) == 2 * 6
    assert [module_kind(n, "bert") for n in bert[:6]] == ["q", "k", "v", "o", "ffn_in", "ffn_out"]
    assert resolve_targets(tiny_bert(), "o", model_type="bert") == [
        "bert.encoder.layer.0.attention.output.dense", "bert.encoder.layer.1.attention.output.dense"]
    gpt2 = resolve_targets(tiny_gpt2(), "qv", model_type="gpt2", head_modules=["score"])
    assert gpt2 == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    llama = resolve_targets(tiny_llama(), "attn_mlp", model_type="llama")
    assert len(llama) == 2 * 7 and not any("lm_head" in n for n in llama)
    assert "lm_head" not in resolve_targets(tiny_llama(), "all_linear", model_type="llama")
    with pytest.raises(ConfigError, match="not defined for model_type"):
        resolve_targets(Toy(), "qv", model_type="unknown-arch")


def test_param_count_closed_form_tiny():
    _, report = attach(tiny_bert(), "bert", targets="attn_mlp", r=4, alpha=8)
    # q,k,v,o: 32->32; ffn_in 32->64; ffn_out 64->32; per layer r*(in+out) summed, 2 layers
    per_layer = 4 * 4 * (32 + 32) + 4 * (32 + 64) + 4 * (64 + 32)
    assert report.adapter_params == 2 * per_layer
    assert report.head_params == 32 * 2 + 2
    assert report.trainable_params == report.adapter_params + report.head_params


def test_roberta_base_qv_r8_is_294912():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    with torch.device("meta"):
        model = RobertaForSequenceClassification(RobertaConfig())  # roberta-base sizes, no memory
    _, report = attach(model, "roberta", targets="qv", r=8, alpha=8)
    assert report.adapter_params == 294_912
    assert len(report.adapted_modules) == 24
