"""Task config schemas (one dataclass per task kind) and the task spec a model needs up front.

``task.kind`` picks the schema: ``glue`` (any of the nine GLUE tasks, Hub or local TSV directory),
``synthetic_sentiment`` (made by code, offline), ``wikisql`` (text-to-SQL, Hub or local files in the
original layout) or ``wikisql_synthetic`` (WikiSQL-style, made by code). Unknown keys, unknown kinds and out-of-range
values are `ConfigError`s naming the key. `TaskSpec` is what the Lightning module needs before any
data is read: number of labels, metric names, the primary metric and the evaluation splits.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from lora_lab.errors import ConfigError


def require_positive_ints(cfg, keys: tuple[str, ...]) -> None:
    """Raise `ConfigError` naming ``task.<key>`` unless each key holds a positive integer (bools refused)."""
    for key in keys:
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"task.{key}", f"must be a positive integer, got {value!r}")


@dataclass
class TaskConfig:
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


@dataclass
class GlueTaskConfig(TaskConfig):
    kind: str = "glue"
    glue_task: str = "sst2"
    data_dir: str | None = None  # original GLUE layout; None -> the Hub
    hub_dataset: str = "nyu-mll/glue"
    hub_revision: str | None = None

    def validate(self) -> None:
        super().validate()
        from lora_lab.tasks.classification.glue import get_glue_task

        get_glue_task(self.glue_task)


@dataclass
class SyntheticSentimentConfig(TaskConfig):
    kind: str = "synthetic_sentiment"
    train_size: int = 2000
    val_size: int = 500
    test_size: int = 500
    negation_rate: float = 0.3
    contrast_rate: float = 0.3
    data_seed: int = 0

    def validate(self) -> None:
        super().validate()
        require_positive_ints(self, ("train_size", "val_size", "test_size"))
        for key in ("negation_rate", "contrast_rate"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"task.{key}", f"must be in [0, 1), got {getattr(self, key)!r}")


@dataclass
class GenerationTaskConfig(TaskConfig):
    """Knobs shared by text-to-SQL generation tasks (`lora_lab.tasks.generation.data`).

    ``max_length`` caps prompt + answer tokens of a *training* sequence (longer ones are skipped and
    counted); evaluation prompts are never cut. Decoding is greedy (``num_beams: 1``) or beam search,
    batched, at most ``max_new_tokens`` tokens. ``prompt_rows`` table rows go into the prompt.
    ``eval_untrained`` evaluates the validation split once before training (the untrained baseline).
    """

    max_length: int = 256
    prompt_rows: int = 0
    max_new_tokens: int = 64
    num_beams: int = 1
    eval_untrained: bool = True
    sql_timeout_s: float = 1.0

    def validate(self) -> None:
        super().validate()
        require_positive_ints(self, ("max_new_tokens", "num_beams"))
        if not isinstance(self.prompt_rows, int) or isinstance(self.prompt_rows, bool) or self.prompt_rows < 0:
            raise ConfigError("task.prompt_rows", f"must be a non-negative integer, got {self.prompt_rows!r}")
        if not isinstance(self.eval_untrained, bool):
            raise ConfigError("task.eval_untrained", f"must be true or false, got {self.eval_untrained!r}")
        if not isinstance(self.sql_timeout_s, (int, float)) or isinstance(self.sql_timeout_s, bool) or self.sql_timeout_s <= 0:
            raise ConfigError("task.sql_timeout_s", f"must be a positive number of seconds, got {self.sql_timeout_s!r}")


@dataclass
class WikiSqlConfig(GenerationTaskConfig):
    """WikiSQL from ``data_dir`` (original layout) or, without it, the Hub dataset ``hub_dataset``."""

    kind: str = "wikisql"
    data_dir: str | None = None
    hub_dataset: str = "wikisql"
    hub_revision: str | None = None


@dataclass
class WikiSqlSyntheticConfig(GenerationTaskConfig):
    """WikiSQL-style tables, questions and SQL made by code (`lora_lab.tasks.text_to_sql.wikisql_synthetic`)."""

    kind: str = "wikisql_synthetic"
    train_size: int = 2000
    val_size: int = 200
    test_size: int = 200
    data_seed: int = 0

    def validate(self) -> None:
        super().validate()
        require_positive_ints(self, ("train_size", "val_size", "test_size"))


TASK_SCHEMAS: dict[str, type[TaskConfig]] = {
    "glue": GlueTaskConfig,
    "synthetic_sentiment": SyntheticSentimentConfig,
    "wikisql": WikiSqlConfig,
    "wikisql_synthetic": WikiSqlSyntheticConfig,
}


def parse_task_config(raw: dict) -> TaskConfig:
    raw = dict(raw)
    kind = raw.get("kind")
    if kind not in TASK_SCHEMAS:
        raise ConfigError("task.kind", f"unknown task kind {kind!r}; allowed: {', '.join(TASK_SCHEMAS)}")
    schema = TASK_SCHEMAS[kind]
    allowed = [f.name for f in dataclasses.fields(schema)]
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"task.{key}", f"is not a field of task kind {kind!r}; allowed: {', '.join(allowed)}")
    cfg = schema(**raw)
    cfg.validate()
    return cfg


@dataclass
class TaskSpec:
    """What a model needs to know about a task before reading data."""

    family: str  # "classification" (incl. regression when num_labels == 1) or "generation"
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


def task_spec(cfg: TaskConfig) -> TaskSpec:
    if isinstance(cfg, GlueTaskConfig):
        from lora_lab.tasks.classification.glue import get_glue_task

        t = get_glue_task(cfg.glue_task)
        return TaskSpec("classification", t.num_labels, t.metrics, t.primary, tuple(a for a, _, _ in t.val_splits), False, t.label_names)
    if isinstance(cfg, SyntheticSentimentConfig):
        return TaskSpec("classification", 2, ("accuracy", "f1"), "accuracy", ("val",), True, ("negative", "positive"))
    if isinstance(cfg, GenerationTaskConfig):
        # a local WikiSQL copy may lack test.jsonl (the loader makes it optional): then there is no test split
        local_without_test = isinstance(cfg, WikiSqlConfig) and cfg.data_dir and not (Path(os.path.expanduser(cfg.data_dir)) / "test.jsonl").is_file()
        return TaskSpec("generation", 0, GENERATION_METRICS, "exec_acc", ("val",), not local_without_test)
    raise ConfigError("task.kind", f"no task spec for {type(cfg).__name__}")


GENERATION_METRICS = ("exec_acc", "lf_acc", "invalid_rate")


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


def load_examples(cfg: TaskConfig) -> dict[str, list]:
    """Split name -> examples: (text_a, text_b | None, label) for classification, `SqlExample` for
    text-to-SQL generation."""
    if isinstance(cfg, GlueTaskConfig):
        from lora_lab.tasks.classification.glue import get_glue_task, load_glue_hub, load_glue_local

        t = get_glue_task(cfg.glue_task)
        return load_glue_local(t, cfg.data_dir) if cfg.data_dir else load_glue_hub(t, cfg.hub_dataset, cfg.hub_revision)
    if isinstance(cfg, SyntheticSentimentConfig):
        from lora_lab.tasks.classification.synthetic import make_synthetic_sentiment

        return make_synthetic_sentiment(cfg.data_seed, cfg.train_size, cfg.val_size, cfg.test_size, cfg.negation_rate, cfg.contrast_rate)
    if isinstance(cfg, WikiSqlConfig):
        from lora_lab.tasks.text_to_sql.wikisql import load_wikisql_hub, load_wikisql_local

        return load_wikisql_local(cfg.data_dir) if cfg.data_dir else load_wikisql_hub(cfg.hub_dataset, cfg.hub_revision)
    if isinstance(cfg, WikiSqlSyntheticConfig):
        from lora_lab.tasks.text_to_sql.wikisql_synthetic import make_wikisql_synthetic

        return make_wikisql_synthetic(cfg.data_seed, cfg.train_size, cfg.val_size, cfg.test_size)
    raise ConfigError("task.kind", f"cannot load data for {type(cfg).__name__}")
