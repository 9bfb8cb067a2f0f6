"""Official GLUE metrics through torchmetrics (offline, synchronised across DDP ranks).

``accuracy``; ``f1`` (binary, positive class 1: MRPC, QQP); ``mcc`` (Matthews correlation: CoLA, 0 for a constant predictor as GLUE scores it, `lora_lab.tasks.classification.mcc`);
``pearson`` / ``spearman`` (STS-B). Each evaluation split gets its own collection.
"""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from lora_lab.errors import ConfigError
from lora_lab.tasks.classification.mcc import MatthewsCorrelation
from lora_lab.tasks.classification.schema import CLASSIFICATION_METRICS, REGRESSION_METRICS



def make_metric(name: str, num_labels: int):
    if name == "accuracy":
        return MulticlassAccuracy(num_classes=num_labels, average="micro")
    if name == "f1":
        return BinaryF1Score()
    if name == "mcc":
        return MatthewsCorrelation(num_classes=num_labels)
    if name == "pearson":
        return PearsonCorrCoef()
    if name == "spearman":
        return SpearmanCorrCoef()
    raise ConfigError("task.metrics", f"unknown metric {name!r}; allowed: {', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}")


def make_collection(names, num_labels: int) -> MetricCollection:
    return MetricCollection({n: make_metric(n, num_labels) for n in names})


def predictions(logits: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Class ids for classification, the scalar score for regression (num_labels == 1)."""
    return logits.squeeze(-1).float() if num_labels == 1 else logits.argmax(-1)
