"""The classification task family: sequence classification and regression (GLUE, synthetic sentiment,
your own files) on an encoder with a classification head (`AutoModelForSequenceClassification`)."""

from __future__ import annotations

from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.classification.data import ClassificationDataModule
from lora_lab.tasks.classification.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from lora_lab.tasks.classification.module import ClassificationModule
from lora_lab.tasks.classification.schema import GlueTaskConfig, SyntheticSentimentConfig, TextClassificationConfig


def build(task_cfg, spec, tokenizer, backbone_cfg, module_args: dict, seed: int):
    """(data module, Lightning module) of one trial."""
    datamodule = ClassificationDataModule(task_cfg, spec, tokenizer, seed=seed)
    module = ClassificationModule(**module_args, spec=spec.__dict__, pad_token_id=tokenizer.pad_token_id)
    return datamodule, module


FAMILY = TaskFamily(
    name="classification",
    schemas=(GlueTaskConfig, SyntheticSentimentConfig, TextClassificationConfig),
    data_module=ClassificationDataModule,
    lightning_module=ClassificationModule,
    metrics=CLASSIFICATION_METRICS + REGRESSION_METRICS,
    build=build,
)
