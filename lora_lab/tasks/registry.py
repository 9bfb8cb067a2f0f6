"""The task families and the task kinds they accept, discovered: a new family is a new package.

A trial never names a family: `parse_task_config` picks the schema by ``task.kind``, the schema names
its family, and `family_of` gives the `TaskFamily` whose ``build`` makes the data module and the
Lightning module. Adding a family = a package under `lora_lab.tasks` whose ``family`` module defines
``FAMILY`` (its schema, data module, Lightning module and metrics), found here by ``pkgutil`` with no
list to edit; a plug-in (`lora_lab.plugins`) calls `register_family` instead. A new task of an existing
family on your own files is a config file only (``conf/task/*.yaml`` with ``kind: text_classification``
or ``text_generation``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil

from lora_lab.errors import ConfigError, did_you_mean
from lora_lab.plugins import load_plugins
from lora_lab.tasks.base import TaskConfig, TaskFamily

#: family name -> family, in discovery order
FAMILIES: dict[str, TaskFamily] = {}
#: ``task.kind`` -> its schema
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {}


def _kind(schema: type[TaskConfig]) -> str:
    return next(f.default for f in dataclasses.fields(schema) if f.name == "kind")


def register_family(family: TaskFamily) -> TaskFamily:
    """Add ``family`` and its task kinds; a kind claimed by two families is an error."""
    for schema in family.schemas:
        kind = _kind(schema)
        owner = TASK_SCHEMAS.get(kind)
        if owner is not None and owner is not schema:
            raise ValueError(f"task kind {kind!r} of family {family.name!r} is already the kind of {owner.__qualname__}")
    FAMILIES[family.name] = family
    TASK_SCHEMAS.update({_kind(s): s for s in family.schemas})
    return family


def discover_families() -> None:
    """Register the ``FAMILY`` of every ``lora_lab.tasks.<package>.family`` module, then the plug-ins."""
    package = importlib.import_module("lora_lab.tasks")
    for info in pkgutil.iter_modules(package.__path__, "lora_lab.tasks."):
        if info.ispkg and importlib.util.find_spec(info.name + ".family") is not None:
            register_family(importlib.import_module(info.name + ".family").FAMILY)
    load_plugins()


def parse_task_config(raw: dict) -> TaskConfig:
    """The validated schema instance of a ``task`` config node (unknown kinds and keys are errors)."""
    raw = dict(raw)
    kind = raw.get("kind")
    if kind not in TASK_SCHEMAS:
        raise ConfigError("task.kind", f"unknown task kind {kind!r}; allowed: {', '.join(TASK_SCHEMAS)}")
    schema = TASK_SCHEMAS[kind]
    allowed = [f.name for f in dataclasses.fields(schema)]
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"task.{key}", f"is not a field of task kind {kind!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    cfg = schema(**raw)
    cfg.validate()
    return cfg


def family_of(task_cfg: TaskConfig) -> TaskFamily:
    """The family whose data module and Lightning module run this task."""
    return FAMILIES[task_cfg.family]


discover_families()
