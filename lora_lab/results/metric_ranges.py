"""The range of each primary metric, for clipping intervals to values the metric can take.

A Student-t interval ``mean ± t s / sqrt(n)`` of a bounded score can cross its bound (two seeds at
0.80 and 0.99 give an upper end above 1 for accuracy); the reported interval is its intersection with
the metric's range: ``[max(lo, mean - h), min(hi, mean + h)]``.

- ``[0, 1]``: accuracy, F1, exact / execution / logical-form accuracy, ROUGE;
- ``[-1, 1]``: Matthews correlation (CoLA), Pearson and Spearman correlation (STS-B).

A metric not listed is left unclipped.
"""

from __future__ import annotations

UNIT = (0.0, 1.0)
CORRELATION = (-1.0, 1.0)
RANGES = {"accuracy": UNIT, "f1": UNIT, "exact_match": UNIT, "exec_acc": UNIT, "lf_acc": UNIT, "mcc": CORRELATION, "pearson": CORRELATION,
          "spearman": CORRELATION}


def metric_range(metric: str | None) -> tuple[float, float] | None:
    """``(lo, hi)`` of a metric name (ROUGE variants: ``[0, 1]``), None when unknown."""
    if metric is None:
        return None
    metric = str(metric)
    return RANGES.get(metric) or (UNIT if metric.startswith("rouge") else None)


def clip_interval(interval: tuple[float, float] | None, metric: str | None) -> tuple[float, float] | None:
    """``interval`` intersected with the metric's range (unchanged when the range is unknown)."""
    bounds = metric_range(metric)
    if interval is None or bounds is None:
        return interval
    return max(bounds[0], interval[0]), min(bounds[1], interval[1])
