"""The task families and the task kinds they accept, discovered: a new family is a new package.

A trial never names a family: `parse_task_config` picks the schema by ``task.kind``, the schema names
its family, and `family_of` gives the `TaskFamily` whose ``build`` makes the data module and the
Lightning module. Adding a family = a package under `lora_lab.tasks` whose ``family`` module defines
``FAMILY`` (its schema, data module, Lightning module and metrics), found here by ``pkgutil`` with no
list to edit; a plug-in (`lora_lab.plugins`) calls `register_family` instead. A new task of an existing
family on your own files is a config file only (``conf/task/*.yaml`` with ``kind: text_classification``
or ``text_generation``).

Each family declares the metrics it computes (`MetricInfo`: table label, range, chance level);
`metric_info` finds one by name for the report, so a new family's metric is labelled, clipped and
judged against chance with no list in the report to edit. Likewise each family names the tasks it
ships configs for (``task_labels``: ``glue_cola`` -> ``CoLA``, in its benchmark's column order), read
by `task_label` and `task_position`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil

from lora_lab.errors import ConfigError, did_you_mean
from lora_lab.plugins import load_plugins
from lora_lab.tasks.base import MetricInfo, TaskConfig, TaskFamily

#: family name -> family, in discovery order
FAMILIES: dict[str, TaskFamily] = {}
#: ``task.kind`` -> its schema
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {}
#: metric name -> what the family that computes it declared
METRICS: dict[str, MetricInfo] = {}
#: ``task.name`` -> table label, in column order (each family's tasks as it declared them, families in discovery order)
TASK_LABELS: dict[str, str] = {}


def _kind(schema: type[TaskConfig]) -> str:
    return next(f.default for f in dataclasses.fields(schema) if f.name == "kind")


def register_family(family: TaskFamily) -> TaskFamily:
    """Add ``family``, its task kinds and its metrics; a kind claimed by two families, or one metric name
    declared two different ways, is an error."""
    for schema in family.schemas:
        kind = _kind(schema)
        owner = TASK_SCHEMAS.get(kind)
        if owner is not None and owner is not schema:
            raise ValueError(f"task kind {kind!r} of family {family.name!r} is already the kind of {owner.__qualname__}")
    for info in family.metrics:
        if not isinstance(info, MetricInfo):
            raise TypeError(f"family {family.name!r}: metrics holds {info!r}; each must be a MetricInfo")
        known = METRICS.get(info.name)
        if known is not None and known != info:
            raise ValueError(f"metric {info.name!r} of family {family.name!r} is declared as {info} but already as {known}")
    for task, label in family.task_labels:
        if TASK_LABELS.get(task, label) != label:
            raise ValueError(f"task {task!r} of family {family.name!r} is labelled {label!r} but already {TASK_LABELS[task]!r}")
    FAMILIES[family.name] = family
    TASK_SCHEMAS.update({_kind(s): s for s in family.schemas})
    METRICS.update({info.name: info for info in family.metrics})
    TASK_LABELS.update(family.task_labels)
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


def metric_info(name: str | None) -> MetricInfo:
    """What the family that computes metric ``name`` declared; a metric no family declares (a
    ``task.metric_fn`` of your own) is labelled by its name, with no range and no chance level."""
    name = str(name) if name is not None else "?"
    return METRICS.get(name) or MetricInfo(name, name)


def task_label(name: str) -> str:
    """The table label a family gave task ``name`` (``glue_stsb`` -> ``STS-B``); a task of your own is labelled by its name."""
    return TASK_LABELS.get(name, name)


def task_position(name: str) -> int | None:
    """Where task ``name`` stands in the declared column order (GLUE in its papers' order), None for a task no family names."""
    return next((i for i, task in enumerate(TASK_LABELS) if task == name), None)


def family_of(task_cfg: TaskConfig) -> TaskFamily:
    """The family whose data module and Lightning module run this task."""
    return FAMILIES[task_cfg.family]


discover_families()
