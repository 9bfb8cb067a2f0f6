"""Atomic file writes: a reader (or a resumed job) sees the old file or the new one, never half of one.

Every file a later process trusts (``result.json``, ``checkpoints/last.ckpt``, the adapter files) is
written through `atomic_write`: the bytes go to a temp file *in the same directory* (so the final
``os.replace`` is a rename within one filesystem, which POSIX makes atomic), the temp file is
fsynced, renamed over the target, and the directory is fsynced so the rename itself survives a node
crash. A process killed at any point (SIGKILL, OOM, node loss) leaves at most a stray
``.<name>.<random>.tmp`` file, which no reader looks at: readers open the final name only.

Why not ``fsspec``'s transaction (what Lightning's ``_atomic_save`` uses): it stages the file in the
system temp dir (``tempfile.mkstemp()``) and ``shutil.move``s it; where ``$TMPDIR`` and the run dir
are different filesystems (node-local /tmp vs a shared cluster filesystem, the usual case) the move
is a copy into the final path, which a kill can cut short, and nothing is fsynced.

``mkstemp`` creates the temp file owner-only (0600); before the rename it gets the mode a plain
``open()`` would give it (``0666 & ~umask``), so colleagues sharing a cluster filesystem can read
results exactly as the user's umask allows.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

TEMP_SUFFIX = ".tmp"


def file_mode() -> int:
    """``0666 & ~umask``: the mode ``open()`` gives a new file (the umask is read, then restored)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a binary temp file next to ``path``, then atomically move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fault = disk_fault(err, path)
        if fault is not None:
            raise fault from err
        raise
    fsync_dir(path.parent)
    return path


def disk_fault(err: BaseException, path: Path) -> OSError | None:
    """``err`` as an `OSError` naming ``path`` and the cause: an OS error without a file name, or a
    serialiser's error on a full disk (torch reports ENOSPC as ``unexpected pos 64 vs 0``)."""
    if isinstance(err, OSError) and err.errno is not None:
        return None if err.filename else OSError(err.errno, err.strerror, str(path))
    if isinstance(err, RuntimeError):
        try:
            stats = os.statvfs(path.parent)
        except OSError:
            return None
        if stats.f_bavail == 0:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


def atomic_write_via_path(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """For writers that take a file name (``safetensors.save_file``): ``write(temp_path)`` next to
    ``path``, then the same mode, fsync and rename as `atomic_write`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for the in-flight temp files `atomic_write` leaves behind when it is killed."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
