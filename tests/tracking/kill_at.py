"""Test-only callback, added through config (``+callbacks.kill._target_=tests.tracking.kill_at.KillGroupAt``):
SIGKILL a process group (a tracker server) once training reaches an optimizer step."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillGroupAt(Callback):
    def __init__(self, pgid: int, step: int):
        self.pgid, self.step, self.done = int(pgid), int(step), False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.done:
            self.done = True
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
