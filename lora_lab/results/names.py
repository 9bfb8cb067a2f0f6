"""Display names for the paper: methods, rows, tasks and metrics, in one place.

A row's label comes from its method and the knobs that make it a named variant: ``lora`` with
``init=pissa`` is PiSSA, with ``init=olora`` OLoRA, with ``rslora=true`` rsLoRA; any other
non-default initialisation is appended (``DoRA (PiSSA init)``, ``LoRA (gaussian init)``). A method
without an entry keeps its key. `METHOD_ORDER` is the row order of the tables (the baseline-first
order of the papers); unknown methods follow alphabetically.
"""

from __future__ import annotations

import math

#: method key -> display name (the adapter registry's keys; LoRA+ and VeRA for the methods that add them)
METHOD_NAMES = {
    "lora": "LoRA", "rslora": "rsLoRA", "pissa": "PiSSA", "olora": "OLoRA", "dora": "DoRA", "adalora": "AdaLoRA",
    "vera": "VeRA", "lora_plus": "LoRA+", "loraplus": "LoRA+",
}
#: initialisations that make a LoRA run a method of its own
NAMED_INITS = {"pissa": "PiSSA", "olora": "OLoRA"}
#: each method's own initialisation (not shown in its label)
DEFAULT_INITS = {"lora": ("kaiming",), "dora": ("kaiming",), "adalora": ("adalora", "kaiming"), "rslora": ("kaiming",)}
METHOD_ORDER = ("LoRA", "rsLoRA", "LoRA+", "PiSSA", "OLoRA", "DoRA", "VeRA", "AdaLoRA")
TASK_NAMES = {
    "glue_mnli": "MNLI", "glue_sst2": "SST-2", "glue_mrpc": "MRPC", "glue_cola": "CoLA", "glue_qnli": "QNLI", "glue_qqp": "QQP",
    "glue_rte": "RTE", "glue_stsb": "STS-B", "glue_wnli": "WNLI", "synthetic": "Synthetic", "wikisql": "WikiSQL",
    "wikisql_synthetic": "WikiSQL (synthetic)",
}
METRIC_NAMES = {"accuracy": "Acc", "mcc": "MCC", "f1": "F1", "pearson": "Pearson", "spearman": "Spearman", "exec_acc": "Exec. acc", "lf_acc": "LF acc"}
SPLIT_NAMES = {"test": "test", "val": "dev"}
#: row keys folded into the label
LABEL_KEYS = ("method", "cfg.adapter.init", "cfg.adapter.rslora")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def method_label(method, init=None, rslora=None) -> str:
    """``("lora", "pissa")`` -> ``PiSSA``; ``("lora", "kaiming", True)`` -> ``rsLoRA``; ``("dora", "pissa")`` -> ``DoRA (PiSSA init)``."""
    method = "?" if _missing(method) else str(method)
    init = None if _missing(init) else str(init)
    if method == "lora" and init in NAMED_INITS:
        base, init = NAMED_INITS[init], None
    else:
        base = METHOD_NAMES.get(method, method)
    if rslora is True or str(rslora).lower() == "true":
        base = "rsLoRA" if base == "LoRA" else f"{base} + rsLoRA"
    if init and init not in DEFAULT_INITS.get(method, ("kaiming",)):
        base += f" ({NAMED_INITS.get(init.split('_niter')[0], init)} init)"
    return base


def row_label(row_keys: list[str], values) -> str:
    """The display label of a table row from its row keys (only `LABEL_KEYS` are used)."""
    named = dict(zip(row_keys, values))
    return method_label(named.get("method"), named.get("cfg.adapter.init"), named.get("cfg.adapter.rslora"))


def order_key(label: str) -> tuple:
    first = label.split(" (")[0].split(" + ")[0]
    return (METHOD_ORDER.index(first) if first in METHOD_ORDER else len(METHOD_ORDER), label)


def task_name(task: str) -> str:
    """Column label -> display name (``glue_cola`` -> CoLA; ``glue_mrpc:f1`` -> MRPC)."""
    base = task.split(":", 1)[0]
    return TASK_NAMES.get(base, base)


def metric_name(metric: str | None) -> str:
    return METRIC_NAMES.get(metric or "", metric or "?")


def ordered_rows(row_keys: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows in table order: by method label (`METHOD_ORDER`), then as given (the aggregate's order of
    the other keys, e.g. ascending r)."""
    position = {row: i for i, row in enumerate(rows)}
    return sorted(rows, key=lambda row: (order_key(row_label(row_keys, row)), position[row]))
