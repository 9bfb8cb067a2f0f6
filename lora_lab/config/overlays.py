"""Overlays (``debug=tiny``, ``experiment=...``: ``# @package _global_`` options that set keys of other
groups) chosen on the command line of a study whose own settings would silently override them: found
before any trial runs, as one line naming the setting that cannot take effect."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from lora_lab.config.compose import CONF_DIR
from lora_lab.errors import ConfigError

#: the groups whose options are overlays
OVERLAY_GROUPS = ("debug", "experiment")


def _leaves(node, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if key == "defaults":
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, path + "."))
        elif not (isinstance(value, str) and "${" in value):
            out[path] = value
    return out


def _overlay_settings(group: str, option: str, conf_dir: Path) -> dict:
    """Every leaf a ``# @package _global_`` overlay sets, its ``override /group: option`` choices
    expanded into that option's own leaves."""
    path = conf_dir / group / f"{option}.yaml"
    if not path.is_file() or "@package _global_" not in path.read_text():
        return {}
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    settings = _leaves(raw)
    for entry in raw.get("defaults") or []:
        if isinstance(entry, dict):
            for key, choice in entry.items():
                sub = str(key).replace("override", "").strip().lstrip("/")
                chosen = conf_dir / sub / f"{choice}.yaml"
                if "/" not in sub and chosen.is_file():
                    settings.update(_leaves(OmegaConf.to_container(OmegaConf.load(chosen), resolve=False), f"{sub}."))
    return settings


def overlay_conflict(overrides: list[str], trial_overrides: list[str], resolved: dict, conf_dir: str = CONF_DIR) -> ConfigError | None:
    """An overlay chosen on the command line (``debug=tiny``) that a study's own settings silently
    override (the study fixes ``backbone: minilm``): one line naming the setting that cannot take
    effect. Keys set explicitly on the command line or swept by the study are the user's choice."""
    explicit = [o.partition("=")[0].lstrip("+~") for o in [*overrides, *trial_overrides]]
    for item in overrides:
        group, sep, option = item.partition("=")
        if not sep or group not in OVERLAY_GROUPS or option in ("", "null"):
            continue
        for key, value in _overlay_settings(group, option, Path(conf_dir)).items():
            if any(key == e or key.startswith(e + ".") for e in explicit):
                continue
            actual = OmegaConf.select(OmegaConf.create(resolved), key, default=None)
            if actual != value and not (isinstance(value, (int, float)) and isinstance(actual, (int, float)) and float(actual) == float(value)):
                return ConfigError(group, f"{group}={option} sets {key}={value!r} but the study keeps {key}={actual!r}: the overlay cannot take effect (set {key} on the command line, or use a study without that setting)")
    return None
