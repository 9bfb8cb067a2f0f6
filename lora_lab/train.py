"""Training entry point: ``python -m lora_lab.train [overrides]`` or ``lora-lab train [overrides]``.

One run = one deterministic run directory (see `lora_lab.naming`) holding ``result.json``,
``adapter/`` (our adapter-only format), ``checkpoints/last.ckpt`` (adapter-only, resumable) and
``logs/metrics.csv``. A run whose ``result.json`` already says ``success`` for the same config is
skipped (``force=true`` reruns it); a ``checkpoints/last.ckpt`` is resumed (`lora_lab.resume`). A
SLURM timeout/preemption signal checkpoints, records the stop and ends the process (exit status
128 + signal number) so the job can be requeued. Bad input raises
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
    from lora_lab.console import progress_options
    from lora_lab.data.tasks import parse_task_config
    from lora_lab.models.backbones import parse_backbone_config
    from lora_lab.models.optim import OPTIM_KEYS
    from lora_lab.tracking import load_tracker_class, split_logger_nodes

    adapter = parse_config(container(cfg.adapter))
    task = parse_task_config(container(cfg.task))
    backbone = parse_backbone_config(container(cfg.backbone))
    for key in container(cfg.optim):
        if key not in OPTIM_KEYS:
            raise ConfigError(f"optim.{key}", f"unknown key; allowed: {', '.join(OPTIM_KEYS)}")
    if float(cfg.optim.lr) <= 0:
        raise ConfigError("optim.lr", f"must be positive, got {cfg.optim.lr}")
    check_precision(cfg.trainer.get("precision"))
    progress_options(container(cfg.get("progress")))
    for name, node in split_logger_nodes(container(cfg.get("logger")))[1].items():
        load_tracker_class(node["tracker"], key=f"logger.{name}.tracker")  # a missing package: one line, before anything runs
    return adapter, task, backbone


RESUME_KEYS = ("every_n_minutes",)
RUN_CONTROL_KEYS = ("force", "resume", "progress", "logger")  # how to run a trial, not which trial: ignored when matching results


def resume_options(cfg: DictConfig) -> dict:
    raw = container(cfg.get("resume"))
    for key in raw:
        if key not in RESUME_KEYS:
            raise ConfigError(f"resume.{key}", f"unknown key; allowed: {', '.join(RESUME_KEYS)}")
    minutes = raw.get("every_n_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise ConfigError("resume.every_n_minutes", f"must be null or a positive number, got {minutes!r}")
    return raw


#: Lightning precisions that keep adapter weights in fp32 (the "-true" half precisions cast the whole
#: module, adapters included, to 16 bits)
ALLOWED_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "16-mixed")


def check_precision(precision) -> None:
    """Adapter weights stay fp32 (ALGORITHMS.md: bf16 autocast for the frozen base only)."""
    if precision is not None and str(precision) not in ALLOWED_PRECISIONS:
        raise ConfigError("trainer.precision", f"{precision!r} would cast the adapter weights to 16 bits; allowed: {', '.join(ALLOWED_PRECISIONS)} (bf16-mixed: frozen base in bf16 under autocast, adapters fp32)")


def build_trainer(cfg: DictConfig, run_dir: Path):
    """The Lightning trainer of one trial: configured callbacks and loggers, plus what every run gets
    (`lora_lab.resume`): `ResumeCheckpoint` (owns checkpoints/last.ckpt and SLURM stop signals),
    `RngState`, `LoaderStateRestore` (mid-epoch data position), atomic checkpoint writes and, on SLURM, Lightning's auto-requeue switched off."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lora_lab.console import in_sweep, progress_options
    from lora_lab.progress import ProgressPrinter
    from lora_lab.resume.checkpoint import ResumeCheckpoint
    from lora_lab.resume.checkpoint_io import AtomicCheckpointIO
    from lora_lab.resume.rng import RngState
    from lora_lab.resume.sampler import LoaderStateRestore
    from lora_lab.resume.slurm import cluster_plugins
    from lora_lab.tracking import split_logger_nodes, tracker_callback

    resume = resume_options(cfg)
    lightning_loggers, trackers = split_logger_nodes(container(cfg.get("logger")))
    loggers = [instantiate({**node, "save_dir": str(run_dir)}) for node in lightning_loggers.values()]
    callbacks = []
    for name, node in container(cfg.get("callbacks")).items():
        if name == "checkpoint":
            node = {**node, "dirpath": str(run_dir / "checkpoints")}
        if not loggers and node["_target_"].endswith("LearningRateMonitor"):
            continue  # it refuses to run without a logger
        callback = instantiate(node)
        if isinstance(callback, ModelCheckpoint) and callback.save_last:
            raise ConfigError(f"callbacks.{name}.save_last", "last.ckpt is written by lora_lab's resume checkpoint; set save_last: false")
        callbacks.append(callback)
    callbacks += [ResumeCheckpoint(run_dir / "checkpoints", every_n_minutes=resume.get("every_n_minutes")), RngState(), LoaderStateRestore()]
    callbacks += [ProgressPrinter(**progress_options(container(cfg.get("progress"))), multirun=in_sweep())]
    callbacks += tracker_callback(trackers, container(cfg), run_dir, resuming=(run_dir / "checkpoints" / "last.ckpt").is_file())
    trainer_cfg = container(cfg.trainer)
    plugins = [AtomicCheckpointIO(), *cluster_plugins(), *(trainer_cfg.pop("plugins", None) or [])]
    return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir), plugins=plugins)


