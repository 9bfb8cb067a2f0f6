"""The tracker registry: every `Tracker` backend, found by discovery, with no list to edit.

A backend is a `Tracker` subclass in a module ``lora_lab/tracking/<name>_tracker.py`` decorated with
``@register_tracker``; `discover` imports those modules (they import their tracker's package only
when a run starts, so discovery is cheap) and then the plug-ins (`lora_lab.plugins`), which may
register trackers of their own. `load_tracker_class` is what the config check and the trial call:
an unknown name or a missing package is one line naming the key.
"""

from __future__ import annotations

import importlib
import pkgutil

from lora_lab.errors import ConfigError
from lora_lab.plugins import load_plugins

#: ``tracker:`` value -> backend class, in discovery order
TRACKERS: dict[str, type] = {}
MODULE_SUFFIX = "_tracker"


def register_tracker(cls: type) -> type:
    """Add backend ``cls`` under ``cls.name``; a name taken by another class is an error."""
    known = TRACKERS.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"tracker {cls.name!r} of {cls.__qualname__} is already {known.__qualname__}")
    TRACKERS[cls.name] = cls
    return cls


def discover() -> None:
    """Import every ``lora_lab.tracking.*_tracker`` module (each registers its backend), then the plug-ins."""
    package = importlib.import_module("lora_lab.tracking")
    for info in pkgutil.iter_modules(package.__path__, "lora_lab.tracking."):
        if info.name.endswith(MODULE_SUFFIX):
            importlib.import_module(info.name)
    load_plugins()


def load_tracker_class(name: str, key: str = "logger.tracker") -> type:
    """The backend class of tracker ``name``; an unknown name or a missing package is one line."""
    if name not in TRACKERS:
        raise ConfigError(key, f"unknown tracker {name!r}; allowed: {', '.join(TRACKERS)}")
    cls = TRACKERS[name]
    try:
        importlib.import_module(cls.package)
    except ImportError:
        raise ConfigError(key, f"{name} is not installed; install it with: pip install -e \".[{cls.extra}]\" (or \".[tracking]\" for all trackers)") from None
    return cls


discover()
