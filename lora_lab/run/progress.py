"""`ProgressPrinter`: live progress of one run's optimizer steps, fitted to where stdout goes.

On a terminal one bar redrawn in place (``\\r``): ``[#####---------------] step 25/100  loss 0.6624
lr 2.66e-04  3.10 step/s  ETA 24 s``; elsewhere (a SLURM log file, CI, a pipe) one plain line every
``progress.every_n_steps`` optimizer steps, never a redraw; one line per validation. Inside a sweep
the lines go through the ``lora_lab.progress`` logger into the trial's log file (``<run dir>/train.log``)
so the sweep's console shows one line per finished trial. A single run writes the same plain lines
(every ``progress.every_n_steps`` steps and each validation, whatever the console shows) to the
``lora_lab.progress.file`` logger, which only the run's ``train.log`` handler listens to
(`lora_lab.train`). Rank 0 only.
"""

from __future__ import annotations

import logging
import sys
import time

from lightning.pytorch.callbacks import Callback

from lora_lab.models.module import step_loss_tensor
from lora_lab.results.run_summary import fmt_duration, fmt_metric

log = logging.getLogger("lora_lab.progress")
#: the plain progress lines of a single run, for ``<run dir>/train.log`` only (the console has its own)
file_log = logging.getLogger("lora_lab.progress.file")
file_log.propagate = False
file_log.setLevel(logging.INFO)


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
        self.loss = None  # the last batch's loss tensor (on the device)
        self._loss_read: tuple | None = None  # (step, value) of the one host read per printed step

    # ----- output ---------------------------------------------------------------------------------
    def _line(self, text: str, to_file: bool = True) -> None:
        """A plain line: into the sweep trial's log; else to ``train.log`` (``to_file``) and the console."""
        if self.to_log:
            log.info(text)
            return
        if to_file:
            file_log.info(text)
        if self.mode == "none":
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
        if not trainer.is_global_zero or self.started is None:
            return
        self.loss = step_loss_tensor(outputs)  # read on the host only when a line or the bar is drawn (`_loss_value`)
        step = int(trainer.global_step)
        if step == self.first_step or step == getattr(self, "_shown", None):
            return  # no optimizer step finished in this batch (gradient accumulation) or already shown
        now = time.monotonic()
        if not self.to_log and step % self.every_n_steps == 0:
            file_log.info(self._status(trainer, step, now, bar=False))
        if self.mode == "none":
            return
        if self.mode == "bar":
            if now - self.last_draw < 0.2:
                return
            self.last_draw, self._shown = now, step
            self._bar(self._status(trainer, step, now, bar=True))
        elif step % self.every_n_steps == 0:
            self._shown = step
            self._line(self._status(trainer, step, now, bar=False), to_file=False)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
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
    def _loss_value(self, step: int) -> float | None:
        """The loss of ``step`` on the host: one device sync per printed step, however many outputs
        (the console line, ``train.log``, the bar) print it."""
        if self._loss_read is None or self._loss_read[0] != step:
            self._loss_read = (step, float(self.loss) if self.loss is not None else None)
        return self._loss_read[1]

    def _status(self, trainer, step: int, now: float, bar: bool) -> str:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else trainer.estimated_stepping_batches
        total = int(total) if total not in (None, float("inf")) else None
        rate = (step - self.first_step) / max(now - self.started, 1e-9)
        loss = self._loss_value(step)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        parts = [f"step {step}/{total}" if total else f"step {step}"]
        if bar and total:
            filled = int(20 * step / total)
            parts.insert(0, "[" + "#" * filled + "-" * (20 - filled) + "]")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if lr is not None:
            parts.append(f"lr {lr:.2e}")
        parts.append(f"{rate:.2f} step/s")
        if total and rate > 0:
            parts.append(f"ETA {fmt_duration((total - step) / rate)}")
        return "  ".join(parts)
