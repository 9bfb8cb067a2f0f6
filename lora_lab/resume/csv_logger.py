"""`HistoryCSVLogger`: Lightning's CSV logger, except that a resumed run appends to ``logs/metrics.csv``.

Lightning's writer deletes an existing ``metrics.csv`` when it starts ("previous log files ... will be
deleted"), so after a resume the file held only the rows logged since the restart while
``result.json``'s curve was complete. This writer keeps the file and its header (sorted column
names, as Lightning writes them); new columns rewrite the header as Lightning does. Rows logged
after the last checkpoint of a killed attempt appear twice (once per attempt): the file is the log
of what ran. A trial that starts over (``force=true``, another config) removes the file first
(`lora_lab.run.trial`).
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
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
