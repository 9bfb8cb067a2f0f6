"""Config schemas of the generation family (prompt -> target text).

`GenerationTaskConfig` holds the decoding knobs every generation task shares (text-to-SQL builds on
it); ``text_generation`` (`TextGenerationConfig`) reads your own files or Hub dataset
(`lora_lab.tasks.user_files`): the prompt is the ``prompt_column`` cell, or ``prompt_template``
filled with the row's cells (``"Summarize:\\n{document}\\nSummary:"``), the target the
``target_column`` cell. Metrics: ``exact_match``, ``rouge_l`` and optionally ``metric_fn``, the dotted
path of your own ``fn(prediction, target) -> float`` (`lora_lab.tasks.generation.metrics`).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import ClassVar

from lora_lab.errors import ConfigError
from lora_lab.tasks.base import TaskConfig, TaskSpec, require_positive_ints
from lora_lab.tasks.generation.example import TextExample
from lora_lab.tasks.generation.metric_names import BUILTIN_METRIC_NAMES, load_metric_fn
from lora_lab.tasks.user_files import UserDataConfig


@dataclass
class GenerationTaskConfig(TaskConfig):
    """Knobs shared by generation tasks (`lora_lab.tasks.generation.data`).

    ``max_length`` caps prompt + answer tokens of a *training* sequence (longer ones are skipped and
    counted); evaluation prompts are never cut. Decoding is greedy (``num_beams: 1``) or beam search,
    batched, at most ``max_new_tokens`` tokens. ``eval_untrained`` evaluates the validation split once
    before training (the untrained baseline).
    """

    family: ClassVar[str] = "generation"
    max_length: int = 256
    max_new_tokens: int = 64
    num_beams: int = 1
    eval_untrained: bool = True

    def validate(self) -> None:
        super().validate()
        require_positive_ints(self, ("max_new_tokens", "num_beams"))
        if not isinstance(self.eval_untrained, bool):
            raise ConfigError("task.eval_untrained", f"must be true or false, got {self.eval_untrained!r}")


@dataclass
class TextGenerationConfig(GenerationTaskConfig, UserDataConfig):
    """Your own prompt -> target data; examples are `TextExample`."""

    kind: str = "text_generation"
    prompt_column: str = "prompt"
    target_column: str = "target"
    prompt_template: str | None = None
    metrics: list | None = None
    metric_fn: str | None = None
    primary_metric: str = "rouge_l"

    def validate(self) -> None:
        super().validate()
        for name in self.metrics or ():
            if name not in BUILTIN_METRIC_NAMES:
                raise ConfigError("task.metrics", f"unknown metric {name!r}; allowed: {', '.join(BUILTIN_METRIC_NAMES)} (your own: task.metric_fn)")
        if self.metric_fn is not None:
            name, _ = load_metric_fn(self.metric_fn)
            if name in BUILTIN_METRIC_NAMES or name in ("loss", "n"):
                raise ConfigError("task.metric_fn", f"{self.metric_fn}: its name {name!r} is taken by a built-in metric; rename the function")
        if self.primary_metric not in self.metric_names:
            raise ConfigError("task.primary_metric", f"{self.primary_metric!r} is not among the metrics; allowed: {', '.join(self.metric_names)}")
        if self.prompt_template is not None:
            try:
                self.template_columns
            except ValueError as err:
                raise ConfigError("task.prompt_template", f"{self.prompt_template!r} is not a format string ({err})") from None

    @property
    def template(self) -> str | None:
        """``prompt_template`` with the two-character escapes ``\\n`` and ``\\t`` read as a newline and a
        tab: the command line cannot carry a newline through Hydra's quoted strings (the documented form
        is ``"task.prompt_template='Q: {question}\\nA:'"``); a YAML file may hold real newlines too."""
        if self.prompt_template is None:
            return None
        return self.prompt_template.replace("\\n", "\n").replace("\\t", "\t")

    @property
    def metric_names(self) -> tuple[str, ...]:
        names = tuple(self.metrics) if self.metrics is not None else tuple(BUILTIN_METRIC_NAMES)
        return names + ((load_metric_fn(self.metric_fn)[0],) if self.metric_fn else ())

    @property
    def template_columns(self) -> list[str]:
        """The columns ``prompt_template`` names (``{document}`` -> ``document``)."""
        fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
        if any(not f.isidentifier() for f in fields):
            raise ValueError("every {field} must be a column name")
        return fields

    def spec(self) -> TaskSpec:
        return TaskSpec(self.family, 0, self.metric_names, self.primary_metric, ("val",), "test" in self.splits)

    @property
    def prompt_columns(self) -> list[str]:
        """The columns the prompt is made of: those ``prompt_template`` names, else ``prompt_column``."""
        return self.template_columns if self.prompt_template is not None else [self.prompt_column]

    def example_row(self) -> dict:
        """One valid row with every column this task reads (made-up text): what tests write to
        exercise a task configured this way."""
        return {c: f"some {c}" for c in (*self.prompt_columns, self.target_column)}

    def load_examples(self) -> dict[str, list]:
        prompt_columns = self.prompt_columns
        return {split: [self.example(row, split, prompt_columns) for row in self.split_rows(split, [*prompt_columns, self.target_column])] for split in self.splits}

    def example(self, row, split: str, prompt_columns: list[str]) -> TextExample:
        key = f"task.data_files.{split}" if self.files else "task.hub_dataset"
        cells = {c: row.text(c, key) for c in prompt_columns}
        prompt = self.template.format_map(cells) if self.prompt_template is not None else cells[self.prompt_column]
        return TextExample(prompt, row.text(self.target_column, key))
