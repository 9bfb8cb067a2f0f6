"""Recipes (conf/recipe/<task>-<backbone>.yaml) apply to exactly their task x backbone pair and
yield to command-line overrides."""

from hydra import compose, initialize_config_dir

from lora_lab.config.trial_config import validate

from lora_lab.config.compose import CONF_DIR


def _compose(overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def test_wikisql_synthetic_smollm2_recipe():
    cfg = _compose(["task=wikisql_synthetic", "backbone=smollm2"])
    validate(cfg)
    assert cfg.trainer.max_steps > 0 and cfg.trainer.max_epochs == -1 and cfg.trainer.precision == "32-true"
    assert cfg.task.val_size < 200 and cfg.run_name.startswith("wikisql_synthetic/smollm2/lora-")
    assert _compose(["task=wikisql_synthetic", "backbone=smollm2", "trainer.max_steps=7"]).trainer.max_steps == 7
    # the learning rate stays method default x lr_scale, so lr sweeps still apply
    assert cfg.optim.lr == 2e-3 and _compose(["task=wikisql_synthetic", "backbone=smollm2", "lr_scale=0.5"]).optim.lr == 1e-3


def test_recipe_only_for_its_pair():
    for overrides in (["task=wikisql_synthetic", "backbone=tiny_llama"], ["task=synthetic", "backbone=smollm2"], []):
        cfg = _compose(overrides)
        assert cfg.trainer.max_steps == -1 and cfg.trainer.max_epochs == 3
