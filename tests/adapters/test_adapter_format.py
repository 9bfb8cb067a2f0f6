"""Adapters saved in format version 1 (every method carried LoRA's shared knobs) still load."""

import json

import pytest
import torch

from lora_lab.adapters.io import CONFIG_NAME, FORMAT_VERSION, load_adapter, save_adapter
from lora_lab.errors import ConfigError

from tests.helpers import attach, perturb_adapters, tiny_bert, token_batch


def as_version_1(adapter_dir, **extra_knobs) -> None:
    path = adapter_dir / CONFIG_NAME
    meta = json.loads(path.read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2 and "rslora" not in meta["adapter"]
    meta["format_version"] = 1
    meta["adapter"].update(extra_knobs)
    path.write_text(json.dumps(meta))


def saved_adalora(tmp_path):
    model = tiny_bert()
    method, _ = attach(model, "bert", method="adalora", r=4, target_r=2)
    perturb_adapters(method)
    save_adapter(tmp_path, model, method)
    return model


def test_version_1_adalora_with_the_old_shared_rslora_default_loads(tmp_path):
    model = saved_adalora(tmp_path)
    as_version_1(tmp_path, rslora=False)
    fresh = tiny_bert()
    method = load_adapter(tmp_path, fresh)
    assert "rslora" not in method.config.to_dict()
    x = token_batch()
    assert torch.equal(fresh(input_ids=x).logits, model(input_ids=x).logits)


def test_a_version_1_knob_away_from_its_old_default_is_still_refused(tmp_path):
    saved_adalora(tmp_path)
    as_version_1(tmp_path, rslora=True)
    with pytest.raises(ConfigError, match="adapter.rslora: is not a knob of method 'adalora'"):
        load_adapter(tmp_path, tiny_bert())
