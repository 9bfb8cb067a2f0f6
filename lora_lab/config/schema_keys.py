"""The keys each config group's schema accepts, so that ``group.key=value`` works on every option of
the group without Hydra's ``+`` (``backbone.dtype=bfloat16``, ``task.max_train_samples=100``,
``task.data_dir=...`` on a GLUE task read from the Hub by default).

A group option's YAML lists only the keys it changes; the schema (`BackboneConfig`, the task kind's
schema, the adapter method's schema, the optimizer keys, Lightning's ``Trainer`` arguments) is the
truth about what may be set. Hydra's struct mode refuses a key the YAML lacks, so `settable` rewrites
a command-line override ``group.key=value`` whose ``key`` is a field of the group's schema to Hydra's
``++group.key=value`` (set it, adding it where the option's YAML lacks it): the same value where the
YAML has the key, the schema's field where it does not. The schema check of the composed config
(`lora_lab.config.trial_config.parse`) then judges the value, and a key of another option's schema (``data_dir``
on the synthetic task) fails there naming that option's keys. Defaults are not copied into the
composed config, so a run that does not set a key keeps the config (and the trial identity) it had.
"""

from __future__ import annotations

import dataclasses
import inspect

#: groups whose keys a schema defines (others, e.g. ``callbacks`` and ``logger``, are free-form)
SCHEMA_GROUPS = ("adapter", "backbone", "task", "optim", "trainer")


def _fields(schema) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def schema_keys(group: str, node: dict | None = None) -> list[str]:
    """The keys ``group``'s schema accepts for ``node`` (the option's composed config: its task kind
    or adapter method picks the schema), or for any option of the group when ``node`` is None."""
    if group == "backbone":
        from lora_lab.models.backbones import BackboneConfig

        return _fields(BackboneConfig)
    if group == "optim":
        from lora_lab.models.optim import OPTIM_KEYS

        return list(OPTIM_KEYS)
    if group == "trainer":
        from lightning import Trainer

        return ["_target_", *(p for p in inspect.signature(Trainer.__init__).parameters if p != "self")]
    if group == "task":
        from lora_lab.tasks.registry import TASK_SCHEMAS

        schemas = TASK_SCHEMAS
        choice = (node or {}).get("kind")
    elif group == "adapter":
        from lora_lab.adapters import config_registry

        schemas = config_registry()
        choice = (node or {}).get("method")
    else:
        return []
    if choice in schemas:
        return _fields(schemas[choice])
    return sorted({key for schema in schemas.values() for key in _fields(schema)})


def settable(overrides: list[str]) -> list[str]:
    """``overrides`` with each plain ``group.key=value`` (no ``+``/``~`` prefix, ``key`` a field of
    some schema of ``group``, one level deep) written as ``++group.key=value``."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        group, dot, name = key.partition(".")
        if sep and dot and "." not in name and group in SCHEMA_GROUPS and name in schema_keys(group):
            item = f"++{key}={value}"
        out.append(item)
    return out
