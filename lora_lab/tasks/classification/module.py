"""Sequence classification and regression (GLUE, synthetic) on top of `AdapterModule`.

Loss: cross-entropy over ``num_labels`` classes, or MSE when ``num_labels == 1`` (STS-B), computed by
the HF head from ``labels``. Evaluation logs ``<split>/<metric>`` for every evaluation split (``val``,
``val_mm`` for MNLI mismatched, ``test`` where labels exist), keeps a per-evaluation curve and a copy
of the adapter state at the best value of the primary validation metric (model selection on
validation, never on test; only evaluations the method calls `selectable` compete, e.g. AdaLoRA's
after its final rank pattern is fixed).

Per-example predictions (``predictions``, written by the runner as ``predictions_<split>.jsonl``):
``{"id", "label", "pred"}`` per example (``id`` = position in the evaluation split, identical for
every run, so two runs pair example by example; ``pred`` the class id, or the score for regression),
for each validation split at the *selected* evaluation (the one ``metrics.best_val`` reports) and for
test at the restored best adapter. Under DDP each rank holds its own share (rank 0's is written).
"""

from __future__ import annotations

import torch

from lora_lab.tasks.base import TaskSpec
from lora_lab.tasks.classification.metrics import make_collection, predictions
from lora_lab.tasks.eval_shards import gather_in_order
from lora_lab.models.module import AdapterModule


class ClassificationModule(AdapterModule):
    model_kind = "classification"

    def __init__(self, backbone, adapter, optim, task, spec: dict, pad_token_id: int | None = None):
        super().__init__(backbone, adapter, optim, task, num_labels=spec["num_labels"], pad_token_id=pad_token_id)
        self.spec = TaskSpec(**spec)
        self.eval_metrics = torch.nn.ModuleDict(
            {s: make_collection(self.spec.metrics, self.spec.num_labels) for s in (*self.spec.eval_splits, "test")}
        )
        self.latest_predictions: dict[str, list[dict]] = {}  # the evaluation in progress / just finished
        self.predictions: dict[str, list[dict]] = {}  # what is saved: selected validation, test

    def forward(self, batch: dict):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "example_id")}
        return self.model(**inputs)

    def task_loss(self, batch: dict) -> torch.Tensor:
        return self.model(**batch).loss

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self.forward(batch).logits
        predicted = predictions(logits, self.spec.num_labels)
        self.eval_metrics[split].update(predicted, batch["labels"])
        if "example_id" in batch:
            self.latest_predictions.setdefault(split, []).extend(
                {"id": int(i), "label": y, "pred": p}
                for i, y, p in zip(batch["example_id"].tolist(), batch["labels"].tolist(), predicted.tolist(), strict=True)
            )

    def on_validation_epoch_start(self) -> None:
        for split in self.spec.eval_splits:
            self.latest_predictions[split] = []

    def on_test_epoch_start(self) -> None:
        self.latest_predictions["test"] = []

    def on_evaluation(self, values: dict[str, float]) -> None:
        super().on_evaluation(values)
        if self.best is not None and self.curve and self.best is self.curve[-1]:  # this evaluation is now the selected one
            self.predictions.update({s: list(self.latest_predictions.get(s, [])) for s in self.spec.eval_splits})

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.predictions["test"] = list(self.latest_predictions.get("test", []))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lora_lab_eval"]["predictions"] = self.predictions

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.predictions = dict(checkpoint.get("lora_lab_eval", {}).get("predictions") or {})

    def split_values(self, split: str) -> dict[str, float]:
        if split in self.latest_predictions:  # every rank's rows, in dataset order, on every rank (DDP)
            self.latest_predictions[split] = gather_in_order(self.latest_predictions[split])
        return {f"{split}/{k}": float(v) for k, v in self.eval_metrics[split].compute().items()}

    def split_metrics(self, split: str) -> list:
        return [self.eval_metrics[split]]

    def baselines(self, datamodule) -> dict:
        """What a trained model must beat: the majority-class accuracy on the first validation split."""
        return {"majority_val": datamodule.majority_baseline(self.spec.eval_splits[0])}
