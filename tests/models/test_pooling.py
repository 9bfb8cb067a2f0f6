"""Sequence-classification pooling (`lora_lab.models.pooling`, issue 23 item 1): the embedded backbone's
default head mean-pools over non-padding tokens, ``cls_pooler`` is HF's class bit for bit, ``cls`` reads
the raw first-token state, a backbone without a BERT pooler refuses anything but ``cls_pooler``, and the
head round-trips through save/load (and is refused on a model that pools differently)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lora_lab.errors import ConfigError
from lora_lab.models.backbones import build_backbone, parse_backbone_config
from lora_lab.models.pooling import apply_pooling, pooling_of
from tests.helpers import attach, perturb_adapters, tiny_gpt2

CONF = Path(__file__).resolve().parents[2] / "conf" / "backbone"
TINY_BERT = {"model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64}
EPS32 = torch.finfo(torch.float32).eps


def tiny_of(backbone_yaml: str, **overrides):
    """The backbone config ``conf/backbone/<backbone_yaml>.yaml`` declares, on a tiny random BERT."""
    raw = yaml.safe_load((CONF / f"{backbone_yaml}.yaml").read_text())
    raw.update(random_init=TINY_BERT, tokenizer=None, **overrides)
    torch.manual_seed(0)
    return build_backbone(parse_backbone_config(raw), "classification", num_labels=3, pad_token_id=0).eval()


def batch_with_padding():
    ids = torch.tensor([[5, 17, 42, 8, 9], [7, 3, 11, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return ids, mask


def test_embedded_backbone_declares_mean_and_every_hf_default_is_cls_pooler():
    declared = {p.stem: yaml.safe_load(p.read_text()).get("pooling") for p in CONF.glob("*.yaml")}
    assert declared["minilm"] == "mean"
    assert declared["roberta_base"] == declared["deberta_v3_base"] == declared["hub"] == "cls_pooler"


def test_mean_pools_over_non_padding_tokens_and_padding_changes_nothing():
    model = tiny_of("minilm")
    assert pooling_of(model) == "mean"
    ids, mask = batch_with_padding()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        by_hand = model.classifier(torch.stack([hidden[0].mean(0), hidden[1, :3].mean(0)]))
        # the second example alone, without its two pad tokens
        alone = model(input_ids=ids[1:, :3], attention_mask=mask[1:, :3]).logits
        more_pad = model(input_ids=torch.cat([ids[1:], torch.zeros(1, 6, dtype=torch.long)], 1),
                         attention_mask=torch.cat([mask[1:], torch.zeros(1, 6, dtype=torch.long)], 1)).logits
    # same operations on the same numbers except the order of fp32 sums over <= 11 positions (each
    # term <= the largest |value|): the difference is bounded by 11 * eps32 * scale, per layer (2)
    scale = float(logits.abs().max()) + 1.0
    tol = 2 * 11 * EPS32 * scale
    torch.testing.assert_close(logits, by_hand, rtol=0, atol=tol)
    torch.testing.assert_close(alone, logits[1:], rtol=0, atol=tol)
    torch.testing.assert_close(more_pad, logits[1:], rtol=0, atol=tol)
    # and it is not what the CLS pooler gives
    assert (logits - tiny_of("minilm", pooling="cls_pooler")(input_ids=ids, attention_mask=mask).logits).abs().max() > 1e-3


def test_cls_pooler_is_hf_class_bit_for_bit():
    from transformers import AutoConfig, AutoModelForSequenceClassification

    ours = tiny_of("tiny_bert")
    assert pooling_of(ours) == "cls_pooler" and type(ours.bert.pooler).__name__ == "BertPooler"
    theirs = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(**TINY_BERT, num_labels=3)).eval()
    theirs.load_state_dict(ours.state_dict())
    ids, mask = batch_with_padding()
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids, attention_mask=mask).logits, theirs(input_ids=ids, attention_mask=mask).logits)


def test_cls_reads_the_raw_first_token_state():
    model = tiny_of("tiny_bert", pooling="cls")
    ids, mask = batch_with_padding()
    with torch.no_grad():
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, model.classifier(hidden[:, 0]))
    assert not any("pooler" in n for n, _ in model.named_parameters())  # the unused pooler weights left the model


def test_bad_pooling_is_one_config_error_naming_key_value_and_allowed():
    with pytest.raises(ConfigError) as err:
        parse_backbone_config({"name": "x", "pooling": "max"})
    assert "backbone.pooling" in str(err.value) and "'max'" in str(err.value) and "cls_pooler, cls, mean" in str(err.value)
    with pytest.raises(ConfigError, match="backbone.pooling.*GPT2ForSequenceClassification.*allowed: cls_pooler"):
        apply_pooling(tiny_gpt2(), "mean")


def test_save_load_round_trips_the_mean_head_and_refuses_another_pooling(tmp_path):
    from lora_lab.adapters.io import load_adapter, read_adapter_meta, save_adapter

    model = tiny_of("minilm")
    method, report = attach(model, "bert", r=2)
    assert report.head_modules == ["classifier"]  # the only new, trained parameters: no pooler left to train
    perturb_adapters(method)
    with torch.no_grad():
        model.classifier.weight.add_(0.5)
    record = {"name": "tiny", "pooling": "mean", "model_kind": "classification"}
    save_adapter(tmp_path / "a", model, method, record)
    assert read_adapter_meta(tmp_path / "a")["backbone"]["pooling"] == "mean"
    ids, mask = batch_with_padding()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
    fresh = tiny_of("minilm")
    load_adapter(tmp_path / "a", fresh)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(input_ids=ids, attention_mask=mask).logits, want)
    with pytest.raises(ConfigError, match="trained with pooling 'mean' but the model pools with 'cls_pooler'"):
        load_adapter(tmp_path / "a", tiny_of("minilm", pooling="cls_pooler"))


def test_peft_export_of_a_mean_head_says_what_peft_cannot_express_and_reproduces_with_it(tmp_path):
    import copy
    import json
    import os
    import subprocess
    import sys
    import warnings

    from peft import PeftModel

    from lora_lab.adapters.io import save_adapter

    model = tiny_of("minilm")
    method, _ = attach(model, "bert", r=2)
    perturb_adapters(method)
    save_adapter(tmp_path / "run" / "adapter", model, method, {"name": "tiny", "pooling": "mean", "model_kind": "classification"})
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "lora_lab.cli", "export", str(tmp_path / "run"), str(tmp_path / "peft")],
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "PEFT cannot express backbone.pooling='mean'" in notes[0] and "apply_pooling(base, 'mean')" in notes[0]
    provenance = json.loads((tmp_path / "peft" / "lora_lab_export.json").read_text())
    assert provenance["pooling"] == "mean" and provenance["not_expressed_by_peft"] == notes[0][len("note: "):]

    ids, mask = batch_with_padding()
    bare = tiny_of("minilm", pooling="cls_pooler")  # the HF class, as PEFT's SEQ_CLS loader builds it
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model.eval()(input_ids=ids, attention_mask=mask).logits
        with_pooling = PeftModel.from_pretrained(apply_pooling(copy.deepcopy(bare), "mean"), str(tmp_path / "peft")).eval()
        without = PeftModel.from_pretrained(copy.deepcopy(bare), str(tmp_path / "peft")).eval()
        # the same fp32 operations in the same order: PEFT's LoRA forward adds s * B(A x) as ours does
        torch.testing.assert_close(with_pooling(input_ids=ids, attention_mask=mask).logits, want, rtol=0, atol=4 * EPS32 * (float(want.abs().max()) + 1))
        assert (without(input_ids=ids, attention_mask=mask).logits - want).abs().max() > 1e-3
