"""CoLA's metric equals scikit-learn's ``matthews_corrcoef`` (the GLUE scorer), including a model that
predicts one class for every example: 0, not the epsilon-smoothed value torchmetrics 1.9 gives."""

import numpy as np
import pytest
import torch
from sklearn.metrics import matthews_corrcoef

from lora_lab.results.examples import weighted_metric
from lora_lab.tasks.classification.metrics import make_collection

COLA_DEV = [1] * 721 + [0] * 322  # CoLA's dev labels: 721 acceptable, 322 not


def _score(preds, labels, num_classes=2, batch=64):
    metric = make_collection(["mcc"], num_classes)
    for i in range(0, len(labels), batch):
        metric.update(torch.tensor(preds[i:i + batch]), torch.tensor(labels[i:i + batch]))
    return float(metric.compute()["mcc"])


@pytest.mark.parametrize("constant", [0, 1])
def test_a_constant_predictor_scores_zero_as_glue_does(constant):
    preds = [constant] * len(COLA_DEV)
    assert matthews_corrcoef(COLA_DEV, preds) == 0.0
    assert _score(preds, COLA_DEV) == 0.0
    assert weighted_metric("mcc", np.array(COLA_DEV), np.array(preds), np.ones((1, len(COLA_DEV))))[0] == 0.0


@pytest.mark.parametrize("num_classes,seed", [(2, 0), (2, 1), (3, 2), (5, 3)])
def test_equals_scikit_learn_on_random_predictions(num_classes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, 500)
    preds = np.where(rng.random(500) < 0.6, labels, rng.integers(0, num_classes, 500))
    expected = matthews_corrcoef(labels, preds)
    assert abs(expected) > 0.1
    assert _score(preds.tolist(), labels.tolist(), num_classes) == pytest.approx(expected, abs=1e-6)


def test_two_by_two_by_hand():
    # tp=3 tn=2 fp=1 fn=1: (3*2 - 1*1) / sqrt(4 * 4 * 3 * 3) = 5 / 12
    labels = [1, 1, 1, 1, 0, 0, 0]
    preds = [1, 1, 1, 0, 0, 0, 1]
    assert _score(preds, labels) == pytest.approx(5 / 12, abs=1e-7)
