"""Sequence classification and regression (GLUE, synthetic) on top of `AdapterModule`.

Loss: cross-entropy over ``num_labels`` classes, or MSE when ``num_labels == 1`` (STS-B), computed by
the HF head from ``labels``. Evaluation logs ``<split>/<metric>`` for every evaluation split (``val``,
``val_mm`` for MNLI mismatched, ``test`` where labels exist), keeps a per-evaluation curve and a copy
of the adapter state at the best value of the primary validation metric (model selection on
validation, never on test; only evaluations the method calls `selectable` compete, e.g. AdaLoRA's
after its final rank pattern is fixed).
"""

from __future__ import annotations

import torch

from lora_lab.tasks.base import TaskSpec
from lora_lab.tasks.classification.metrics import make_collection, predictions
from lora_lab.models.module import AdapterModule


class ClassificationModule(AdapterModule):
    model_kind = "classification"

    def __init__(self, backbone: dict, adapter: dict, optim: dict, task: dict, spec: dict, pad_token_id: int | None = None):
        super().__init__(backbone, adapter, optim, task, num_labels=spec["num_labels"], pad_token_id=pad_token_id)
        self.spec = TaskSpec(**spec)
        self.eval_metrics = torch.nn.ModuleDict(
            {s: make_collection(self.spec.metrics, self.spec.num_labels) for s in (*self.spec.eval_splits, "test")}
        )

    def forward(self, batch: dict):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs)

    def task_loss(self, batch: dict) -> torch.Tensor:
        return self.model(**batch).loss

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self.forward(batch).logits
        self.eval_metrics[split].update(predictions(logits, self.spec.num_labels), batch["labels"])

    def split_values(self, split: str) -> dict[str, float]:
        return {f"{split}/{k}": float(v) for k, v in self.eval_metrics[split].compute().items()}

    def split_metrics(self, split: str) -> list:
        return [self.eval_metrics[split]]

    def baselines(self, datamodule) -> dict:
        """What a trained model must beat: the majority-class accuracy on the first validation split."""
        return {"majority_val": datamodule.majority_baseline(self.spec.eval_splits[0])}
