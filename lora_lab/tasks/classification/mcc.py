"""Matthews' correlation coefficient as GLUE scores CoLA (scikit-learn's ``matthews_corrcoef``).

From the K x K confusion matrix ``C`` (true x predicted), in the multiclass form of Gorodkin (2004),
which for K = 2 is ``(tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))``:

    MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2))

with ``c`` the correct predictions, ``s`` all predictions, ``p_k`` / ``t_k`` the predicted / true counts
of class k. When the denominator is 0 (one class predicted for every example, or one true class) the
coefficient is 0, as scikit-learn and the GLUE scorer define it: a model stuck at the majority class
scores 0. torchmetrics 1.9's ``MatthewsCorrCoef`` substitutes a small epsilon there instead and gives a
positive number (0.0256 on CoLA's dev set), which would make a model at chance look like it learned.
The confusion counts are summed across DDP ranks like any torchmetrics state.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def mcc_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """MCC of a ``[K, K]`` confusion matrix (true x predicted), 0 when the denominator is 0."""
    c = confusion.double()
    total, correct = c.sum(), torch.trace(c)
    pred_k, true_k = c.sum(dim=0), c.sum(dim=1)
    num = correct * total - (pred_k * true_k).sum()
    den = torch.sqrt((total**2 - (pred_k**2).sum()) * (total**2 - (true_k**2).sum()))
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den)).float()


class MatthewsCorrelation(Metric):
    """MCC over every example seen since the last reset (see the module docstring)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.add_state("confusion", default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        cell = target.long().flatten() * self.num_classes + preds.long().flatten()
        self.confusion += torch.bincount(cell, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def compute(self) -> torch.Tensor:
        return mcc_from_confusion(self.confusion)
