"""The text-to-SQL task family: WikiSQL and its synthetic variant, generation with SQL answers judged
by execution against the example's table."""

from __future__ import annotations

from lora_lab.models.backbones import generation_model_kind
from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.generation.family import pair
from lora_lab.tasks.text_to_sql.schema import SQL_METRIC_INFO, WikiSqlConfig, WikiSqlSyntheticConfig

FAMILY = TaskFamily(
    name="text_to_sql",
    schemas=(WikiSqlConfig, WikiSqlSyntheticConfig),
    data_module="lora_lab.tasks.text_to_sql.data:TextToSqlDataModule",
    lightning_module="lora_lab.tasks.text_to_sql.module:TextToSqlModule",
    metrics=SQL_METRIC_INFO,
    pair=pair,
    model_kind=generation_model_kind,
    task_labels=(("wikisql", "WikiSQL"), ("wikisql_synthetic", "WikiSQL (synthetic)")),
)
