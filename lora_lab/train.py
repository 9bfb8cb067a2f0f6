"""Training entry point: ``python -m lora_lab.train [overrides]`` or ``lora-lab train [overrides]``.

The Hydra wrapper only: configuration (`lora_lab.config`: compose, check, parse) then the trial
(`lora_lab.run.trial`: claim the run dir, build, fit, evaluate, record). One run = one deterministic run
directory (see `lora_lab.naming`) holding ``result.json``, ``adapter/``, ``checkpoints/last.ckpt`` and
``logs/metrics.csv``.

Input errors never touch a run directory: `cli_main` composes and checks the whole config before
Hydra creates anything, and prints one line ``error: <key>: ...`` (exit status 2); inside a multirun
the same check runs per trial and writes nothing either. Hydra's ``.hydra/`` files and ``train.log``
are written only once the trial owns its directory (`lora_lab.run.trial.run_in_dir`), so a refused rerun
leaves a finished run byte-identical. A SLURM timeout/preemption signal checkpoints, records the
stop and ends the process (exit status 128 + signal number) so the job can be requeued; a disk fault
is one line naming the path and the cause (exit status 1); any other failure is a bug: recorded in
``result.json`` as ``failed`` with its type and message and printed as one ``error:`` line (exit
status 1; the traceback with ``HYDRA_FULL_ERROR=1`` or ``LORA_LAB_DEBUG=1``; in a multirun sweep it
goes to the trial's log and the sweep goes on with the next trial). SIGTERM or Ctrl-C outside
training's safe points (model loading, the final evaluation) records ``cancelled``, resumable from the
last checkpoint, and exits with 128 + the signal number.

A finished run prints its summary (`lora_lab.run.console.print_summary`: status, best validation and test
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
from omegaconf import DictConfig

from lora_lab.config import CONF_DIR, container, parse
from lora_lab.run.console import print_summary, summary_text
from lora_lab.errors import ConfigError, one_line, show_tracebacks
from lora_lab.run.launch_ranks import check_local_ddp_sweep
from lora_lab.resume.signals import RunPreempted, RunStopped
from lora_lab.run.logs import setup_run_logging
from lora_lab.run.run_files import RunFiles
from lora_lab.sweeps.multirun import check_multirun
from lora_lab.sweeps.parent_watch import watch_sweep_process
from lora_lab.run.gate import check_command_line, settable_argv
from lora_lab.run.trial import describe, run_in_dir

log = logging.getLogger("lora_lab.train")


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None, on_start=None) -> dict:
    """Check ``cfg`` and run its trial in ``run_dir`` (in-process callers and tests); returns the record."""
    return run_in_dir(parse(cfg), run_dir, overrides, on_start)


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


def cli_main(argv: list[str] | None = None) -> None:
    """``python -m lora_lab.train`` / ``lora-lab train``: every input error, a finished run and an
    unwritable runs root are answered before Hydra creates the run directory (`lora_lab.run.gate`)."""
    if argv is None:  # every schema key settable as group.key=value, no `+` (Hydra reads sys.argv)
        sys.argv[1:] = argv = settable_argv(sys.argv[1:])
    if check_command_line(argv, check_sweep=check_multirun):
        main()


if __name__ == "__main__":
    cli_main()
