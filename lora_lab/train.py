"""Training entry point: ``python -m lora_lab.train [overrides]`` or ``lora-lab train [overrides]``.

The Hydra wrapper only: configuration (`lora_lab.config`: compose, check, parse) then the trial
(`lora_lab.trial`: claim the run dir, build, fit, evaluate, record). One run = one deterministic run
directory (see `lora_lab.naming`) holding ``result.json``, ``adapter/``, ``checkpoints/last.ckpt`` and
``logs/metrics.csv``.

Input errors never touch a run directory: `cli_main` composes and checks the whole config before
Hydra creates anything, and prints one line ``error: <key>: ...`` (exit status 2); inside a multirun
the same check runs per trial and writes nothing either. Hydra's ``.hydra/`` files and ``train.log``
are written only once the trial owns its directory (`lora_lab.trial.run_in_dir`), so a refused rerun
leaves a finished run byte-identical. A SLURM timeout/preemption signal checkpoints, records the
stop and ends the process (exit status 128 + signal number) so the job can be requeued; a disk fault
is one line naming the path and the cause (exit status 1); any other failure is a bug: recorded in
``result.json`` as ``failed`` with its type and message, then raised (in a multirun sweep the sweep
goes on with the next trial).

A finished run prints its summary (`lora_lab.console.print_summary`: status, best validation and test
metric, trainable parameters, wall time, the path of ``result.json``; the record's own values); a
sweep whose launcher prints one line per trial (`lora_lab.sweeps.trial_lines`) prints those instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lora_lab.atomic import atomic_write_text
from lora_lab.config import (  # noqa: F401  (re-exported: the names callers import from here)
    ALLOWED_PRECISIONS,
    CONF_DIR,
    RESUME_KEYS,
    RUN_CONTROL_KEYS,
    check_precision,
    compose,
    container,
    parse,
    resume_options,
    run_dir_of,
    trial_identity,
    unknown_group_choice,
    validate,
)
from lora_lab.console import print_summary
from lora_lab.errors import ConfigError
from lora_lab.launch_ranks import check_local_ddp_sweep
from lora_lab.resume.signals import RunPreempted
from lora_lab.run_logging import drop_noise, setup_run_logging
from lora_lab.gate import RunDirTaken, check_command_line, preflight, settable_argv  # noqa: F401  (re-exported)
from lora_lab.trial import build_trainer, describe, run_in_dir, run_trial  # noqa: F401

log = logging.getLogger("lora_lab.train")
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None, on_start=None) -> dict:
    """Check ``cfg`` and run its trial in ``run_dir`` (in-process callers and tests); returns the record."""
    return run_in_dir(parse(cfg), run_dir, overrides, on_start)


class _RunFiles:
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
        """The root logger and Lightning's, which stop propagating when imported before logging is set up."""
        return [logging.getLogger()] + [logging.getLogger(n) for n in LIGHTNING_LOGGERS if not logging.getLogger(n).propagate]

    def close(self) -> None:
        if self.handler is not None:
            for logger in self._loggers():
                logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None


def _hydra_context():
    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


def objective(record: dict) -> float | None:
    """What a sweeper optimises: the selection metric (the task's primary metric) of the selected
    validation evaluation; None unless the trial succeeded (a sweeper records it as failed, never 0)."""
    if record.get("status") != "success":
        return None
    value = (record.get("metrics") or {}).get("best_val", {}).get(record.get("primary_metric"))
    return float(value) if isinstance(value, (int, float)) else None


def _remove_if_empty(run_dir: Path, levels: int = 6) -> None:
    """Hydra creates the output dir before the task runs; a trial refused by validation leaves none."""
    for directory in [run_dir, *run_dir.parents][:levels]:
        try:
            directory.rmdir()  # only succeeds when empty
        except OSError:
            return


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig):
    """The Hydra task: trains one trial and returns its objective (`objective`) for the sweeper."""
    run_dir, overrides, multirun = _hydra_context()
    try:
        check_local_ddp_sweep(container(cfg.trainer), multirun)
    except ConfigError as err:  # the whole sweep is refused, not trial by trial, before anything is written
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    setup_run_logging(multirun)
    files = _RunFiles(cfg, overrides)
    try:
        record = run_in_dir(parse(cfg), run_dir, overrides, on_start=files)
        print_summary(record, multirun)  # the values of the result.json just written
        return objective(record)
    except RunPreempted as stop:  # recorded by the trial; the job ends here (SLURM/submitit requeue it)
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except ConfigError as err:  # nothing was written for it
        _remove_if_empty(run_dir)
        print(f"error: {err}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except OSError as err:  # a disk fault (full, read-only): recorded where possible by the trial
        print(f"error: {describe(err)}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(1)
    except Exception:  # a bug: recorded by the trial, then re-raised (single run) or reported (sweep)
        if multirun:
            log.exception("trial failed: %s", run_dir)
            return None
        raise
    finally:
        files.close()


def cli_main(argv: list[str] | None = None) -> None:
    """``python -m lora_lab.train`` / ``lora-lab train``: every input error, a finished run and an
    unwritable runs root are answered before Hydra creates the run directory (`lora_lab.gate`)."""
    if argv is None:  # every schema key settable as group.key=value, no `+` (Hydra reads sys.argv)
        sys.argv[1:] = argv = settable_argv(sys.argv[1:])
    if check_command_line(argv):
        main()


if __name__ == "__main__":
    cli_main()
