"""Trackers are found, not listed: each ``lora_lab/tracking/*_tracker.py`` registers its backend, a
plug-in adds one the same way, and the config check asks the backend itself which keys it takes and
which values are bad."""

import sys
from pathlib import Path

import pytest
import yaml

from lora_lab.config.trial_config import check_loggers
from lora_lab.errors import ConfigError
from lora_lab.tracking import registry
from lora_lab.tracking.base import Tracker
from lora_lab.tracking.settings import probe_trackers

CONF_LOGGERS = Path(__file__).resolve().parents[2] / "conf" / "logger"


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "TRACKERS", dict(registry.TRACKERS))


class LevelTracker(Tracker):
    """A plug-in's tracker: one setting, checked by the backend; its "server" is the probe's flag."""

    name, package, extra = "level", "json", "level"
    reachable = True

    def __init__(self, run_dir, config, level: int = 1):
        super().__init__(run_dir, config)

    @classmethod
    def check_settings(cls, node_name, node):
        if node.get("level", 1) < 0:
            raise ConfigError(f"logger.{node_name}.level", f"must be >= 0, got {node['level']}")

    @classmethod
    def probe(cls, node_name, node):
        if not cls.reachable:
            raise ConfigError(f"logger.{node_name}.tracker", "the level server is down")


def test_the_shipped_trackers_are_discovered_each_with_its_logger_config():
    assert sorted(registry.TRACKERS) == ["mlflow", "tensorboard", "wandb"]
    for name, cls in registry.TRACKERS.items():
        node = yaml.safe_load((CONF_LOGGERS / f"{name}.yaml").read_text())[name]
        assert node["tracker"] == name and cls.package and cls.extra
        assert cls.__module__ == f"lora_lab.tracking.{name}_tracker"


def test_a_registered_tracker_checks_its_own_keys_and_values(fresh_registry, monkeypatch):
    with pytest.raises(ConfigError, match=r"unknown tracker 'level'; allowed: mlflow, tensorboard, wandb$"):
        check_loggers({"lv": {"tracker": "level"}})
    registry.register_tracker(LevelTracker)
    check_loggers({"lv": {"tracker": "level", "level": 3}})
    with pytest.raises(ConfigError) as err:
        check_loggers({"lv": {"tracker": "level", "level": -2}})
    assert str(err.value) == "logger.lv.level: must be >= 0, got -2"
    with pytest.raises(ConfigError) as err:
        check_loggers({"lv": {"tracker": "level", "levle": 3}})
    assert str(err.value) == "logger.lv.levle: is not a setting of the level tracker; allowed: tracker, level"
    monkeypatch.setattr(LevelTracker, "reachable", False)
    with pytest.raises(ConfigError, match="logger.lv.tracker: the level server is down"):
        probe_trackers({"lv": {"tracker": "level"}, "csv": {"_target_": "lightning.pytorch.loggers.CSVLogger"}})
    monkeypatch.setitem(sys.modules, "json", None)  # its package missing: the extra is named
    with pytest.raises(ConfigError, match=r'logger.lv.tracker: level is not installed; install it with: pip install -e "\.\[level\]"'):
        check_loggers({"lv": {"tracker": "level"}})


def test_a_name_taken_by_another_backend_is_refused(fresh_registry):
    class Impostor(LevelTracker):
        name = "mlflow"

    with pytest.raises(ValueError, match="tracker 'mlflow' of .*Impostor is already MlflowTracker"):
        registry.register_tracker(Impostor)
    assert registry.TRACKERS["mlflow"].__name__ == "MlflowTracker"


def test_the_docs_example_tracker_registers_and_checks_as_documented(fresh_registry, monkeypatch):
    """docs/tracking.md's "Adding a tracker" example, executed: it registers, and its check runs."""
    import re
    import types

    text = (Path(__file__).resolve().parents[2] / "docs" / "tracking.md").read_text()
    example = re.search(r"### Adding a tracker.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(example, "docs/tracking.md", "exec"), {"__name__": "docs_example"})
    assert registry.TRACKERS["mine"].__name__ == "MyTracker"
    monkeypatch.setitem(sys.modules, "my_package", types.ModuleType("my_package"))
    check_loggers({"mine": {"tracker": "mine", "project": "paper_1"}})
    with pytest.raises(ConfigError) as err:
        check_loggers({"mine": {"tracker": "mine", "project": "paper 1"}})
    assert str(err.value) == "logger.mine.project: must be an identifier, got 'paper 1'"
