"""The files Hydra would write into a run dir at start, written only once the trial owns the dir.

A refused rerun (a finished run, a run owned by another process, a bad value) must leave the run dir
byte-identical, so ``.hydra/{config,hydra,overrides}.yaml`` and the ``train.log`` handler are created
by `RunFiles` when `lora_lab.run.trial.run_in_dir` calls it with the claimed directory, not by Hydra
before the task runs. ``train.log`` is appended across attempts (a resumed run keeps its history).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lora_lab.atomic import atomic_write_text
from lora_lab.run.logs import drop_noise

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
#: Lightning's loggers stop propagating when imported before logging is set up: their lines reach train.log directly
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


class RunFiles:
    """What Hydra would write into the run dir at start, written once the trial owns it:
    ``.hydra/{config,hydra,overrides}.yaml`` and ``train.log`` (appended across attempts)."""

    def __init__(self, cfg: DictConfig, overrides: list[str]):
        self.cfg, self.overrides, self.handler = cfg, overrides, None

    def __call__(self, run_dir: Path) -> None:
        hydra_dir = run_dir / ".hydra"
        job = OmegaConf.masked_copy(self.cfg, [k for k in self.cfg if k != "hydra"])
        atomic_write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(job))
        atomic_write_text(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(self.overrides))))
        if HydraConfig.initialized():
            atomic_write_text(hydra_dir / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": HydraConfig.get()})))
        self.handler = drop_noise(logging.FileHandler(run_dir / "train.log", mode="a"))
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        for logger in self._loggers():
            logger.addHandler(self.handler)

    @staticmethod
    def _loggers() -> list[logging.Logger]:
        """The root logger, Lightning's (which stop propagating when imported before logging is set up)
        and the single run's plain progress lines (`lora_lab.run.progress.file_log`: the file only)."""
        from lora_lab.run.progress import file_log

        return [logging.getLogger(), file_log] + [logging.getLogger(n) for n in LIGHTNING_LOGGERS if not logging.getLogger(n).propagate]

    def summary(self, text: str) -> None:
        """The run's closing summary, into ``train.log`` as well."""
        if self.handler is not None:
            self.handler.emit(logging.LogRecord("lora_lab.summary", logging.INFO, __file__, 0, text, None, None))

    def close(self) -> None:
        if self.handler is not None:
            for logger in self._loggers():
                logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
