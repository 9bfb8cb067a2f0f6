"""Training entry point: ``python -m lora_lab.train [overrides]`` or ``lora-lab train [overrides]``.

The Hydra wrapper only: configuration (`lora_lab.config.trial_config`: compose, check, parse) then the trial
(`lora_lab.run.trial`: claim the run dir, build, fit, evaluate, record). One run = one deterministic run
directory (see `lora_lab.config.naming`) holding ``result.json``, ``adapter/``, ``checkpoints/last.ckpt`` and
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

import os
import sys

from omegaconf import DictConfig

from lora_lab.run.gate import check_command_line, settable_argv
from lora_lab.sweeps.multirun import check_multirun


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None, on_start=None) -> dict:
    """Check ``cfg`` and run its trial in ``run_dir`` (in-process callers and tests); returns the record."""
    from lora_lab.config.trial_config import parse
    from lora_lab.run.trial import run_in_dir

    return run_in_dir(parse(cfg), run_dir, overrides, on_start)


def cli_main(argv: list[str] | None = None) -> None:
    """``python -m lora_lab.train`` / ``lora-lab train``: every input error, a finished run and an
    unwritable runs root are answered before Hydra creates the run directory (`lora_lab.run.gate`),
    and before the trial code is imported, so a refused command costs a config compose. ``argv``
    (default ``sys.argv[1:]``) is checked and handed to Hydra, which reads ``sys.argv``, in the same
    settable form: every schema key as ``group.key=value``, no `+`."""
    sys.argv[1:] = argv = settable_argv(sys.argv[1:] if argv is None else list(argv))
    if check_command_line(argv, check_sweep=check_multirun):
        from lora_lab.run.hydra_task import main

        main()


if __name__ == "__main__":
    cli_main()
