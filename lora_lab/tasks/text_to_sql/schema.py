"""Config schemas of the text-to-SQL family, a specialisation of generation:

- ``wikisql``: WikiSQL from ``data_dir`` (original layout) or, without it, the Hub dataset ``hub_dataset``;
- ``wikisql_synthetic``: WikiSQL-style tables, questions and SQL made by code (`lora_lab.tasks.text_to_sql.wikisql_synthetic`).

Besides the decoding knobs of `GenerationTaskConfig`: ``prompt_rows`` table rows go into the prompt,
``sql_timeout_s`` bounds each SQL execution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lora_lab.errors import ConfigError
from lora_lab.tasks.base import UNIT, MetricInfo, TaskSpec, metric_names, require_positive_ints
from lora_lab.tasks.generation.schema import GenerationTaskConfig
from lora_lab.tasks.text_to_sql.wikisql import load_wikisql_hub, load_wikisql_local
from lora_lab.tasks.text_to_sql.wikisql_synthetic import make_wikisql_synthetic

#: execution accuracy (the predicted SQL returns the gold answer), logical-form accuracy (the canonical
#: query matches), the rate of predictions that could not run (lower is better; never a primary metric)
SQL_METRIC_INFO = (MetricInfo("exec_acc", "Exec. acc", UNIT), MetricInfo("lf_acc", "LF acc", UNIT), MetricInfo("invalid_rate", "Invalid", UNIT))
SQL_METRICS = metric_names(SQL_METRIC_INFO)


@dataclass
class TextToSqlConfig(GenerationTaskConfig):
    family: ClassVar[str] = "text_to_sql"
    prompt_rows: int = 0
    sql_timeout_s: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.prompt_rows, int) or isinstance(self.prompt_rows, bool) or self.prompt_rows < 0:
            raise ConfigError("task.prompt_rows", f"must be a non-negative integer, got {self.prompt_rows!r}")
        if not isinstance(self.sql_timeout_s, (int, float)) or isinstance(self.sql_timeout_s, bool) or self.sql_timeout_s <= 0:
            raise ConfigError("task.sql_timeout_s", f"must be a positive number of seconds, got {self.sql_timeout_s!r}")

    @property
    def has_test(self) -> bool:
        return True

    def spec(self) -> TaskSpec:
        return TaskSpec(self.family, 0, SQL_METRICS, "exec_acc", ("val",), self.has_test)


@dataclass
class WikiSqlConfig(TextToSqlConfig):
    """WikiSQL from ``data_dir`` (original layout) or, without it, the Hub dataset ``hub_dataset``."""

    kind: str = "wikisql"
    data_dir: str | None = None
    hub_dataset: str = "wikisql"
    hub_revision: str | None = None

    @property
    def has_test(self) -> bool:
        # a local WikiSQL copy may lack test.jsonl (the loader makes it optional): then there is no test split
        return not self.data_dir or (Path(os.path.expanduser(self.data_dir)) / "test.jsonl").is_file()

    def load_examples(self) -> dict[str, list]:
        return load_wikisql_local(self.data_dir) if self.data_dir else load_wikisql_hub(self.hub_dataset, self.hub_revision)

    @property
    def data_is_local(self) -> bool:
        return self.data_dir is not None


@dataclass
class WikiSqlSyntheticConfig(TextToSqlConfig):
    """WikiSQL-style tables, questions and SQL made by code."""

    kind: str = "wikisql_synthetic"
    train_size: int = 2000
    val_size: int = 200
    test_size: int = 200
    data_seed: int = 0

    def validate(self) -> None:
        super().validate()
        require_positive_ints(self, ("train_size", "val_size", "test_size"))

    def load_examples(self) -> dict[str, list]:
        return make_wikisql_synthetic(self.data_seed, self.train_size, self.val_size, self.test_size)

    @property
    def data_is_local(self) -> bool:
        return True  # made by code
