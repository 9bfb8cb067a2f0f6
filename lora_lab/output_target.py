"""Where a command may write a path the user named (``export OUT``, ``merge-adapters OUT``, ``report --out``).

One rule for every such command, checked before anything is read or written (`check_output_target`):

- never inside a directory the trials own: a run dir (it holds ``result.json`` or a ``.lock-rank*``
  file) or a sweep dir (``sweep_plan.json`` / ``multirun.yaml``), nor the directory itself, nor
  anything under it, whatever ``--overwrite`` says (``lora-lab export RUN RUN/adapter`` would replace
  the scored adapter with PEFT's files of the same names);
- never a directory that already holds files, unless ``--overwrite`` is given or the directory is
  this command's own previous output (it holds ``own_marker``: a report regenerates its
  ``results/<study>/``);
- never a path that exists as a file;
- never a directory one of the command's inputs lives in or under (``merge-adapters A A``).

Paths are compared as written and with symlinks resolved (a link to ``RUN/adapter`` is inside RUN).

A refusal is one `ConfigError` line (the CLI exits 2) naming the path and why; nothing was written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lora_lab.errors import ConfigError

#: files that make a directory a run dir or a sweep dir (``lora_lab.results.record`` names
#: ``result.json`` and ``sweep_plan.json``; `lora_lab.resume.lock` the ``.lock-rank*`` files; Hydra
#: writes ``multirun.yaml`` into a sweep dir)
OWNED_DIR_FILES = ("result.json", "sweep_plan.json", "multirun.yaml")
LOCK_PREFIX = ".lock-rank"


def owner_marker(directory: Path) -> str | None:
    """The file that makes ``directory`` a run or sweep dir, or None."""
    for name in OWNED_DIR_FILES:
        if (directory / name).is_file():
            return name
    try:
        for entry in os.scandir(directory):
            if entry.name.startswith(LOCK_PREFIX):
                return entry.name
    except OSError:
        pass
    return None


def owning_run_dir(path: Path) -> tuple[Path, str] | None:
    """The run or sweep dir ``path`` is, or lies under (its nearest one), with the marker file found."""
    for directory in (path, *path.parents):
        if directory.is_dir():
            marker = owner_marker(directory)
            if marker is not None:
                return directory, marker
    return None


def check_output_target(path: str | os.PathLike, overwrite: bool, key: str, *, own_marker: str | None = None,
                        inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``path`` (absolute) when a command may write there; else one `ConfigError` naming ``key``.

    ``key`` names the argument in the message (``export.out_dir``); ``inputs`` are the paths the
    command reads, which the output must not contain or be."""
    if str(path).strip() == "":
        raise ConfigError(key, "an empty path; give the directory to write")
    target = Path(os.path.abspath(os.path.expanduser(str(path))))
    real = Path(os.path.realpath(target))  # a symlink into a run dir is inside it
    owner = owning_run_dir(target) or owning_run_dir(real)
    if owner is not None:
        directory, marker = owner
        where = "is" if directory == target else f"lies inside {directory}, which is"
        raise ConfigError(key, f"{path} {where} a run or sweep directory (it holds {marker}); write the output outside the runs (even --overwrite never writes there)")
    for source in inputs:
        source_path = Path(os.path.realpath(os.path.expanduser(str(source))))
        if source_path == real or real in source_path.parents:
            raise ConfigError(key, f"{path} holds the input {source}; write the output to another directory")
    if target.exists() and not target.is_dir():
        raise ConfigError(key, f"{path} is an existing file, not a directory")
    if target.is_dir() and not overwrite and any(target.iterdir()):
        if own_marker is None or not (target / own_marker).is_file():
            raise ConfigError(key, f"{path} is not empty; choose a new directory or pass --overwrite to write into it")
    return target


def probe_writable(target: Path, key: str) -> Path:
    """That ``target`` can be created and written, tried where it would first be written (the
    directory itself, else its nearest existing ancestor) with a temp file removed at once, so a
    refusal leaves no empty directory behind: one `ConfigError` line naming the path and the cause
    (read-only filesystem, a file where a parent should be, no space) instead of a traceback
    halfway through the outputs."""
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    try:
        if existing is None or not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        with tempfile.TemporaryFile(dir=existing, prefix=".probe"):
            pass
    except OSError as err:
        raise ConfigError(key, f"cannot write {target}: {err.filename or existing}: {err.strerror or err}") from None
    return target


def prepare_output_dir(path: str | os.PathLike, overwrite: bool, key: str, *, own_marker: str | None = None,
                       inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """`check_output_target`, then `probe_writable`: the directory a command may write its outputs into
    (created by the writer; nothing is created here)."""
    return probe_writable(check_output_target(path, overwrite, key, own_marker=own_marker, inputs=inputs), key)
