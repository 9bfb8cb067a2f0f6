"""Metric values against hand-computed ones."""

import math

import torch

from lora_lab.tasks.classification.metrics import make_collection


def test_accuracy_f1_mcc_by_hand():
    preds = torch.tensor([1, 1, 0, 0, 1, 0])
    target = torch.tensor([1, 0, 0, 0, 1, 1])
    m = make_collection(("accuracy", "f1", "mcc"), 2)
    m.update(preds, target)
    out = {k: float(v) for k, v in m.compute().items()}
    tp, fp, tn, fn = 2, 1, 2, 1
    assert math.isclose(out["accuracy"], 4 / 6, rel_tol=1e-6)
    assert math.isclose(out["f1"], 2 * tp / (2 * tp + fp + fn), rel_tol=1e-6)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert math.isclose(out["mcc"], mcc, rel_tol=1e-6)


def test_pearson_spearman_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([1.0, 3.0, 2.0, 5.0])
    m = make_collection(("pearson", "spearman"), 1)
    m.update(x, y)
    out = {k: float(v) for k, v in m.compute().items()}
    mx, my = 2.5, 2.75
    cov = sum((a - mx) * (b - my) for a, b in zip(x.tolist(), y.tolist()))
    sx = math.sqrt(sum((a - mx) ** 2 for a in x.tolist()))
    sy = math.sqrt(sum((b - my) ** 2 for b in y.tolist()))
    assert math.isclose(out["pearson"], cov / (sx * sy), rel_tol=1e-5)
    # ranks of y: 1, 3, 2, 4 -> d = 0, 1, 1, 0 -> rho = 1 - 6*2/(4*15)
    assert math.isclose(out["spearman"], 1 - 6 * 2 / (4 * 15), rel_tol=1e-5)
