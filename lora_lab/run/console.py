"""What a run prints besides its progress (`lora_lab.run.progress`): one end-of-run summary (the
validated ``progress:`` options are `lora_lab.config.trial_config.progress_options`). (Quiet logging: `lora_lab.run.logs`.)

- **Summary** (`summary_text`): status, best validation metric and its step, test metric, trainable
  parameters, wall time, the path of ``result.json``; every value read from the record written there.
  A sweep that prints one line per trial (`lora_lab.sweeps.trial_lines`) replaces the trials' summaries.
"""

from __future__ import annotations

import os
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lora_lab.results.run_summary import TRIAL_LINES_ENV, fmt_duration, fmt_metric, summarize


def in_sweep() -> bool:
    """Whether this process runs a trial of a Hydra multirun (a sweep)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def summary_text(record: dict) -> str:
    """The end-of-run block: one ``key  value`` line each, values as in ``result.json``."""
    s = summarize(record)
    metric = s["metric"] or "metric"
    lines = [f"run {s['status']}: {s['run_name']}"]
    if s["reason"]:
        lines.append(f"  reason     {s['reason']}")
    if s["best_val"] is not None:
        lines.append(f"  best val   {metric} {fmt_metric(s['best_val'])} at step {s['best_step']}")
    if s["test"] is not None:
        lines.append(f"  test       {metric} {fmt_metric(s['test'])}")
    if s["trainable_params"] is not None:
        lines.append(f"  trainable  {s['trainable_params']:,} parameters")
    if s["wall_time_s"] is not None:
        lines.append(f"  wall time  {fmt_duration(s['wall_time_s'])} ({float(s['wall_time_s']):.1f} s)")
    lines.append(f"  result     {s['result_path']}")
    return "\n".join(lines)


def print_summary(record: dict, multirun: bool, out=None) -> None:
    """The summary on stdout, unless the trial was held by another job or a sweep prints its line instead."""
    if record.get("status") == "running" or (multirun and os.environ.get(TRIAL_LINES_ENV) == "1"):
        return
    print(summary_text(record), file=out or sys.stdout, flush=True)
