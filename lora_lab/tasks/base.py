"""What every task family shares: the base config schema, the task spec, the family record and the
per-split example subsets.

A *task family* (`TaskFamily`) is a config schema per task kind, a data module, a Lightning module and
its metrics; `lora_lab.tasks.registry` lists the families, and the trial builds any of them the same
way. ``task.kind`` names the schema (``glue``, ``text_classification``, ``wikisql``, ...); the schema
names its family (``classification``, ``generation``, ``text_to_sql``). Unknown keys, unknown kinds and
out-of-range values are `ConfigError`s naming the key. `TaskSpec` is what the Lightning module needs
before any data is read: number of labels, metric names, the primary metric and the evaluation splits.
`MetricInfo` is what the report needs to know of a metric a family computes (its table label, the values
it can take, its chance level); the family declares it next to the metric, and
`lora_lab.tasks.registry.metric_info` finds it by name.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from lora_lab.errors import ConfigError


def require_positive_ints(cfg, keys: tuple[str, ...]) -> None:
    """Raise `ConfigError` naming ``task.<key>`` unless each key holds a positive integer (bools refused)."""
    for key in keys:
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"task.{key}", f"must be a positive integer, got {value!r}")


@dataclass
class TaskSpec:
    """What a model needs to know about a task before reading data."""

    family: str  # the task family: "classification" (incl. regression when num_labels == 1), "generation", "text_to_sql"
    num_labels: int
    metrics: tuple[str, ...]
    primary: str  # metric name on the first eval split, maximised
    eval_splits: tuple[str, ...] = ("val",)
    has_test: bool = False
    label_names: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def primary_key(self) -> str:
        return f"{self.eval_splits[0]}/{self.primary}"


def task_setting(task, key: str, default):
    """A knob of the trial's parsed `TaskConfig` (handed to the module as is, never parsed again); a
    test or notebook may hand the module the plain ``task`` dict instead."""
    return task.get(key, default) if isinstance(task, dict) else getattr(task, key, default)


@dataclass
class TaskConfig:
    """Knobs every task has. A subclass (one per ``kind``) sets `family`, adds its own fields and
    implements `spec`, `load_examples` and `data_is_local`."""

    family: ClassVar[str] = ""
    name: str = "synthetic"
    kind: str = "synthetic_sentiment"
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None

    def validate(self) -> None:
        require_positive_ints(self, ("max_length", "batch_size", "eval_batch_size"))
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"task.{key}", f"must be null or a positive integer, got {value!r}")

    def spec(self) -> TaskSpec:
        raise NotImplementedError

    def load_examples(self) -> dict[str, list]:
        """Split name (``train``, ``val``, ``test``, ...) -> the split's examples, in file order."""
        raise NotImplementedError

    @property
    def data_is_local(self) -> bool:
        """True when the data is read from local files or made by code (the run may then set the
        HF offline variables); False when it comes from the Hub (network or a warm cache)."""
        raise NotImplementedError


UNIT = (0.0, 1.0)  # a rate: accuracy, F1, exact match, ROUGE, execution accuracy
CORRELATION = (-1.0, 1.0)  # Matthews, Pearson and Spearman correlation


@dataclass(frozen=True)
class MetricInfo:
    """A metric a task family reports, as the report reads it.

    ``label``: the table's short name (``MCC``); ``range``: the values the metric can take, ``(lo, hi)``,
    or None when unbounded -- a Student-t interval ``mean ± t s / sqrt(n)`` of a bounded score can cross
    its bound (two seeds at 0.80 and 0.99 give an upper end above 1 for accuracy), so the report
    intersects it with the range; ``chance``: the level a run has to leave to have learnt anything --
    ``"zero"`` for correlations (a constant predictor scores 0), ``"majority"`` for accuracy (the
    majority-class rate of the evaluation split, recorded as ``baselines.majority_val``), None for the
    untrained model's value where the run recorded one (``baselines.untrained_val``, generation tasks)."""

    name: str
    label: str
    range: tuple[float, float] | None = None
    chance: str | None = None

    def __post_init__(self):
        if self.chance not in (None, "zero", "majority"):
            raise ValueError(f"MetricInfo {self.name!r}: chance {self.chance!r}; allowed: None, 'zero', 'majority'")


def metric_names(infos: tuple[MetricInfo, ...]) -> tuple[str, ...]:
    """The names of ``infos``, in order (what a config may name)."""
    return tuple(info.name for info in infos)


def classification_model(backbone_cfg) -> str:
    """The model kind of a classification family on any backbone: a sequence-classification head."""
    return "classification"


@dataclass(frozen=True)
class TaskFamily:
    """One task family: its config schemas (one per ``task.kind``), data module and Lightning module
    (named ``"package.module:Class"``, imported by `classes` when a trial builds, so that checking a
    config never imports Lightning: the bad-input gate answers in seconds), the metrics it can
    report, and ``pair``, which makes the (data module, Lightning module) of a trial from the two
    classes: ``pair(data_cls, module_cls, task_cfg, spec, tokenizer, backbone_cfg, module_args, seed)``,
    where ``module_args`` holds the trial's parsed ``backbone``, ``adapter``, ``optim`` and ``task``
    configs (`BackboneConfig`, `AdapterConfig`, `OptimConfig`, `TaskConfig`), made once at the entry point.
    ``metrics`` declares every built-in metric the family can report (`MetricInfo`); ``model_kind(backbone_cfg)``
    names the model class a trial builds on that backbone (``classification``, or a generation family's
    ``causal_lm`` / ``seq2seq``, raising `ConfigError` for a backbone it cannot use), so the config check
    builds the same model on the meta device; ``task_labels``
    gives the table label of each task the family ships a config for (``task.name`` -> label, e.g.
    ``glue_cola`` -> ``CoLA``), in the column order its benchmark's papers use."""

    name: str
    schemas: tuple[type[TaskConfig], ...]
    data_module: str
    lightning_module: str
    metrics: tuple[MetricInfo, ...]
    pair: Callable
    model_kind: Callable = classification_model
    task_labels: tuple[tuple[str, str], ...] = ()

    def classes(self) -> tuple[type, type]:
        """(data module class, Lightning module class)."""
        return import_object(self.data_module), import_object(self.lightning_module)

    def build(self, task_cfg, spec, tokenizer, backbone_cfg, module_args: dict, seed: int):
        """(data module, Lightning module) of one trial."""
        data_cls, module_cls = self.classes()
        return self.pair(data_cls, module_cls, task_cfg, spec, tokenizer, backbone_cfg, module_args, seed)


def import_object(path: str):
    """The object named ``"package.module:attribute"``."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


#: seed of the ``max_eval_samples`` subsets: fixed, so runs of every seed and method are evaluated
#: on the same examples and their numbers can be averaged and compared
EVAL_SUBSET_SEED = 0


def subsample(examples: list, limit: int | None, seed: int) -> list:
    """At most ``limit`` examples, drawn without replacement by ``random.Random(seed)`` (all if None)."""
    if limit is None or len(examples) <= limit:
        return examples
    return random.Random(seed).sample(examples, limit)


def split_subset(cfg: TaskConfig, split: str, examples: list, run_seed: int, index: int) -> list:
    """The examples a run uses of one split: ``train`` capped at ``max_train_samples`` (drawn with the
    run's seed, part of what a seed varies), evaluation splits capped at ``max_eval_samples`` (drawn
    with `EVAL_SUBSET_SEED`, identical for every run)."""
    if split == "train":
        return subsample(examples, cfg.max_train_samples, run_seed + index)
    return subsample(examples, cfg.max_eval_samples, EVAL_SUBSET_SEED + index)
