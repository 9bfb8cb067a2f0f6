"""The running trial's heartbeat: each ``last.ckpt`` save rewrites ``result.json`` with this process's
wall time so far, so a process killed without a word still counts up to its last checkpoint
(the ledger of processes: `lora_lab.resume.attempts`)."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from lora_lab.machine import training_devices
from lora_lab.resume.attempts import own_entry, tick


class AttemptHeartbeat(Callback):
    """Each ``last.ckpt`` save also rewrites the running record with this process's time so far
    (``write(wall_time_s)`` is the trial's writer; rank 0 only). When fitting starts, this process's
    entry gets the devices it trains on (``machine.devices``)."""

    def __init__(self, attempts: list[dict], write):
        self.attempts, self.write = attempts, write

    def on_fit_start(self, trainer, pl_module) -> None:
        mine = own_entry(self.attempts)
        if mine is not None:
            mine.setdefault("machine", {})["devices"] = training_devices(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.is_global_zero:
            self.write(tick(self.attempts))
