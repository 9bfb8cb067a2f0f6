"""`lora-lab merge-adapters` keeps trained heads (issue 17): by default the only adapter's, several
adapters' only when identical, an explicit ``--head-from`` otherwise; the base's own heads on request."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from lora_lab import cli
from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.compose import merge_adapters
from lora_lab.adapters.io import load_adapter, save_adapter
from lora_lab.adapters.peft_export import export_run
from lora_lab.errors import ConfigError

from tests.adapters.peft_helpers import base_model, ours_on
from tests.helpers import token_batch, train_classifier

KIND = "bert"


@pytest.fixture
def base_dir(tmp_path):
    path = tmp_path / "base"
    base_model(KIND).save_pretrained(path)
    return path


def trained(tmp_path, base_dir, name, method="lora", init="kaiming", seed=1, head_like=None):
    """Train an adapter and its classifier three steps on the saved base; ``head_like``: then give it
    the classifier saved in that adapter directory (identical heads)."""
    model = AutoModelForSequenceClassification.from_pretrained(base_dir).train()
    torch.manual_seed(seed)
    m = ours_on(model, KIND, method=method, r=4, alpha=6.0, init=init)
    train_classifier(model, steps=3, lr=5e-2, seed=seed)
    if head_like is not None:
        donor = AutoModelForSequenceClassification.from_pretrained(base_dir)
        load_adapter(head_like, donor)
        model.classifier.load_state_dict(donor.classifier.state_dict())
    record = {"name": str(base_dir), "family": "classification", "num_labels": 2}
    return save_adapter(tmp_path / name, model.eval(), m, backbone=record)


def fresh(base_dir):
    return AutoModelForSequenceClassification.from_pretrained(base_dir).eval()


def logits(model, seed=7):
    with torch.no_grad():
        return model.eval()(input_ids=token_batch(seed=seed)).logits


@pytest.mark.parametrize("method,init", [("lora", "kaiming"), ("dora", "kaiming"), ("lora", "pissa")])
def test_one_adapter_without_flags_keeps_its_trained_head(tmp_path, base_dir, capsys, method, init):
    from peft import PeftModel

    adapter = trained(tmp_path, base_dir, "a", method, init)
    assert cli.main(["merge-adapters", str(tmp_path / "merged"), str(adapter)]) == 0
    out = capsys.readouterr().out
    assert f"heads: classifier from adapter 0 ({adapter}): the only adapter's trained heads" in out
    merged = logits(AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged"))

    ours = fresh(base_dir)
    load_adapter(adapter, ours)
    export_run(adapter, "peft", tmp_path / "peft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = PeftModel.from_pretrained(fresh(base_dir), str(tmp_path / "peft"))
    torch.testing.assert_close(merged, logits(ours), rtol=0, atol=1e-5)
    torch.testing.assert_close(merged, logits(theirs), rtol=0, atol=1e-5)
    assert (merged - logits(fresh(base_dir))).abs().max() > 1e-2  # the adapter and head changed the model

    record = json.loads((tmp_path / "merged" / "lora_lab_merge.json").read_text())
    assert record["head_from"] == 0 and record["head_dir"] == str(adapter) and record["head_modules"] == ["classifier"]
    assert record["head_reason"] == "the only adapter's trained heads"


def test_several_adapters_with_different_heads_need_head_from(tmp_path, base_dir, capsys):
    a = trained(tmp_path, base_dir, "a", seed=1)
    b = trained(tmp_path, base_dir, "b", "dora", seed=2)
    model = fresh(base_dir)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match=r"compose.head_from: missing: adapters 0 and 1 have different trained heads; choose"):
        merge_adapters(model, [(a, 1.0), (b, 1.0)])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing was written
    capsys.readouterr()
    assert cli.main(["merge-adapters", str(tmp_path / "m"), str(a), f"{b}=0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: compose.head_from: missing:") and "--head-from INDEX (0..1)" in err[0]
    assert not (tmp_path / "m").exists()

    assert cli.main(["merge-adapters", str(tmp_path / "m1"), str(a), f"{b}=0.5", "--head-from", "1"]) == 0
    assert f"heads: classifier from adapter 1 ({b}): chosen with head_from" in capsys.readouterr().out
    head_b = fresh(base_dir)
    load_adapter(b, head_b)
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m1")
    for k, v in head_b.classifier.state_dict().items():
        assert torch.equal(merged.classifier.state_dict()[k], v), k
    expected = fresh(base_dir)
    merge_adapters(expected, [(a, 1.0), (b, 0.5)], head_from=1)
    torch.testing.assert_close(logits(merged), logits(expected), rtol=0, atol=1e-6)


def test_identical_heads_need_no_choice(tmp_path, base_dir, capsys):
    a = trained(tmp_path, base_dir, "a", seed=1)
    b = trained(tmp_path, base_dir, "b", seed=2, head_like=a)
    assert cli.main(["merge-adapters", str(tmp_path / "m"), str(a), str(b)]) == 0
    assert "heads: classifier from adapter 0" in capsys.readouterr().out
    record = json.loads((tmp_path / "m" / "lora_lab_merge.json").read_text())
    assert record["head_from"] == 0 and record["head_reason"] == "identical in all 2 adapters"
    head_a = fresh(base_dir)
    load_adapter(a, head_a)
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    assert torch.equal(merged.classifier.weight, head_a.classifier.weight)
    assert not torch.equal(merged.classifier.weight, fresh(base_dir).classifier.weight)


def test_base_heads_only_when_asked_for(tmp_path, base_dir, capsys):
    a = trained(tmp_path, base_dir, "a", seed=1)
    b = trained(tmp_path, base_dir, "b", seed=2)
    assert cli.main(["merge-adapters", str(tmp_path / "m"), str(a), str(b), "--head-from", "none"]) == 0
    assert "heads: the base model's own classifier, not the adapters' trained ones (asked for with head_from=none)" in capsys.readouterr().out
    record = json.loads((tmp_path / "m" / "lora_lab_merge.json").read_text())
    assert record["head_from"] == "none" and record["head_dir"] is None
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    assert torch.equal(merged.classifier.weight, fresh(base_dir).classifier.weight)

    capsys.readouterr()
    for bad, message in (("x", "'x'; allowed: an adapter index (0, 1, ...) or 'none'"), ("2", "2 does not index one of the 2 adapters")):
        assert cli.main(["merge-adapters", str(tmp_path / "bad"), str(a), str(b), "--head-from", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: compose.head_from: ") and message in err[0], err
    assert not (tmp_path / "bad").exists()


def test_adapters_without_heads_need_no_choice(tmp_path):
    """Generation adapters carry no heads: nothing to choose, and the record says so."""
    model = base_model(KIND)
    method = build_method(parse_config({"method": "lora", "targets": ["query"], "r": 2, "alpha": 4.0}))
    method.attach(model, model_type=KIND, head_modules=[])
    a = save_adapter(tmp_path / "a", model, method, backbone={"name": "tiny"})
    b = save_adapter(tmp_path / "b", model, method, backbone={"name": "tiny"})
    report = merge_adapters(base_model(KIND), [(a, 1.0), (b, 1.0)])
    assert report.to_dict()["head_from"] is None and report.to_dict()["head_modules"] == []
    assert report.heads.describe() == "heads: none (the adapters carry no trained heads)"
    with pytest.raises(ConfigError, match="compose.head_from: 0: the adapters carry no trained heads"):
        merge_adapters(base_model(KIND), [(a, 1.0)], head_from=0)
