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


@pytest.mark.parametrize("model_type,kw,expected,targets", [
    ("bart", dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                  encoder_ffn_dim=32, decoder_ffn_dim=32), ["classification_head"], ["q_proj", "v_proj"]),
    ("t5", dict(d_model=16, num_layers=1, num_heads=2, d_ff=32, d_kv=8), ["classification_head"], ["q", "v"]),
    ("distilbert", dict(dim=16, n_layers=1, n_heads=2, hidden_dim=32), ["pre_classifier", "classifier"], ["q_lin", "v_lin"]),
])
def test_classification_heads_of_encoder_decoders_and_distilbert_are_trained(model_type, kw, expected, targets):
    """Heads not named ``classifier`` (BART/T5 ``classification_head``, DistilBERT's ``pre_classifier``)
    are found, never adapted, and trainable after attaching."""
    import transformers

    from lora_lab.models.backbones import head_modules_for

    config = transformers.AutoConfig.for_model(model_type, num_labels=2, vocab_size=100, **kw)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    heads = head_modules_for(model, "classification")
    assert heads == expected
    _, report = attach(model, model_type, heads=heads, targets=targets)
    head_params = [p for h in heads for p in getattr(model, h).parameters()]
    assert head_params and all(p.requires_grad for p in head_params)
    assert report.head_params == sum(p.numel() for p in head_params)
    assert not any(name.split(".")[0] in heads for name in report.adapted_modules)


def test_model_without_a_known_head_is_refused():
    from lora_lab.models.backbones import head_modules_for

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "odd"})()
            self.encoder, self.proj_out = nn.Linear(4, 4), nn.Linear(4, 2)

    with pytest.raises(ConfigError, match=r"backbone: Odd: no classification head found .*'proj_out'.*known head names"):
        head_modules_for(Odd(), "classification")
