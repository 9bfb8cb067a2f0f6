"""What one finished run amounts to, read from its ``result.json`` record: the few numbers a person
looks at first (status, best validation metric and its step, test metric, trainable parameters, wall
time). The end-of-run summary (`lora_lab.run.console`), a sweep's per-trial lines
(`lora_lab.sweeps.trial_lines`) and every tracker's final summary (`lora_lab.tracking`) are all
printed from this one function, so they cannot disagree with ``result.json``.
"""

from __future__ import annotations

from pathlib import Path

from lora_lab.results.record import RESULT_NAME

#: set by `lora_lab.sweeps.trial_lines.TrialLines` while it prints one line per trial (and inherited by
#: parallel workers and SLURM jobs): the trials then print no summary of their own
TRIAL_LINES_ENV = "LORA_LAB_TRIAL_LINES"


def metric_name(record: dict) -> str | None:
    """The primary metric without its split prefix (``val/accuracy`` -> ``accuracy``)."""
    primary = record.get("primary_metric")
    return primary.split("/", 1)[1] if primary and "/" in primary else primary


def summarize(record: dict) -> dict:
    """The run's headline numbers, taken verbatim from the record (None where the record has none)."""
    name = metric_name(record)
    metrics = record.get("metrics") or {}
    best = metrics.get("best_val") or {}
    test = metrics.get("test") or {}
    params = record.get("params") or {}
    return {
        "status": record.get("status"),
        "reason": record.get("reason"),
        "run_name": record.get("run_name"),
        "metric": name,
        "best_val": best.get(f"val/{name}") if name else None,
        "best_step": best.get("step"),
        "test": test.get(f"test/{name}") if name else None,
        "trainable_params": params.get("trainable_params"),
        "wall_time_s": record.get("wall_time_s"),
        "optimizer_steps": record.get("optimizer_steps"),
        "result_path": str(Path(record.get("run_dir") or ".") / RESULT_NAME),
    }


def summary_metrics(record: dict) -> dict[str, float]:
    """The numeric part of `summarize` under stable tracker keys (``summary/best_val_accuracy``, ...)."""
    s = summarize(record)
    name = s["metric"] or "metric"
    values = {
        f"summary/best_val_{name}": s["best_val"],
        "summary/best_step": s["best_step"],
        f"summary/test_{name}": s["test"],
        "summary/trainable_params": s["trainable_params"],
        "summary/wall_time_s": s["wall_time_s"],
        "summary/optimizer_steps": s["optimizer_steps"],
    }
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def fmt_metric(value) -> str:
    """Metric values in lines and summaries: 4 decimals, ``-`` when absent."""
    return "-" if value is None else f"{float(value):.4f}"


def fmt_duration(seconds) -> str:
    """``71 s``, ``4 min 10 s``, ``2 h 05 min``."""
    if seconds is None:
        return "-"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
