"""Plug-ins: modules outside the package that register methods, inits, task families or trackers on import.

A distribution declares them as entry points of the group ``lora_lab.plugins`` (`PLUGIN_GROUP`)::

    [project.entry-points."lora_lab.plugins"]
    my_plugin = "my_package.my_module"

(or, without installing, a ``<name>.dist-info/entry_points.txt`` on ``sys.path``). The registries
(`lora_lab.adapters.registry.discover`, `lora_lab.tasks.registry`, `lora_lab.tracking.registry`) call `load_plugins` after importing
their own modules, so a plug-in appears in the CLI, the config check, the tests and the report like a
built-in. This module imports only the standard library.
"""

from __future__ import annotations

from importlib.metadata import entry_points

PLUGIN_GROUP = "lora_lab.plugins"


def load_plugins() -> list[str]:
    """Import every module of the ``lora_lab.plugins`` entry-point group (cached by ``sys.modules``,
    so calling it again is free); returns the entry-point names."""
    names = []
    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load()
        names.append(ep.name)
    return names
