"""The gate before a trial: what to do with its run directory, decided read-only from the previous
`ResultRecord` (`decide`: start/resume, skip a finished run, refuse a finished run of another
config), and the check that ``lora-lab train ARGV`` is runnable at all (`check_command_line`).

This module imports no training code (`lora_lab.run.trial`, no model is built), so a bad command line
or a finished run is answered after composing the config only; `lora_lab.run.trial` runs the same `decide` again
under the run lock. Imports go ``train -> trial -> gate -> config``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Callable

from lora_lab.config.trial_config import TrialConfig, parse

from lora_lab.config.compose import compose, run_dir_of, schema_settable, unknown_group_choice
from lora_lab.errors import ConfigError, did_you_mean, one_line, show_tracebacks
from lora_lab.results.record import ResultRecord, UnknownSchema, read_record
from lora_lab.results.trial_identity import trial_identity
from lora_lab.tracking.settings import probe_trackers

log = logging.getLogger("lora_lab.gate")


#: `read_previous`'s status for a record of a schema_version this code cannot read
UNKNOWN_SCHEMA = "unknown-schema"


class RunDirTaken(ConfigError):
    """The run dir holds a finished result of another config; that result is never overwritten."""



def decide(previous: ResultRecord | None, identity: dict, force: bool, run_dir: Path) -> str:
    """``skip``, ``resume`` (from last.ckpt where there is one) or ``fresh``; `RunDirTaken` for a
    finished result of another config without ``force``. Reads nothing, writes nothing."""
    if previous is None:
        return "resume"
    if previous.status == UNKNOWN_SCHEMA:  # another lora_lab's record: neither finished nor ours to overwrite
        if force:
            return "fresh"
        raise RunDirTaken("run_name", f"{run_dir}/result.json: {previous.reason}; not overwritten (force=true replaces it)")
    same = trial_identity(previous.config) == identity
    if previous.finished:
        if force:
            return "fresh"
        if same:
            return "skip"
        raise RunDirTaken("run_name", f"{run_dir} already holds a finished result of a different config; give the run a distinct name (or force=true to replace it)")
    return "resume" if same else "fresh"


def read_previous(run_dir: Path) -> ResultRecord | None:
    """The run dir's record; an unreadable one counts as none of this trial (it never blocks), one
    of a schema_version this code cannot read as `UNKNOWN_SCHEMA` (`decide` refuses it)."""
    try:
        return read_record(run_dir)
    except UnknownSchema as err:
        return ResultRecord(status=UNKNOWN_SCHEMA, reason=str(err))
    except (OSError, ValueError) as err:
        log.warning("ignoring the unreadable %s/result.json (%s)", run_dir, err)
        return ResultRecord(status="failed", reason=f"unreadable: {err}")


def check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and a probe file in it (removed at once); one line naming the path and the
    cause (read-only filesystem, permission denied, no space) when that fails. Called only for a
    trial that is about to run there."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir, prefix=".probe"):
            pass
    except OSError as err:
        raise ConfigError("paths.runs_root", f"cannot write {err.filename or run_dir}: {err.strerror or err}") from None


def preflight(trial: TrialConfig, run_dir: Path) -> str:
    """What `run_in_dir` would do, decided read-only before Hydra creates anything."""
    action = decide(read_previous(run_dir), trial.identity, trial.force, run_dir)
    if action != "skip":
        probe_trackers(trial.resolved.get("logger"))  # a tracker server that is down: refused before anything loads
        check_writable(run_dir)
    return action


def hydra_flags() -> list[str] | None:
    """The flags Hydra's own command line accepts (``--multirun``, ``--cfg``, ...), read from its parser;
    None where this Hydra version keeps its parser elsewhere (Hydra's own check then answers)."""
    try:
        from hydra._internal.utils import get_args_parser

        return [flag for action in get_args_parser()._actions for flag in action.option_strings]
    except (ImportError, AttributeError):
        return None


def check_flags(argv: list[str]) -> None:
    """A flag Hydra does not know is one `ConfigError` line naming it and the flags allowed (Hydra's
    parser printed its usage block and ``train.py: error: unrecognized arguments``)."""
    flags = hydra_flags()
    if flags is None:
        return
    for arg in argv:
        if arg.startswith("-") and arg.split("=", 1)[0] not in flags:
            raise ConfigError("lora-lab train", f"unrecognized argument {arg!r}{did_you_mean(arg, flags)}; allowed: overrides "
                              f"key=value and Hydra's flags {', '.join(f for f in flags if f.startswith('--'))}")


def _single_run(argv: list[str]) -> bool:
    """Plain overrides (no ``--multirun``, ``--cfg``, ``--config-dir`` ...): one trial, checkable up front."""
    return all(not arg.startswith("-") for arg in argv)


def check_finished_results(trials) -> None:
    """Before any trial of a sweep runs: a planned trial whose run dir holds a finished result of
    another config (or another version's record) is the error its own start would raise (`decide`),
    raised here so that no other trial of the sweep has started (parallel workers would go on
    running after the sweep stopped)."""
    for trial in trials:
        run_dir = Path(trial.run_dir)
        if (run_dir / "result.json").is_file():
            decide(read_previous(run_dir), trial_identity(trial.config), bool(trial.config.get("force")), run_dir)


#: Hydra's command-line flags that take a value
_VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p")


def settable_argv(argv: list[str]) -> list[str]:
    """``lora-lab train ARGV`` with each ``group.key=value`` whose key the group option's YAML lacks
    but its schema has written ``++group.key=value`` (`lora_lab.config.compose.schema_settable`), so every
    schema key is settable without ``+``; flags (``--multirun``, ``--config-dir D``, ...) are kept."""
    positions, overrides, head, name = [], [], [], "train"
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_FLAGS and i + 1 < len(argv):
            if arg in ("--config-dir", "-cd"):
                head.append(f"hydra.searchpath=[file://{Path(argv[i + 1]).resolve()}]")
            elif arg in ("--config-name", "-cn"):
                name = argv[i + 1]
            i += 2
            continue
        if not arg.startswith("-"):
            positions.append(i)
            overrides.append(arg)
        i += 1
    out = list(argv)
    for i, item in zip(positions, schema_settable(head + overrides, name)[len(head):]):
        out[i] = item
    return out


def check_command_line(argv: list[str], check_sweep: Callable[[list[str]], object] | None = None) -> bool:
    """Every input error, a finished run and an unwritable runs root of ``lora-lab train ARGV``,
    answered before Hydra creates the run directory: False (after one ``already finished`` line)
    when there is nothing to run; a `ConfigError` is one ``error:`` line and exit status 2. A command
    line of several trials is checked by ``check_sweep`` (the sweep layer's
    `lora_lab.sweeps.multirun.check_multirun`, passed in by the entry points: this layer does not
    import the one above it)."""
    try:
        check_flags(argv)
        if _single_run(argv):
            cfg = compose(argv)
            run_dir = run_dir_of(cfg)
            if preflight(parse(cfg), run_dir) == "skip":
                print(f"already finished: {run_dir} (force=true reruns it)", file=sys.stderr)
                return False
        else:
            err = unknown_group_choice(argv)
            if err is not None:
                raise err
            if check_sweep is not None:
                check_sweep(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a fault while checking (an unreadable file, a library's error): one line
        if show_tracebacks():
            raise
        print(f"error: {type(err).__name__}: {one_line(err)} (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    return True
