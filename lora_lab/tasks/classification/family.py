"""The classification task family: sequence classification and regression (GLUE, synthetic sentiment,
your own files) on an encoder with a classification head (`AutoModelForSequenceClassification`)."""

from __future__ import annotations

from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.classification.glue import GLUE_TASKS
from lora_lab.tasks.classification.schema import (
    CLASSIFICATION_METRIC_INFO, REGRESSION_METRIC_INFO, GlueTaskConfig, SyntheticSentimentConfig, TextClassificationConfig,
)


def pair(data_cls: type, module_cls: type, task_cfg, spec, tokenizer, backbone_cfg, module_args: dict, seed: int):
    """(data module, Lightning module) of one trial."""
    datamodule = data_cls(task_cfg, spec, tokenizer, seed=seed)
    module = module_cls(**module_args, spec=spec.__dict__, pad_token_id=tokenizer.pad_token_id)
    return datamodule, module


FAMILY = TaskFamily(
    name="classification",
    schemas=(GlueTaskConfig, SyntheticSentimentConfig, TextClassificationConfig),
    data_module="lora_lab.tasks.classification.data:ClassificationDataModule",
    lightning_module="lora_lab.tasks.classification.module:ClassificationModule",
    metrics=CLASSIFICATION_METRIC_INFO + REGRESSION_METRIC_INFO,
    pair=pair,
    # the shipped configs conf/task/glue_<key>.yaml, labelled by the GLUE distribution's folder name (CoLA, STS-B)
    task_labels=tuple((f"glue_{t.key}", t.folder) for t in GLUE_TASKS.values()) + (("synthetic", "Synthetic"),),
)
