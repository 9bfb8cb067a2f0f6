"""Config schemas of the classification family (text classification and regression), one per ``task.kind``:

- ``glue``: any of the nine GLUE tasks, from the Hub or a local directory in the original layout
  (`lora_lab.tasks.classification.glue`);
- ``synthetic_sentiment``: the offline synthetic sentiment task (`lora_lab.tasks.classification.synthetic`);
- ``text_classification``: your own files or Hub dataset (`lora_lab.tasks.user_files`) with a text
  column, an optional second text column and a label column; ``labels`` is the label set in id order
  (cells hold these names), or ``regression: true`` for a numeric target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lora_lab.errors import ConfigError
from lora_lab.tasks.base import CORRELATION, UNIT, MetricInfo, TaskConfig, TaskSpec, metric_names, require_positive_ints
from lora_lab.tasks.classification.glue import get_glue_task, load_glue_hub, load_glue_local
from lora_lab.tasks.classification.synthetic import make_synthetic_sentiment
from lora_lab.tasks.user_files import UserDataConfig, as_number

#: the metrics a config may name (computed by `lora_lab.tasks.classification.metrics`): F1 is the binary
#: F1 of label id 1, MCC Matthews' correlation (0 for a constant predictor, as GLUE scores CoLA)
CLASSIFICATION_METRIC_INFO = (MetricInfo("accuracy", "Acc", UNIT, "majority"), MetricInfo("f1", "F1", UNIT),
                              MetricInfo("mcc", "MCC", CORRELATION, "zero"))
REGRESSION_METRIC_INFO = (MetricInfo("pearson", "Pearson", CORRELATION, "zero"), MetricInfo("spearman", "Spearman", CORRELATION, "zero"))
CLASSIFICATION_METRICS = metric_names(CLASSIFICATION_METRIC_INFO)
REGRESSION_METRICS = metric_names(REGRESSION_METRIC_INFO)


@dataclass
class GlueTaskConfig(TaskConfig):
    family: ClassVar[str] = "classification"
    kind: str = "glue"
    glue_task: str = "sst2"
    data_dir: str | None = None  # original GLUE layout; None -> the Hub
    hub_dataset: str = "nyu-mll/glue"
    hub_revision: str | None = None

    def validate(self) -> None:
        super().validate()
        get_glue_task(self.glue_task)

    def spec(self) -> TaskSpec:
        t = get_glue_task(self.glue_task)
        return TaskSpec(self.family, t.num_labels, t.metrics, t.primary, tuple(a for a, _, _ in t.val_splits), False, t.label_names)

    def load_examples(self) -> dict[str, list]:
        t = get_glue_task(self.glue_task)
        return load_glue_local(t, self.data_dir) if self.data_dir else load_glue_hub(t, self.hub_dataset, self.hub_revision)

    @property
    def data_is_local(self) -> bool:
        return self.data_dir is not None


@dataclass
class SyntheticSentimentConfig(TaskConfig):
    family: ClassVar[str] = "classification"
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

    def spec(self) -> TaskSpec:
        return TaskSpec(self.family, 2, ("accuracy", "f1"), "accuracy", ("val",), True, ("negative", "positive"))

    def load_examples(self) -> dict[str, list]:
        return make_synthetic_sentiment(self.data_seed, self.train_size, self.val_size, self.test_size, self.negation_rate, self.contrast_rate)

    @property
    def data_is_local(self) -> bool:
        return True  # made by code


@dataclass
class TextClassificationConfig(UserDataConfig):
    """Your own classification / regression data; examples are ``(text, text_pair or None, label)``."""

    family: ClassVar[str] = "classification"
    kind: str = "text_classification"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    labels: list | None = None
    regression: bool = False
    metrics: list | None = None
    primary_metric: str | None = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.regression, bool):
            raise ConfigError("task.regression", f"must be true or false, got {self.regression!r}")
        if self.regression:
            if self.labels is not None:
                raise ConfigError("task.labels", "must be null with regression: true (the label column holds numbers)")
        elif not isinstance(self.labels, (list, tuple)) or len(self.labels) < 2 or len(set(map(str, self.labels))) != len(self.labels):
            raise ConfigError("task.labels", f"must list at least two distinct label names in id order (or set regression: true), got {self.labels!r}")
        allowed = REGRESSION_METRICS if self.regression else CLASSIFICATION_METRICS
        for name in self.metric_names:
            if name not in allowed:
                raise ConfigError("task.metrics", f"unknown metric {name!r} for {'regression' if self.regression else 'classification'}; allowed: {', '.join(allowed)}")
        if "f1" in self.metric_names and len(self.labels) != 2:
            raise ConfigError("task.metrics", f"f1 is the binary F1 of label id 1; it needs exactly two labels, got {len(self.labels)}")
        if self.primary_metric is not None and self.primary_metric not in self.metric_names:
            raise ConfigError("task.primary_metric", f"{self.primary_metric!r} is not among the metrics; allowed: {', '.join(self.metric_names)}")

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.metrics is not None:
            return tuple(self.metrics)
        if self.regression:
            return ("pearson", "spearman")
        return ("accuracy", "f1") if len(self.labels) == 2 else ("accuracy",)

    def spec(self) -> TaskSpec:
        num_labels = 1 if self.regression else len(self.labels)
        names = None if self.regression else tuple(map(str, self.labels))
        primary = self.primary_metric or self.metric_names[0]
        return TaskSpec(self.family, num_labels, self.metric_names, primary, ("val",), "test" in self.splits, names)

    @property
    def columns(self) -> list[str]:
        """The columns each row must have: the text, the label and (when set) the second text."""
        return [self.text_column, self.label_column] + ([self.text_pair_column] if self.text_pair_column else [])

    def example_row(self) -> dict:
        """One valid row with exactly `columns` (made-up text; the first label, or 0.5 for regression):
        what tests write to exercise a task configured this way."""
        row = {c: f"some {c}" for c in self.columns}
        row[self.label_column] = 0.5 if self.regression else self.labels[0]
        return row

    def load_examples(self) -> dict[str, list]:
        return {split: [self.example(row, split) for row in self.split_rows(split, self.columns)] for split in self.splits}

    def example(self, row, split: str) -> tuple:
        key = f"task.data_files.{split}" if self.files else "task.hub_dataset"
        text = row.text(self.text_column, key)
        pair = row.text(self.text_pair_column, key) if self.text_pair_column else None
        if self.regression:
            return text, pair, as_number(row, self.label_column, key)
        names = list(map(str, self.labels))
        value = row.cells[self.label_column]
        if isinstance(value, bool) or str(value) not in names:
            raise row.error(f"label {value!r} is not one of task.labels {names}", key)
        return text, pair, names.index(str(value))
