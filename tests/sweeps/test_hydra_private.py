"""The planner's only private Hydra call (`lora_lab.sweeps.hydra_private`) and its public-API grid
expansion, checked against Hydra itself. Fails on a Hydra version nobody has checked this against."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from lora_lab.sweeps.expand import grid
from lora_lab.sweeps.hydra_private import TESTED_HYDRA_VERSIONS, hydra_version


def test_hydra_version_is_one_the_private_shortcut_was_checked_against():
    assert hydra_version() in TESTED_HYDRA_VERSIONS, (
        f"Hydra {hydra_version()} is new: rerun tests/sweeps (fast path == compose API), check "
        "ConfigLoaderImpl._apply_overrides_to_config still exists with the same semantics, then add the version "
        "to TESTED_HYDRA_VERSIONS in lora_lab/sweeps/hydra_private.py"
    )


@pytest.mark.parametrize("overrides", [
    ["adapter.r=2,4", "seed=0,1,2"],
    ["adapter=lora,dora", "adapter.r=choice(1,8)", "seed=range(0,3)", "task=glue_rte"],
    ["seed=0,1", "adapter.r=4", "seed=5,6,7"],  # a later override of a key replaces it at its first position
    ["+matched=lora,dora", "~adapter.exclude", "++run_suffix=-x"],
])
def test_grid_is_hydras_basic_sweeper_expansion(overrides):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the reference, in the test only

    parsed = OverridesParser.create().parse_overrides(overrides)
    assert grid(parsed) == BasicSweeper.split_arguments(parsed, None)[0]


def test_value_overrides_have_hydras_semantics():
    from omegaconf import OmegaConf

    from lora_lab.sweeps.hydra_private import apply_value_overrides

    cfg = OmegaConf.create({"a": {"b": 1, "c": 2}, "d": 3})
    OmegaConf.set_struct(cfg, True)
    apply_value_overrides(OverridesParser.create().parse_overrides(["a.b=5", "+a.e=[1,2]", "~d", "++a.c=7"]), cfg)
    assert OmegaConf.to_container(cfg) == {"a": {"b": 5, "c": 7, "e": [1, 2]}}
