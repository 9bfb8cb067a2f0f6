"""Display names for the paper: methods, rows, tasks and metrics.

Methods and metrics name themselves: a row's label comes from the adapter registry (each method's
``display_name``, ``named_inits`` and ``table_order``, `lora_lab.adapters.method.AdapterMethod`) and
the init registry (`lora_lab.adapters.init.init_display_name`), so a new method or init needs no edit
here. ``lora`` with ``init=pissa`` is PiSSA (LoRA's ``named_inits``); ``rslora=true`` makes LoRA
rsLoRA and any other label ``X + rsLoRA``; any other non-default initialisation is appended
(``DoRA (PiSSA init)``, ``LoRA (gaussian init)``). A method the registry does not know keeps its key.
A metric's label is the one its task family declares (`lora_lab.tasks.base.MetricInfo`), and so is a
task's (the family's ``task_labels``: ``glue_cola`` -> CoLA; a task of your own keeps its name).
Rows are ordered by their method's ``table_order`` (the baseline-first order of the papers); unknown
methods follow alphabetically.
"""

from __future__ import annotations

import math

from lora_lab.adapters import METHODS
from lora_lab.adapters.init import init_display_name
from lora_lab.tasks.registry import metric_info, task_label

RSLORA = "rsLoRA"  # the label of a rank-stabilised run (the `rslora` knob; Kalajdzievski 2023)
SPLIT_NAMES = {"test": "test", "val": "dev"}
#: row keys folded into the label
LABEL_KEYS = ("method", "cfg.adapter.init", "cfg.adapter.rslora")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _inits_not_shown(method: str) -> tuple[str, ...]:
    """The method's default init, or every init when it accepts only one (nothing to tell apart)."""
    cls = METHODS.get(method)
    if cls is None:
        return ("kaiming",)
    declared = cls.config_cls.allowed_inits()
    return (cls.config_cls.init, *declared) if len(declared) == 1 else (cls.config_cls.init,)


def _display(method: str) -> str:
    cls = METHODS.get(method)
    return (cls.display_name or cls.name) if cls is not None else method


def method_label(method, init=None, rslora=None) -> str:
    """``("lora", "pissa")`` -> ``PiSSA``; ``("lora", "kaiming", True)`` -> ``rsLoRA``; ``("dora", "pissa")`` -> ``DoRA (PiSSA init)``."""
    method = "?" if _missing(method) else str(method)
    init = None if _missing(init) else str(init)
    named = METHODS[method].named_inits if method in METHODS else {}
    if init in named:
        base, init = named[init], None
    else:
        base = _display(method)
    if rslora is True or str(rslora).lower() == "true":
        base = RSLORA if base == _display("lora") else f"{base} + {RSLORA}"
    if init and init not in _inits_not_shown(method):
        base += f" ({init_display_name(init)} init)"
    return base


def method_order() -> list[str]:
    """Row labels in table order: each registered method by ``table_order``, followed by the labels its
    named inits (and, for the first, rsLoRA) give it."""
    labels = []
    for cls in sorted(METHODS.values(), key=lambda c: (c.table_order, c.name)):
        labels.append(_display(cls.name))
        if cls.name == "lora":  # the baseline's rank-stabilised variant follows it
            labels.append(RSLORA)
        labels.extend(label for label in cls.named_inits.values() if label not in labels)
    return labels


def row_label(row_keys: list[str], values) -> str:
    """The display label of a table row from its row keys (only `LABEL_KEYS` are used)."""
    named = dict(zip(row_keys, values))
    return method_label(named.get("method"), named.get("cfg.adapter.init"), named.get("cfg.adapter.rslora"))


def order_key(label: str, order: list[str]) -> tuple:
    """Sort key of a row label within ``order`` (`method_order`); unknown methods last, alphabetically."""
    first = label.split(" (")[0].split(" + ")[0]
    return (order.index(first) if first in order else len(order), label)


def task_name(task: str) -> str:
    """Column label -> display name (``glue_cola`` -> CoLA; ``glue_mrpc:f1`` -> MRPC), as the task's family labels it."""
    return task_label(task.split(":", 1)[0])


def metric_name(metric: str | None) -> str:
    """A metric's table label, as the task family that computes it declared it (`lora_lab.tasks.registry.metric_info`)."""
    return metric_info(metric).label


def ordered_rows(row_keys: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows in table order: by method label (`method_order`: the registry's `table_order`), then as given (the aggregate's order of
    the other keys, e.g. ascending r)."""
    position = {row: i for i, row in enumerate(rows)}
    order = method_order()
    return sorted(rows, key=lambda row: (order_key(row_label(row_keys, row), order), position[row]))
