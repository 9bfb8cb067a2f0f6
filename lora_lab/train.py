"""Training entry point: ``python -m lora_lab.train [overrides]`` or ``lora-lab train [overrides]``.

One run = one deterministic run directory (see `lora_lab.naming`) holding ``result.json``,
``adapter/`` (our adapter-only format), ``checkpoints/last.ckpt`` (adapter-only, resumable) and
``logs/metrics.csv``. A run whose ``result.json`` already says ``success`` for the same config is
skipped (``force=true`` reruns it); a ``checkpoints/last.ckpt`` is resumed. Bad input raises
`ConfigError`, printed as one line (exit status 2); any other failure is recorded in
``result.json`` as ``failed`` with its reason before it propagates (in a multirun sweep the sweep
goes on with the next trial).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lora_lab.errors import ConfigError
from lora_lab.naming import register_resolvers

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
log = logging.getLogger("lora_lab.train")
register_resolvers()


def container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def validate(cfg: DictConfig):
    """Parse every schema up front so bad input fails before anything is built."""
    from lora_lab.adapters import parse_config
    from lora_lab.data.tasks import parse_task_config
    from lora_lab.models.backbones import parse_backbone_config
    from lora_lab.models.optim import OPTIM_KEYS

    adapter = parse_config(container(cfg.adapter))
    task = parse_task_config(container(cfg.task))
    backbone = parse_backbone_config(container(cfg.backbone))
    for key in container(cfg.optim):
        if key not in OPTIM_KEYS:
            raise ConfigError(f"optim.{key}", f"unknown key; allowed: {', '.join(OPTIM_KEYS)}")
    if float(cfg.optim.lr) <= 0:
        raise ConfigError("optim.lr", f"must be positive, got {cfg.optim.lr}")
    return adapter, task, backbone


def build_trainer(cfg: DictConfig, run_dir: Path):
    from hydra.utils import instantiate

    loggers = [instantiate({**node, "save_dir": str(run_dir)}) for node in container(cfg.get("logger")).values()]
    callbacks = []
    for name, node in container(cfg.get("callbacks")).items():
        if name == "checkpoint":
            node = {**node, "dirpath": str(run_dir / "checkpoints")}
        if not loggers and node["_target_"].endswith("LearningRateMonitor"):
            continue  # it refuses to run without a logger
        callbacks.append(instantiate(node))
    return instantiate(container(cfg.trainer), callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir))


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """Run one trial into ``run_dir``; returns the result record."""
    from lora_lab.results.record import RESULT_NAME, read_result

    run_dir = Path(run_dir)
    resolved = container(cfg)
    adapter_cfg, task_cfg, backbone_cfg = validate(cfg)
    previous = read_result(run_dir) if (run_dir / RESULT_NAME).is_file() else None
    if previous is not None and previous.get("config") not in (None, resolved):
        raise ConfigError("run_name", f"{run_dir} already holds a result of a different config; give the run a distinct name")
    if previous is not None and previous.get("status") == "success" and not cfg.get("force", False):
        log.info("already finished: %s (force=true reruns it)", run_dir)
        return previous

    from lora_lab.models.backbones import set_offline_env

    set_offline_env(backbone_cfg.name, backbone_cfg.tokenizer, getattr(task_cfg, "data_dir", None) or "pypi:local-data")
    from lora_lab.runner import run_trial

    return run_trial(cfg, resolved, run_dir, overrides or [], adapter_cfg, task_cfg, backbone_cfg)


def _hydra_context():
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig):
    run_dir, overrides, multirun = _hydra_context()
    from lora_lab.runner import record_failure

    try:
        return train(cfg, run_dir, overrides)
    except ConfigError as err:
        record_failure(cfg, run_dir, overrides, "config_error", str(err))
        print(f"error: {err}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except KeyboardInterrupt:
        record_failure(cfg, run_dir, overrides, "cancelled", "interrupted", status="cancelled")
        raise
    except Exception as err:  # recorded, then re-raised (single run) or reported (sweep)
        record_failure(cfg, run_dir, overrides, type(err).__name__, str(err))
        if multirun:
            log.exception("trial failed: %s", run_dir)
            return None
        raise


if __name__ == "__main__":
    main()
