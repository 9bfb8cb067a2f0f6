"""Every config option composes through the production path and passes schema validation."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lora_lab.config.naming import adapter_tag
from lora_lab.config.trial_config import validate
from lora_lab.config.compose import CONF_DIR

CONF = Path(CONF_DIR)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("task", options("task"))
def test_every_task_composes(task, tmp_path):
    from tests.tasks.test_registry import byo_overrides  # bring-your-own-data tasks need files

    from lora_lab.tasks.base import classification_model
    from lora_lab.tasks.registry import FAMILIES, TASK_SCHEMAS

    overrides = [f"task={task}", *byo_overrides(task, tmp_path)]
    if FAMILIES[TASK_SCHEMAS[_compose(overrides).task.kind].family].model_kind is not classification_model:
        overrides.append("backbone=tiny_llama")  # the default (MiniLM) is encoder-only: refused for generation
    validate(_compose(overrides))


@pytest.mark.parametrize("adapter", options("adapter"))
def test_every_adapter_composes(adapter):
    cfg = _compose([f"adapter={adapter}"])
    validate(cfg)
    assert cfg.run_name.count("/") == 3


@pytest.mark.parametrize("group", ["backbone", "trainer", "optim", "callbacks", "logger"])
def test_every_option_of_group_composes(group):
    for option in options(group):
        overrides = [f"{group}={option}"] + (["backbone.name=some/model"] if option == "hub" else [])
        cfg = _compose(overrides)
        OmegaConf.to_container(cfg, resolve=True)
        validate(cfg)


@pytest.mark.parametrize("kind,name", [("experiment", e) for e in options("experiment")] + [("debug", d) for d in options("debug")])
def test_experiments_and_debug_compose(kind, name):
    validate(_compose([f"{kind}={name}"]))


def test_run_name_by_meaning_and_distinct_per_knob():
    base = _compose(["adapter.r=4", "seed=3"])
    assert base.run_name == "synthetic/minilm/lora-r4-a16-kaiming-qv/lr0.0005-seed3"
    names = {
        _compose(o).run_name
        for o in (["adapter.dropout=0.1"], ["adapter.rslora=true"], ["adapter.targets=[query,value]"], ["adapter.exclude=[value]"], [])
    }
    assert len(names) == 5
    assert adapter_tag({"method": "lora", "r": 8, "alpha": 16.0, "init": "kaiming", "targets": r".*\.query", "rslora": False}).startswith("lora-r8-a16-kaiming-re")


def test_quantised_base_gets_its_own_run_name():
    """A QLoRA run never shares a run directory (and its finished result.json) with its fp32 twin."""
    names = {q: _compose(["adapter.r=4", "seed=3"] + ([f"backbone.quantize={q}"] if q else [])).run_name for q in (None, "nf4", "int8")}
    assert names[None] == "synthetic/minilm/lora-r4-a16-kaiming-qv/lr0.0005-seed3"
    assert names["nf4"] == "synthetic/minilm-nf4/lora-r4-a16-kaiming-qv/lr0.0005-seed3"
    assert names["int8"] == "synthetic/minilm-int8/lora-r4-a16-kaiming-qv/lr0.0005-seed3"
    validate(_compose(["backbone.quantize=nf4", "+backbone.compute_dtype=bfloat16", "+backbone.double_quant=false"]))
