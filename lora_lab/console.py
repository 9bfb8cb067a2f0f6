"""What a run prints: live progress fitted to where stdout goes, one end-of-run summary, no noise.

- **Progress** (`ProgressPrinter`, config ``progress.mode``): on a terminal one bar redrawn in place
  (``\\r``) with step, loss, lr, step/s and ETA; anywhere else (a SLURM log file, CI, a pipe) one plain
  line every ``progress.every_n_steps`` optimizer steps, never a redraw. Every validation prints one
  line. Inside a sweep the lines go to the trial's log file (``<run dir>/train.log``) instead, so the
  sweep's own output stays one line per finished trial (`lora_lab.sweeps.trial_lines`).
- **Summary** (`summary_text`): status, best validation metric and its step, test metric, trainable
  parameters, wall time, the path of ``result.json``; every value read from the record written there.
- **Quiet** (`setup_run_logging`): Lightning's own console handler is removed so each of its lines
  prints once (through Hydra's handlers); lines that carry no information for a run (tips, device
  probes, weight-loading bars, transformers' load reports) are dropped; inside a sweep the console
  handlers go, the trial's log file keeps everything.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

from lightning.pytorch.callbacks import Callback

from lora_lab.errors import ConfigError
from lora_lab.run_summary import TRIAL_LINES_ENV, fmt_duration, fmt_metric, summarize

PROGRESS_MODES = ("auto", "bar", "lines", "none")
PROGRESS_KEYS = ("mode", "every_n_steps")
log = logging.getLogger("lora_lab.progress")

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


def step_loss(outputs) -> float | None:
    """The training loss of the batch that just ended, from ``training_step``'s output."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return float(loss) if loss is not None else None


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


class ProgressPrinter(Callback):
    """Live progress of one run's optimizer steps (rank 0 only); see the module docstring."""

    def __init__(self, mode: str = "auto", every_n_steps: int = 10, multirun: bool = False, stream=None):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "lines" if multirun or not self.stream.isatty() else "bar"
        self.mode, self.every_n_steps, self.to_log = mode, every_n_steps, multirun
        self.started = self.first_step = None
        self.last_draw = 0.0
        self.bar_open = False
        self.loss = None

    # ----- output ---------------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        if self.to_log:
            log.info(text)
            return
        if self.bar_open:
            self.stream.write("\r\x1b[2K")
            self.bar_open = False
        print(text, file=self.stream, flush=True)

    def _bar(self, text: str) -> None:
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self.bar_open = True

    # ----- Lightning hooks ------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self.started, self.first_step = time.monotonic(), int(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.mode == "none" or not trainer.is_global_zero or self.started is None:
            return
        self.loss = step_loss(outputs)
        step = int(trainer.global_step)
        if step == self.first_step or step == getattr(self, "_shown", None):
            return  # no optimizer step finished in this batch (gradient accumulation) or already shown
        now = time.monotonic()
        if self.mode == "bar":
            if now - self.last_draw < 0.2:
                return
            self.last_draw, self._shown = now, step
            self._bar(self._status(trainer, step, now, bar=True))
        elif step % self.every_n_steps == 0:
            self._shown = step
            self._line(self._status(trainer, step, now, bar=False))

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.mode == "none" or trainer.sanity_checking or not trainer.is_global_zero:
            return
        curve = getattr(pl_module, "curve", None) or []
        if not curve:
            return
        point = curve[-1]
        values = "  ".join(f"{k.split('/', 1)[1]} {fmt_metric(v)}" for k, v in point.items() if k.startswith("val/"))
        best = " (best)" if getattr(pl_module, "best", None) is point else ""
        self._line(f"val   step {point['step']}: {values}{best}")

    def on_train_end(self, trainer, pl_module) -> None:
        step = int(trainer.global_step)
        if self.mode == "bar" and trainer.is_global_zero and self.started is not None and step != self.first_step:
            self._bar(self._status(trainer, step, time.monotonic(), bar=True))  # the final state, not the last throttled one
        if self.bar_open:
            self.stream.write("\n")
            self.stream.flush()
            self.bar_open = False

    # ----- formatting -----------------------------------------------------------------------------
    def _status(self, trainer, step: int, now: float, bar: bool) -> str:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else trainer.estimated_stepping_batches
        total = int(total) if total not in (None, float("inf")) else None
        rate = (step - self.first_step) / max(now - self.started, 1e-9)
        loss = self.loss
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        parts = [f"step {step}/{total}" if total else f"step {step}"]
        if bar and total:
            filled = int(20 * step / total)
            parts.insert(0, "[" + "#" * filled + "-" * (20 - filled) + "]")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if lr is not None:
            parts.append(f"lr {lr:.2e}")
        parts.append(f"{rate:.2f} step/s")
        if total and rate > 0:
            parts.append(f"ETA {fmt_duration((total - step) / rate)}")
        return "  ".join(parts)
