"""Test-only callbacks, added through config like any user callback (``+callbacks.<key>._target_=...``)."""

import os
import signal
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class SignalAt(Callback):
    """The process sends itself ``signal_name`` once training reaches optimizer step ``step`` (at the
    end of that batch, or at the start of the validation that follows with ``when=validation``), as
    SLURM would. A run resumed past ``step`` does not signal again."""

    def __init__(self, step: int, signal_name: str = "SIGUSR2", when: str = "batch"):
        self.step, self.signum, self.when = int(step), getattr(signal, signal_name), when
        self._sent = False

    def on_train_start(self, trainer, pl_module) -> None:
        self._sent = trainer.global_step >= self.step

    def _maybe(self, trainer) -> None:
        if trainer.global_step == self.step and not self._sent:
            self._sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.when == "batch":
            self._maybe(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.when == "validation" and not trainer.sanity_checking:
            self._maybe(trainer)


class Throttle(Callback):
    """Sleep after every training batch so a test can signal a real job mid-training on a fast machine
    (numerics are untouched)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)


class CountBatches(Callback):
    """Append the number of training batches this process ran to ``path`` (one line per fit)."""

    def __init__(self, path: str):
        self.path, self.n = Path(path), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.n += 1

    def on_train_end(self, trainer, pl_module) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{self.n}\n")


class RaiseIfLr(Callback):
    """Fail the trial whose learning rate is ``lr`` with a RuntimeError at its first batch."""

    def __init__(self, lr: float):
        self.lr = float(lr)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if abs(pl_module.optim_cfg.lr - self.lr) < 1e-12:
            raise RuntimeError(f"injected failure for lr={self.lr}")


class SignalOnceAtTest(Callback):
    """The process sends itself ``signal_name`` at the first test batch, once per ``marker`` file (a rerun
    with the same config, which must resume and finish, does not signal again)."""

    def __init__(self, marker: str, signal_name: str = "SIGTERM"):
        self.marker, self.signum = Path(marker), getattr(signal, signal_name)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not self.marker.exists():
            self.marker.write_text("sent\n")
            os.kill(os.getpid(), self.signum)


class RecordCalibration(Callback):
    """Append, per fit, whether this process was handed calibration batches and the module's
    ``init_summary`` (what the data-driven init read) to ``path`` as one JSON line."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        import json

        with open(self.path, "a") as fh:
            fh.write(json.dumps({"handed_batches": pl_module.calibration_batches is not None, "init_summary": pl_module.init_summary}) + "\n")
