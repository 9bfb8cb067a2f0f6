"""Per-method default learning rates with the lr_scale nuisance axis, and budget-matched ranks."""

import pytest
from hydra import compose, initialize_config_dir

from lora_lab.errors import ConfigError
from lora_lab.config.resolvers import ceil_mul, scale_lr
from lora_lab.models.budget import adapter_param_count, budget_rank, parse_budget
from lora_lab.config.compose import CONF_DIR

TINY = {"name": "tiny-bert-random", "short_name": "tiny_bert", "random_init": {
    "model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 64}}


def _compose(overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def test_each_method_has_its_own_default_lr_scaled_by_lr_scale():
    table = _compose([]).method_lr
    assert table.adalora > table.lora  # AdaLoRA starts from E = 0 and needs a larger step
    assert _compose([]).optim.lr == table.lora
    assert _compose(["adapter.method=adalora"]).optim.lr == table.adalora
    assert _compose(["adapter.method=some_new_method"]).optim.lr == table.default
    assert _compose(["adapter=vera"]).optim.lr == table.vera == 8 * table.lora  # only scaling vectors train
    cfg = _compose(["adapter.method=adalora", "lr_scale=0.5"])
    assert cfg.optim.lr == pytest.approx(table.adalora / 2)
    assert cfg.run_name.endswith(f"/lr{table.adalora / 2}-seed0")
    assert _compose(["optim.lr=3e-4", "adapter.method=adalora"]).optim.lr == 3e-4  # an explicit lr wins


def test_scaled_lr_is_concrete_and_readable():
    assert scale_lr(1e-4, 3) == 0.0003 and str(scale_lr(1e-4, 3)) == "0.0003"
    assert scale_lr("5e-4", "0.5") == 0.00025
    with pytest.raises(ConfigError, match="^optim.lr: must be positive"):
        scale_lr(5e-4, 0)
    assert [ceil_mul(t, 1.5) for t in (1, 2, 4, 8)] == [2, 3, 6, 12]


def test_parse_budget():
    assert [parse_budget(b) for b in (300000, "300K", "1.27M", "50k")] == [300000, 300000, 1270000, 50000]
    with pytest.raises(ConfigError, match="^budget: must be a parameter count"):
        parse_budget("lots")


def test_meta_count_equals_a_real_attach_and_budget_rank_is_closest():
    from tests.helpers import attach, tiny_bert

    # tiny BERT: hidden 32, q and v in 2 layers -> r * (32 + 32) * 4 = 256 r
    assert adapter_param_count("lora", 3, "qv", [], TINY) == 768
    _, report = attach(tiny_bert(), "bert", r=3, targets="qv")
    assert report.adapter_params == 768
    assert budget_rank(1000, "lora", "qv", [], TINY) == 4  # 1024 is closer than 768
    assert budget_rank("2.0K", "lora", "attn", [], TINY) == 4  # 4 matrices x 2 layers: 512 r -> 2048
    assert budget_rank(10, "lora", "qv", [], TINY) == 1  # never below rank 1
    with pytest.raises(ConfigError, match="^adapter.method: unknown method 'nope'"):
        budget_rank(1000, "nope", "qv", [], TINY)
