"""Compose a trial's config as ``lora-lab train`` would, and turn Hydra's multi-line failures into one
`ConfigError` line that names the key, the bad value and the allowed values.

- `compose`: the config of ``lora-lab train OVERRIDES`` (``hydra`` node included); a typo'd key
  without ``+``, an unknown group option or a resolver error (``lr_scale=-1``) is one line with a
  did-you-mean among the allowed keys;
- `unknown_group_choice`, `unknown_override_key`: those checks on their own (the gate runs them before
  Hydra starts);
- `schema_settable`: a key a group's schema has but the chosen option's YAML lacks is written
  ``++group.key=value`` for Hydra, so no user ever types the ``+``;
- `container`: a node resolved to plain Python, a resolver's error as its one line.

Parsing the composed config into the typed schemas is `lora_lab.config.trial_config`'s job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from lora_lab.adapters import parse_config
from lora_lab.errors import ConfigError, did_you_mean
from lora_lab.config.resolvers import register_resolvers
from lora_lab.resources import config_dir
from lora_lab.config.schema_keys import SCHEMA_GROUPS, schema_keys, settable

#: the shipped config directory (inside the installed package)
CONF_DIR = str(config_dir())
register_resolvers()


def unknown_key(path: str, allowed) -> ConfigError:
    allowed = sorted(str(a) for a in allowed)
    name = path.rsplit(".", 1)[-1]
    return ConfigError(path, f"unknown key{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The `ConfigError` an OmegaConf/Hydra exception wraps (a resolver's error), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def container(node) -> dict:
    if node is None:
        return {}
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception as err:  # noqa: BLE001 -- a resolver's ConfigError comes back as one line
        inner = config_error_in(err)
        if inner is not None:
            raise inner from None
        raise ConfigError("config", " ".join(str(err).split()).split(" full_key:")[0]) from None


def search_dirs(argv: list[str], conf_dir: str | os.PathLike = CONF_DIR) -> list[Path]:
    """``conf_dir`` and the user's config directories that a ``hydra.searchpath=[file://...]`` override
    adds (Hydra's search path: their options extend every group, `lora_lab.resources`)."""
    dirs = [Path(conf_dir)]
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            dirs += [Path(item.strip().strip("'\"")[len("file://"):]) for item in value.strip("[]").split(",")
                     if item.strip().strip("'\"").startswith("file://")]
    return dirs


def unknown_group_choice(argv: list[str], conf_dir: str | os.PathLike = CONF_DIR) -> ConfigError | None:
    """The first ``group=option`` command-line override naming an option that no ``<group>/`` of the
    config search path holds, as a one-line `ConfigError` listing the allowed options (Hydra's own
    message spans ~20 lines)."""
    roots = search_dirs(argv, conf_dir)
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith("hydra") or "." in key or not any((root / key).is_dir() for root in roots):
            continue
        allowed = sorted({p.stem for root in roots for p in (root / key).glob("*.yaml")})
        for option in value.strip("[]").split(","):  # a multirun list names several options; [a,b] selects both
            option = option.strip()
            if option and option != "null" and not any((root / key / f"{option}.yaml").is_file() for root in roots):
                return ConfigError(key, f"unknown option {option!r}{did_you_mean(option, allowed)}; allowed: {', '.join(allowed)}")
    return None


def _is_group_choice(arg: str, conf_dir: Path) -> bool:
    key = arg.partition("=")[0].lstrip("+~")
    return "." not in key and (key.startswith("hydra/") or (conf_dir / key).is_dir())


def _compose(overrides: list[str], config_name: str, config_dir: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)


def _base(overrides: list[str], config_name: str, config_dir: str) -> DictConfig | None:
    """The config composed from the group choices (and search path) of ``overrides`` only: what the
    value overrides apply to. A swept choice (``task=a,b``) composes its first option; None when the
    choices themselves fail (Hydra's message is then reported)."""
    chosen = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            chosen.append(item)
        elif _is_group_choice(item, Path(config_dir)):
            chosen.append(f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else item)
    try:
        return _compose(chosen, config_name, config_dir)
    except Exception:  # noqa: BLE001
        return None


def _schema_node(node: DictConfig) -> dict:
    """What picks a group option's schema: its task ``kind`` or adapter ``method``."""
    return {k: node.get(k) for k in ("kind", "method") if k in node}


def schema_settable(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> list[str]:
    """``overrides`` with each ``group.key=value`` whose key a schema of the group has (any option:
    a study may sweep the option, e.g. ``task.data_dir`` for GLUE tasks while the default task is
    synthetic) but the composed option's YAML lacks written as Hydra's ``++group.key=value``
    (`lora_lab.config.schema_keys`); the schema check of each trial then judges it against its own option.
    Overrides of keys the YAML has are left as given. Composes once, only when a candidate is present."""
    candidates = {i for i, item in enumerate(overrides) if settable([item]) != [item]}
    base = _base(overrides, config_name, config_dir) if candidates else None
    if base is None:
        return list(overrides)
    out = list(overrides)
    for i in candidates:
        group, _, name = out[i].partition("=")[0].partition(".")
        node = base.get(group)
        if isinstance(node, DictConfig) and name not in node.keys():  # (`in node` is False for a ``???`` value)
            out[i] = f"++{out[i]}"
    return out


def unknown_override_key(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> ConfigError | None:
    """For an override ``a.b=v`` (no ``+``) whose key the composed config lacks: one line naming
    the allowed keys at ``a`` (for a group with a schema: the schema's keys, `lora_lab.config.schema_keys`)
    and the closest one."""
    base = _base(overrides, config_name, config_dir)
    if base is None:
        return None
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or _is_group_choice(item, Path(config_dir)):
            continue
        parent_path, _, name = key.rpartition(".")
        parent = OmegaConf.select(base, parent_path) if parent_path else base
        if isinstance(parent, DictConfig) and name not in parent:
            if parent_path == "adapter":  # the method schema's message: whose knob it is, the closest one
                parse_config({**OmegaConf.to_container(parent, resolve=False), name: None})
            allowed = [k for k in parent if str(k) != "hydra"]
            if parent_path in SCHEMA_GROUPS:
                allowed = schema_keys(parent_path, _schema_node(parent))
            return unknown_key(key, allowed)
    return None


def missing_option(message: str) -> ConfigError | None:
    """Hydra's "Could not find 'hydra/launcher/nope'" + its list of available options, as one line."""
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if found is None:
        return None
    group, option = found.groups()
    listed = message.split("Available options", 1)[1].split(":", 1)[-1] if "Available options" in message else ""
    allowed = [o.strip() for o in listed.split("\n") if o.strip() and " " not in o.strip()]
    return ConfigError(group, f"unknown option {option!r}{did_you_mean(option, allowed)}; allowed: {', '.join(allowed) or '(none)'}")


def compose(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> DictConfig:
    """The config ``lora-lab train OVERRIDES`` runs with (``hydra`` node included); Hydra's errors
    become one `ConfigError` line."""
    err = unknown_group_choice(overrides, config_dir)
    if err is not None:
        raise err
    try:
        return _compose(overrides, config_name, config_dir)
    except Exception as failure:  # noqa: BLE001 -- Hydra's messages span many lines
        inner = config_error_in(failure) or missing_option(str(failure)) or unknown_override_key(overrides, config_name, config_dir)
        if inner is not None:
            raise inner from None
        text = " ".join(str(failure).split()).split(" Config search path:")[0]
        raise ConfigError("overrides", text) from None


def run_dir_of(cfg: DictConfig) -> Path:
    """Where a single (non-multirun) ``lora-lab train`` writes: ``hydra.run.dir``."""
    try:
        return Path(str(cfg.hydra.run.dir))
    except Exception as err:  # noqa: BLE001
        inner = config_error_in(err)
        if inner is not None:
            raise inner from None
        raise ConfigError("hydra.run.dir", " ".join(str(err).split()).split(" full_key:")[0]) from None
