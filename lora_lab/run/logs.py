"""One copy of each log line of a run, without per-trial noise (called by the Hydra wrapper, `lora_lab.train`).

Lightning's own console handler is removed so each of its lines prints once (through Hydra's console
handler, and into ``<run dir>/train.log`` once the trial owns its directory); lines that carry no
information for a run (tips, device probes, weight-loading bars, transformers' load reports) are
dropped; inside a sweep the console handlers go, the trial's log file keeps every line.
"""

from __future__ import annotations

import logging
import warnings

import lightning.pytorch  # noqa: F401  (installs its own console handler on import: removed by setup_run_logging)
import transformers

#: Lightning INFO lines that say nothing about this run
NOISE = ("Tip:", "GPU available:", "TPU available:", "HPU available:", "`weights_only` was not set",
         "Loading `train_dataloader` to estimate", "was configured so validation will run")
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


class DropNoise(logging.Filter):
    """Drops the records whose message contains one of `NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in NOISE)


def drop_noise(handler: logging.Handler) -> logging.Handler:
    """``handler`` with a `DropNoise` filter (once): filters on handlers also see records of child loggers."""
    if not any(isinstance(f, DropNoise) for f in handler.filters):
        handler.addFilter(DropNoise())
    return handler


class ShowOnce:
    """``warnings.showwarning`` that shows each (message, category) once per process. Python's own
    ``once`` action forgets what it showed whenever a library changes the warning filters (Lightning
    does, e.g. around ``trainer.test``), so its hints (``srun`` available but not used) printed twice."""

    def __init__(self, show):
        self.show, self.seen = show, set()

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        key = (str(message), category)
        if key not in self.seen:
            self.seen.add(key)
            self.show(message, category, filename, lineno, file, line)


def setup_run_logging(multirun: bool) -> None:
    """One copy of each log line, no per-trial noise; in a sweep, nothing on the console."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    for name in LIGHTNING_LOGGERS:
        lightning_log = logging.getLogger(name)
        if root.handlers:  # Hydra's handlers print (and file) everything once
            for handler in list(lightning_log.handlers):
                lightning_log.removeHandler(handler)
            lightning_log.propagate = True
        handlers += lightning_log.handlers
    for handler in handlers:
        drop_noise(handler)
    transformers.utils.logging.set_verbosity_error()  # load reports ("classifier.weight MISSING")
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
    if multirun:
        logging.captureWarnings(True)  # into the trial's log file
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
    if not isinstance(warnings.showwarning, ShowOnce):
        warnings.showwarning = ShowOnce(warnings.showwarning)
