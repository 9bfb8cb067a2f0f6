"""Intervals clipped to the values a metric can take.

A Student-t interval ``mean ± t s / sqrt(n)`` of a bounded score can cross its bound (two seeds at
0.80 and 0.99 give an upper end above 1 for accuracy); the reported interval is its intersection with
the metric's range: ``[max(lo, mean - h), min(hi, mean + h)]``. The range is the one the task family
that computes the metric declares (`lora_lab.tasks.base.MetricInfo`: ``[0, 1]`` for rates such as
accuracy, F1, exact match, ROUGE-L and execution accuracy; ``[-1, 1]`` for Matthews, Pearson and
Spearman correlation). A metric no family declares is left unclipped.
"""

from __future__ import annotations

from lora_lab.tasks.registry import metric_info


def metric_range(metric: str | None) -> tuple[float, float] | None:
    """``(lo, hi)`` of a metric name; None when unbounded or unknown."""
    return metric_info(metric).range


def clip_interval(interval: tuple[float, float] | None, metric: str | None) -> tuple[float, float] | None:
    """``interval`` intersected with the metric's range (unchanged when the range is unknown)."""
    bounds = metric_range(metric)
    if interval is None or bounds is None:
        return interval
    return max(bounds[0], interval[0]), min(bounds[1], interval[1])
