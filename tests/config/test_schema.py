"""Config schemas reject typos, unknown names and out-of-range values with one clear line."""

import dataclasses

import pytest

from lora_lab.adapters import METHODS, allowed_inits, parse_config
from lora_lab.adapters.config import AdapterConfig, check_default_init, parse_adapter_config
from lora_lab.adapters.lora import LoraConfig
from lora_lab.adapters.method import AdapterMethod, register_method
from lora_lab.tasks.registry import parse_task_config
from lora_lab.errors import ConfigError
from lora_lab.models.backbones import parse_backbone_config


@pytest.mark.parametrize(
    "raw,key,fragment",
    [
        ({"method": "nope"}, "adapter.method", "allowed: "),
        ({"method": "lora", "rr": 4}, "adapter.rr", "not a knob of method 'lora'"),
        ({"method": "lora", "r": 0}, "adapter.r", "positive integer"),
        ({"method": "lora", "r": -2}, "adapter.r", "positive integer"),
        ({"method": "lora", "r": 2.5}, "adapter.r", "positive integer"),
        ({"method": "lora", "alpha": 0}, "adapter.alpha", "positive number"),
        ({"method": "lora", "alpha": -1.0}, "adapter.alpha", "positive number"),
        ({"method": "lora", "dropout": 1.0}, "adapter.dropout", "[0, 1)"),
        ({"method": "lora", "init": "xavier"}, "adapter.init", "allowed: "),
        ({"method": "lora", "targets": []}, "adapter.targets", "non-empty"),
        # each method declares exactly its own knobs and inits
        ({"method": "vera", "alpha": 8}, "adapter.alpha", f"not a knob of method 'vera' (a knob of {', '.join(sorted(m for m, c in METHODS.items() if 'alpha' in c.config_cls.__dataclass_fields__))} only)"),
        ({"method": "vera", "rslora": True}, "adapter.rslora", "not a knob of method 'vera'"),
        ({"method": "adalora", "rslora": True}, "adapter.rslora", "not a knob of method 'adalora'"),
        ({"method": "vera", "init": "pissa"}, "adapter.init", f"'pissa' is not an init of method 'vera'; allowed: {', '.join(allowed_inits('vera'))}"),
        ({"method": "adalora", "init": "kaiming"}, "adapter.init", f"allowed: {', '.join(allowed_inits('adalora'))}"),
        ({"method": "lora", "init": "pissa_niter_"}, "adapter.init", f"allowed: {', '.join(allowed_inits('lora'))}"),
        ({"method": "loraplus", "loraplus_lr_ratio": 0}, "adapter.loraplus_lr_ratio", "positive number"),
        ({"method": "vera", "r": 0}, "adapter.r", "positive integer"),
        ({"method": "vera", "projection_prng_key": -1}, "adapter.projection_prng_key", ">= 0"),
    ],
)
def test_adapter_schema_errors(raw, key, fragment):
    """One line naming the key; a knob or init the method does not declare is refused."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key and fragment in str(err.value) and "\n" not in str(err.value)


def test_method_only_knob_on_other_method_names_owner():
    @dataclasses.dataclass
    class WithBudget(LoraConfig):
        method: str = "budgeted"
        target_r: int = 4

    registry = {"lora": LoraConfig, "budgeted": WithBudget}
    with pytest.raises(ConfigError, match=r"adapter.target_r: is not a knob of method 'lora' \(a knob of budgeted only\)"):
        parse_adapter_config({"method": "lora", "target_r": 2}, registry)
    assert parse_adapter_config({"method": "budgeted", "target_r": 2}, registry).target_r == 2


def test_allowed_inits_are_the_registered_ones_of_the_family():
    """The gate's list is the registry's: pissa is LoRA's and DoRA's (family ``lora``), not VeRA's."""
    assert "pissa" in allowed_inits("lora") and allowed_inits("dora") == allowed_inits("lora") == allowed_inits("loraplus")
    assert "pissa" not in allowed_inits("vera") and allowed_inits("adalora") == ("adalora",)


def test_a_method_whose_default_init_is_not_registered_is_refused():
    """A schema whose family has no registered init named like its default cannot pass the check
    that runs after discovery; one without a default init cannot register at all."""

    @dataclasses.dataclass
    class NoInits(AdapterConfig):
        method: str = "noinits"
        init: str = "kaiming"

    with pytest.raises(TypeError, match="default init 'kaiming' is not registered for family 'noinits'"):
        check_default_init(NoInits)

    @dataclasses.dataclass
    class NoDefault(AdapterConfig):
        method: str = "nodefault"

    class NoDefaultMethod(AdapterMethod):
        name = "nodefault"
        config_cls = NoDefault

    with pytest.raises(TypeError, match="names no default init"):
        register_method(NoDefaultMethod)
    assert "nodefault" not in METHODS


def test_task_and_backbone_schema_errors():
    with pytest.raises(ConfigError, match="task.kind"):
        parse_task_config({"kind": "imagenet"})
    with pytest.raises(ConfigError, match="task.glue_task: unknown GLUE task 'sst3'"):
        parse_task_config({"kind": "glue", "glue_task": "sst3"})
    with pytest.raises(ConfigError, match="task.batchsize"):
        parse_task_config({"kind": "glue", "batchsize": 3})
    with pytest.raises(ConfigError, match="backbone.dtype"):
        parse_backbone_config({"name": "x", "dtype": "int3"})
    with pytest.raises(ConfigError, match="backbone.nmae"):
        parse_backbone_config({"nmae": "x"})


def test_half_true_precisions_refused_adapters_stay_fp32():
    from lora_lab.errors import ConfigError
    from lora_lab.config.trial_config import check_precision

    for ok in ("32-true", 32, "bf16-mixed", "16-mixed", None):
        check_precision(ok)
    for bad in ("bf16-true", "16-true"):
        with pytest.raises(ConfigError, match=r"trainer.precision: .* would cast the adapter weights to 16 bits; allowed: 32-true"):
            check_precision(bad)


def test_a_config_error_is_one_line_even_when_it_quotes_a_multi_line_library_message():
    """A library's error quoted in the message (transformers' download failures span three lines) must
    not break the one-line contract of the CLI's error output; spaces inside a line are kept."""
    from lora_lab.errors import ConfigError

    err = ConfigError("RUN", "cannot be rebuilt (We couldn't connect to the Hub.\nCheck your internet connection  or see\r\n  offline mode.)")
    assert str(err) == "RUN: cannot be rebuilt (We couldn't connect to the Hub. Check your internet connection  or see offline mode.)"
    assert err.key == "RUN"
