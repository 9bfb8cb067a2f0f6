"""The parsed `TrialConfig` travels from the entry point to the module and the optimizer: the module
holds the very objects `lora_lab.config.trial_config.parse` made (identity, not equality), and no parser of any
group runs again while the trial builds, trains and records."""

from __future__ import annotations

import pytest

import lora_lab.adapters.method
import lora_lab.models.backbones
import lora_lab.models.module
import lora_lab.models.optim
import lora_lab.run.trial
import lora_lab.tasks.registry
from lora_lab.config.trial_config import parse
from lora_lab.config.compose import compose
from lora_lab.models.optim import OptimConfig, parse_optim

PARSERS = [
    (lora_lab.models.optim, "parse_optim"),
    (lora_lab.models.module, "parse_optim"),
    (lora_lab.models.backbones, "parse_backbone_config"),
    (lora_lab.models.module, "parse_backbone_config"),
    (lora_lab.adapters.method, "parse_config"),
    (lora_lab.models.module, "parse_config"),
    (lora_lab.tasks.registry, "parse_task_config"),
]


def test_the_module_gets_the_parsed_objects_and_nothing_parses_again(tmp_path, monkeypatch):
    trial = parse(compose(["task=synthetic", "backbone=tiny_bert", "adapter=lora", "adapter.r=2", "task.train_size=16", "task.val_size=8",
                           "task.test_size=8", "task.batch_size=8", "trainer.max_steps=2", "trainer.max_epochs=1", "logger=none",
                           "progress.mode=none", f"paths.runs_root={tmp_path / 'runs'}", "save_adapter=false"]))
    assert isinstance(trial.optim, OptimConfig) and trial.optim.lr == pytest.approx(5e-4)
    calls: list[str] = []
    for module, name in PARSERS:
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _name=name, _original=original, **k: (calls.append(_name), _original(*a, **k))[1])
    seen = {}
    configure = lora_lab.models.module.AdapterModule.configure_model

    def configure_and_look(self):
        seen["module"] = self
        configure(self)

    monkeypatch.setattr(lora_lab.models.module.AdapterModule, "configure_model", configure_and_look)
    record = lora_lab.run.trial.run_in_dir(trial, tmp_path / "run")
    assert record["status"] == "success" and record["optimizer_steps"] == 2
    module = seen["module"]
    assert module.backbone_cfg is trial.backbone and module.adapter_cfg is trial.adapter
    assert module.optim_cfg is trial.optim and module.task_cfg is trial.task
    assert calls == [], f"parsed again during the trial: {calls}"
    assert record["config"]["optim"]["lr"] == trial.optim.lr  # the record keeps the resolved values


def test_parse_optim_refuses_bad_values_in_one_line():
    from lora_lab.errors import ConfigError

    for bad, key in [({"lr": 0}, "optim.lr"), ({"lr": "fast"}, "optim.lr"), ({"scheduler": "cosin"}, "optim.scheduler"),
                     ({"betas": [0.9]}, "optim.betas"), ({"warmup_ratio": 1.5}, "optim.warmup_ratio"), ({"lrr": 1e-3}, "optim.lrr"),
                     ({"name": "sgd"}, "optim.name"), ({"warmup_steps": -1}, "optim.warmup_steps")]:
        with pytest.raises(ConfigError) as err:
            parse_optim(bad)
        assert err.value.key == key and "\n" not in str(err.value)
    assert "did you mean `cosine`" in str(pytest.raises(ConfigError, parse_optim, {"scheduler": "cosin"}).value)
    cfg = parse_optim({"lr": "1e-3", "warmup_steps": 3, "betas": [0.8, 0.9]})
    assert (cfg.lr, cfg.warmup(100), cfg.betas) == (1e-3, 3, (0.8, 0.9))
    assert parse_optim({"warmup_ratio": 0.1}).warmup(50) == 5
