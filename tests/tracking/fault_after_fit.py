"""Test-only callback, added through config (``+callbacks.<key>._target_=...``): once fit ends, a plain
file takes the place of the adapter directories, so saving the adapter fails with an OS error, as a
full or read-only disk would, after training and outside Lightning's hooks."""

from pathlib import Path

from lightning.pytorch.callbacks import Callback


class BlockAdapterDirs(Callback):
    def on_fit_end(self, trainer, pl_module) -> None:
        for name in ("adapter_last", "adapter"):
            (Path(trainer.default_root_dir) / name).write_text("not a directory\n")
