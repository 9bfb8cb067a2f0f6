"""The task families and the task kinds they accept: the one place a new family is added.

A trial never names a family: `parse_task_config` picks the schema by ``task.kind``, the schema names
its family, and `family_of` gives the `TaskFamily` whose ``build`` makes the data module and the
Lightning module. Adding a family = a package under `lora_lab.tasks` with its schema, data module,
Lightning module and metrics, plus one entry in `FAMILIES`; a new task of an existing family on
your own files is a config file only (``conf/task/*.yaml`` with ``kind: text_classification`` or
``text_generation``).
"""

from __future__ import annotations

import dataclasses

from lora_lab.errors import ConfigError, did_you_mean
from lora_lab.tasks.base import TaskConfig, TaskFamily
from lora_lab.tasks.classification.family import FAMILY as CLASSIFICATION
from lora_lab.tasks.generation.family import FAMILY as GENERATION
from lora_lab.tasks.text_to_sql.family import FAMILY as TEXT_TO_SQL

FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (CLASSIFICATION, GENERATION, TEXT_TO_SQL)}


def _kind(schema: type[TaskConfig]) -> str:
    return next(f.default for f in dataclasses.fields(schema) if f.name == "kind")


#: ``task.kind`` -> its schema
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {_kind(s): s for family in FAMILIES.values() for s in family.schemas}


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
