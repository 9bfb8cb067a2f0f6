"""Per-example predictions of classification runs and the task metrics on bootstrap resamples.

``predictions_<split>.jsonl`` (written by the runner): one ``{"id", "label", "pred"}`` per example
(`lora_lab.tasks.classification.module`). `load_predictions` reads a run's file into ``{id: (label, pred)}``.

`weighted_metric` evaluates a metric on many bootstrap resamples at once. A resample of n examples is
a vector of multiplicities ``w`` (``w ~ Multinomial(n, 1/n)``), so every count-based metric is a
weighted sum: accuracy ``= w . 1[y = p] / n``; confusion counts ``C_kl = w . 1[y = k, p = l]`` give
F1 (positive class 1) and Matthews' correlation (multiclass form, Gorodkin 2004:
``(c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))``, with ``c`` correct, ``s`` total,
``p_k``/``t_k`` predicted/true counts); Pearson's r uses weighted moments. Spearman's rho is Pearson's
r of ranks, so it is computed per resample with `scipy.stats.spearmanr`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats


def load_predictions(run_dir, split: str) -> dict[int, tuple[float, float]] | None:
    """``{id: (label, pred)}`` of a run's ``predictions_<split>.jsonl``; None when absent or not a
    classification predictions file (generation runs save other fields)."""
    path = Path(run_dir) / f"predictions_{split}.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    if not rows or not all(isinstance(r, dict) and {"id", "label", "pred"} <= set(r) for r in rows):
        return None
    return {int(r["id"]): (float(r["label"]), float(r["pred"])) for r in rows}


def _confusion(labels: np.ndarray, preds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted confusion counts, shape ``[B, K, K]`` (true x predicted)."""
    classes = int(max(labels.max(), preds.max())) + 1
    cell = (labels * classes + preds).astype(int)
    onehot = np.zeros((len(cell), classes * classes))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (weights @ onehot).reshape(len(weights), classes, classes)


def _accuracy(labels, preds, weights, total):
    return weights @ (labels == preds).astype(float) / total


def _f1(labels, preds, weights, total):
    conf = _confusion(labels, preds, weights)
    tp, fp, fn = conf[:, 1, 1], conf[:, 0, 1], conf[:, 1, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def _mcc(labels, preds, weights, total):
    """Gorodkin's multi-class R_K (binary: Matthews' phi), 0 where a side is constant."""
    conf = _confusion(labels, preds, weights)
    correct = np.trace(conf, axis1=1, axis2=2)
    pred_k, true_k = conf.sum(axis=1), conf.sum(axis=2)
    num = correct * total - (pred_k * true_k).sum(axis=1)
    den = np.sqrt((total**2 - (pred_k**2).sum(axis=1)) * (total**2 - (true_k**2).sum(axis=1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _pearson(labels, preds, weights, total):
    mx, my = weights @ preds / total, weights @ labels / total
    cov = weights @ (preds * labels) / total - mx * my
    vx, vy = weights @ preds**2 / total - mx**2, weights @ labels**2 / total - my**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((vx > 0) & (vy > 0), cov / np.sqrt(np.clip(vx * vy, 1e-300, None)), 0.0)


def _spearman(labels, preds, weights, total):
    out = np.empty(len(weights))
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(len(labels)), w.astype(int))
        rho = stats.spearmanr(preds[idx], labels[idx]).statistic
        out[b] = 0.0 if np.isnan(rho) else rho
    return out


#: metric -> its value on weighted resamples ``fn(labels, preds, weights [B, n], total [B]) -> [B]``
PER_EXAMPLE = {"accuracy": _accuracy, "f1": _f1, "mcc": _mcc, "pearson": _pearson, "spearman": _spearman}
METRICS = tuple(PER_EXAMPLE)  # the metrics with a per-example form (a paired bootstrap can resample them)


def weighted_metric(metric: str, labels: np.ndarray, preds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The metric on each resample: ``weights`` is ``[B, n]`` (row b = multiplicities of resample b)."""
    if metric not in PER_EXAMPLE:
        raise ValueError(f"no per-example form for metric {metric!r}; allowed: {', '.join(METRICS)}")
    labels, preds, weights = np.asarray(labels, float), np.asarray(preds, float), np.atleast_2d(np.asarray(weights, float))
    return PER_EXAMPLE[metric](labels, preds, weights, weights.sum(axis=1))
