"""The Hydra task of a trial: what ``python -m lora_lab.train`` and every sweep job run once Hydra has
composed the config (`main`), and what it returns to a sweeper (`objective`).

It sets up the run's logging, hands the parsed `TrialConfig` to `lora_lab.run.trial.run_in_dir` (with
`RunFiles`, written once the trial owns its directory), prints the summary and turns each way a trial
can end into its exit status: a SLURM preemption 128 + signal (the job is requeued), SIGTERM / Ctrl-C
outside training's safe points 128 + signal (recorded ``cancelled``), a bad value 2 (nothing written),
a disk fault 1 (one line naming the path), any other failure 1 (recorded ``failed``; inside a sweep it
is logged and the sweep goes on).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lora_lab.config.trial_config import parse

from lora_lab.config.compose import CONF_DIR, container
from lora_lab.errors import ConfigError, one_line, show_tracebacks
from lora_lab.resume.signals import RunPreempted, RunStopped
from lora_lab.run.console import print_summary, summary_text
from lora_lab.run.launch_ranks import check_local_ddp_sweep
from lora_lab.run.logs import setup_run_logging
from lora_lab.run.parent_watch import watch_sweep_process
from lora_lab.run.run_files import RunFiles
from lora_lab.run.trial import describe, run_in_dir

log = logging.getLogger("lora_lab.train")


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
    if multirun:
        watch_sweep_process()  # a parallel worker ends when its sweep process is killed
    files = RunFiles(cfg, overrides)
    try:
        record = run_in_dir(parse(cfg), run_dir, overrides, on_start=files)
        print_summary(record, multirun)  # the values of the result.json just written
        if record.get("status") != "running":
            files.summary(summary_text(record))
        return objective(record)
    except RunPreempted as stop:  # recorded by the trial; the job ends here (SLURM/submitit requeue it)
        print(f"stopped: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except RunStopped as stop:  # SIGTERM / Ctrl-C outside training's safe points: recorded cancelled, resumable
        print(f"stopped: {stop}; recorded as cancelled in {run_dir / 'result.json'} (a rerun resumes from its last checkpoint)", file=sys.stderr)
        sys.exit(128 + stop.signum)  # in a sweep too: the user stopped it, not this trial alone
    except ConfigError as err:  # nothing was written for it
        _remove_if_empty(run_dir)
        print(f"error: {err}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except OSError as err:  # a disk fault (full, read-only): recorded where possible by the trial
        print(f"error: {one_line(describe(err))}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(1)
    except Exception as err:  # a bug: recorded by the trial; one line (single run) or logged (sweep)
        if multirun:
            log.exception("trial failed: %s", run_dir)
            return None
        if show_tracebacks():
            raise
        print(f"error: {type(err).__name__}: {one_line(describe(err))} (recorded in {run_dir / 'result.json'}; "
              f"HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    finally:
        files.close()
