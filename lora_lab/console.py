"""What a run prints besides its progress (`lora_lab.progress`): one end-of-run summary, and no noise.

- **Summary** (`summary_text`): status, best validation metric and its step, test metric, trainable
  parameters, wall time, the path of ``result.json``; every value read from the record written there.
  A sweep that prints one line per trial (`lora_lab.sweeps.trial_lines`) replaces the trials' summaries.
- **Quiet** (`setup_run_logging`): Lightning's own console handler is removed so each of its lines
  prints once (through Hydra's handlers); lines that carry no information for a run (tips, device
  probes, weight-loading bars, transformers' load reports) are dropped; inside a sweep the console
  handlers go, the trial's log file (``<run dir>/train.log``) keeps everything.
- **Options** (`progress_options`): the validated ``progress:`` config (``mode``: auto = a bar on a
  terminal, plain lines elsewhere; ``every_n_steps``).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from lora_lab.errors import ConfigError
from lora_lab.run_summary import TRIAL_LINES_ENV, fmt_duration, fmt_metric, summarize

PROGRESS_MODES = ("auto", "bar", "lines", "none")
PROGRESS_KEYS = ("mode", "every_n_steps")

#: Lightning INFO lines that say nothing about this run
NOISE = ("Tip:", "GPU available:", "TPU available:", "HPU available:", "`weights_only` was not set",
         "Loading `train_dataloader` to estimate", "was configured so validation will run")


def progress_options(raw: dict | None) -> dict:
    """Validated ``progress:`` config: ``mode`` in `PROGRESS_MODES`, ``every_n_steps`` a positive int."""
    raw = dict(raw or {})
    for key in raw:
        if key not in PROGRESS_KEYS:
            raise ConfigError(f"progress.{key}", f"unknown key; allowed: {', '.join(PROGRESS_KEYS)}")
    mode = raw.get("mode", "auto")
    if mode not in PROGRESS_MODES:
        raise ConfigError("progress.mode", f"got {mode!r}; allowed: {', '.join(PROGRESS_MODES)}")
    every = raw.get("every_n_steps", 10)
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ConfigError("progress.every_n_steps", f"must be a positive integer, got {every!r}")
    return {"mode": mode, "every_n_steps": every}


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in NOISE)


def in_sweep() -> bool:
    """Whether this process runs a trial of a Hydra multirun (a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def setup_run_logging(multirun: bool) -> None:
    """One copy of each log line, no per-trial noise; in a sweep, nothing on the console."""
    import lightning.pytorch  # noqa: F401  (installs its own console handler on import: removed below)
    import transformers

    root = logging.getLogger()
    handlers = list(root.handlers)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        lightning_log = logging.getLogger(name)
        if root.handlers:  # Hydra's handlers print (and file) everything once
            for handler in list(lightning_log.handlers):
                lightning_log.removeHandler(handler)
            lightning_log.propagate = True
        handlers += lightning_log.handlers
    for handler in handlers:  # filters on handlers also see records propagated from child loggers
        if not any(isinstance(f, _DropNoise) for f in handler.filters):
            handler.addFilter(_DropNoise())
    transformers.utils.logging.set_verbosity_error()  # load reports ("classifier.weight MISSING")
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
    if multirun:
        logging.captureWarnings(True)  # into the trial's log file
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)


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
