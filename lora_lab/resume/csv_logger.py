"""`HistoryCSVLogger`: Lightning's CSV logger, except that a resumed run appends to ``logs/metrics.csv``.

Lightning's writer deletes an existing ``metrics.csv`` when it starts ("previous log files ... will be
deleted"), so after a resume the file held only the rows logged since the restart while
``result.json``'s curve was complete. This writer keeps the file and its header (sorted column
names, as Lightning writes them); new columns rewrite the header as Lightning does. A trial that
starts over (``force=true``, another config) removes the file first (`lora_lab.run.trial`).

A resumed run repeats what ran after its last checkpoint, so a killed attempt's rows logged after
that checkpoint would appear twice (and a curve plotted from the file would zig-zag). `CsvRowsAtCheckpoint`
flushes the logger whenever ``last.ckpt`` is written and stores the file's row count in the
checkpoint; on resume the file is cut back to that many rows before anything new is written, so it
holds each logged step once: the rows up to the checkpoint, then the resumed run's.
"""

from __future__ import annotations

import csv
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class HistoryExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                self.metrics_keys = list(next(csv.reader(fh), []))


class HistoryCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryExperimentWriter(log_dir=self.log_dir)
        return self._experiment


ROWS_KEY = "lora_lab_metrics_csv_rows"


def data_rows(path) -> int:
    """Rows of ``path`` after the header (csv-aware: a quoted field may hold a newline)."""
    if not os.path.isfile(path):
        return 0
    with open(path, newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def truncate_rows(path, rows: int) -> int:
    """Keep the header and the first ``rows`` rows of ``path``; returns how many rows were dropped."""
    if not os.path.isfile(path):
        return 0
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    dropped = max(len(table) - 1 - rows, 0)
    if dropped:
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(table[: rows + 1])
        os.replace(tmp, path)
    return dropped


class CsvRowsAtCheckpoint(Callback):
    """Store ``metrics.csv``'s row count in each checkpoint; cut the file back to it on resume."""

    @staticmethod
    def _writers(trainer) -> list[HistoryCSVLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, HistoryCSVLogger)]

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if not trainer.is_global_zero:
            return
        for logger in self._writers(trainer)[:1]:
            logger.save()  # the buffered rows belong to the state being saved
            checkpoint[ROWS_KEY] = data_rows(logger.experiment.metrics_file_path)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        rows = checkpoint.get(ROWS_KEY)
        if rows is None or not trainer.is_global_zero:
            return
        for logger in self._writers(trainer)[:1]:
            truncate_rows(logger.experiment.metrics_file_path, int(rows))
