"""The generation family's metric names and ``task.metric_fn`` loading: what a config may name, without
the scoring code (`lora_lab.tasks.generation.metrics`), so that checking a config stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from lora_lab.errors import ConfigError
from lora_lab.tasks.base import UNIT, MetricInfo, metric_names

#: the built-in per-example scores (defined in `lora_lab.tasks.generation.metrics`), averaged over examples;
#: a metric of your own (``task.metric_fn``) is reported under its function's name, with no known range
BUILTIN_METRIC_INFO = (MetricInfo("exact_match", "EM", UNIT), MetricInfo("rouge_l", "ROUGE-L", UNIT))
BUILTIN_METRIC_NAMES = metric_names(BUILTIN_METRIC_INFO)


def load_metric_fn(path: str) -> tuple[str, Callable[[str, str], float]]:
    """(name, function) of a dotted path ``package.module.function``."""
    module_name, _, attr = str(path).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError) as err:
        raise ConfigError("task.metric_fn", f"cannot import {path!r} ({type(err).__name__}: {err})") from None
    if not callable(fn):
        raise ConfigError("task.metric_fn", f"{path!r} must be the dotted path of a function fn(prediction, target) -> float")
    return attr, fn