class RunDirTaken(ConfigError):
    """The run dir holds a result of another config; that result is never overwritten."""


def trial_identity(config: dict | None) -> dict | None:
    """The resolved config without run-control keys: two configs equal here are the same trial."""
    return None if config is None else {k: v for k, v in config.items() if k not in RUN_CONTROL_KEYS}


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """Run one trial into ``run_dir``; returns the result record.

    Holds `RunLock` for the whole trial: a second job of the same trial returns at once without
    touching the run dir. ``force=true`` on a finished trial discards its checkpoint so it trains
    again from the start; an unfinished trial (killed, preempted, failed) resumes from
    ``checkpoints/last.ckpt``.
    """
    from lora_lab.results.record import RESULT_NAME, read_result
    from lora_lab.resume.checkpoint import LAST_NAME
    from lora_lab.resume.lock import RunLock

    run_dir = Path(run_dir)
    resolved = container(cfg)
    adapter_cfg, task_cfg, backbone_cfg = validate(cfg)
    resume_options(cfg)
    with RunLock(run_dir) as lock:
        if not lock.acquired:
            log.warning("%s is being run by another job (%s); not running it twice", run_dir, lock.holder())
            return {"status": "running", "run_dir": str(run_dir), "reason": f"held by {lock.holder()}"}
        previous = read_result(run_dir) if (run_dir / RESULT_NAME).is_file() else None
        if previous is not None and trial_identity(previous.get("config")) not in (None, trial_identity(resolved)):
            raise RunDirTaken("run_name", f"{run_dir} already holds a result of a different config; give the run a distinct name")
        if previous is not None and previous.get("status") == "success":
            if not cfg.get("force", False):
                log.info("already finished: %s (force=true reruns it)", run_dir)
                return previous
            (run_dir / "checkpoints" / LAST_NAME).unlink(missing_ok=True)  # a forced rerun starts over
            previous = None

        from lora_lab.models.backbones import set_offline_env

        set_offline_env(backbone_cfg.name, backbone_cfg.tokenizer, task_data_spec(task_cfg))
        from lora_lab.runner import run_trial

        history = list((previous or {}).get("interruptions") or [])
        return run_trial(cfg, resolved, run_dir, overrides or [], adapter_cfg, task_cfg, backbone_cfg, interruptions=history)


def task_data_spec(task_cfg) -> str:
    """Where the task's data comes from, as `set_offline_env` reads it: the local ``data_dir``, the
    Hub dataset id when a task with a ``data_dir`` field has none (GLUE, WikiSQL: needs the network
    or a warm cache, so the run must not be forced offline), or a local marker for data made by code."""
    if not hasattr(task_cfg, "data_dir"):
        return "pypi:generated-by-code"
    return task_cfg.data_dir or task_cfg.hub_dataset


def _hydra_context():
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig):
    from lora_lab.console import print_summary, setup_run_logging

    run_dir, overrides, multirun = _hydra_context()
    setup_run_logging(multirun)
    from lora_lab.resume.signals import RunPreempted
    from lora_lab.runner import record_failure

    try:
        record = train(cfg, run_dir, overrides)
        print_summary(record, multirun)
        return record
    except RunPreempted as stop:  # recorded by the runner; the job ends here (SLURM/submitit requeue it)
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except ConfigError as err:
        if not isinstance(err, RunDirTaken):  # the result there belongs to another config: keep it
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


def unknown_group_choice(argv: list[str], conf_dir: str | os.PathLike = CONF_DIR) -> ConfigError | None:
    """The first ``group=option`` command-line override naming an option that ``conf/<group>/`` lacks,
    as a one-line `ConfigError` listing the allowed options (Hydra's own message spans ~20 lines)."""
    root = Path(conf_dir)
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith("hydra") or "." in key or not (root / key).is_dir():
            continue
        allowed = sorted(p.stem for p in (root / key).glob("*.yaml"))
        for option in value.strip("[]").split(","):  # a multirun list names several options; [a,b] selects both
            option = option.strip()
            if option and option != "null" and not (root / key / f"{option}.yaml").is_file():
                return ConfigError(key, f"unknown option {option!r}; allowed: {', '.join(allowed)}")
    return None


def cli_main() -> None:
    """``python -m lora_lab.train`` / ``lora-lab train``: unknown config-group options end in one line."""
    err = unknown_group_choice(sys.argv[1:])
    if err is not None:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli_main()
