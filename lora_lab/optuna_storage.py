"""Where an Optuna study lives: the storage URL a study is given and the Optuna storage it opens.

Three kinds (``hydra.sweeper.storage``, or ``storage=`` on ``lora-lab sweep``):

- unset: ``sqlite:///<sweep dir>/optuna.db``, one SQLite file per study on this machine's disk;
- ``journal`` (the file ``<sweep dir>/optuna.journal``) or ``journal:<path>``: Optuna's
  ``JournalStorage`` on a ``JournalFileBackend``, an append-only log whose writes are serialised by a
  lock file. It needs no server and is built for a filesystem shared by many hosts (NFS, Lustre),
  where SQLite's own locking is unreliable: the storage for studies shared by SLURM jobs;
- any SQLAlchemy URL (``postgresql://...``, ``mysql://...``): an RDB server shared by every job.
"""

from __future__ import annotations

import os
from pathlib import Path

SQLITE_NAME = "optuna.db"
JOURNAL_NAME = "optuna.journal"
JOURNAL_PREFIX = "journal:"


def storage_url(storage, sweep_dir: str | os.PathLike) -> str:
    """The URL of ``storage`` as configured (None: the per-study SQLite file; ``journal``: the
    per-study journal file), paths made absolute."""
    storage = None if storage is None else str(storage)
    if not storage:
        return f"sqlite:///{Path(sweep_dir).resolve() / SQLITE_NAME}"
    if storage == "journal":
        return f"{JOURNAL_PREFIX}{Path(sweep_dir).resolve() / JOURNAL_NAME}"
    if storage.startswith(JOURNAL_PREFIX):
        return f"{JOURNAL_PREFIX}{Path(storage[len(JOURNAL_PREFIX):]).expanduser().resolve()}"
    return storage


def journal_path(url: str) -> Path | None:
    return Path(url[len(JOURNAL_PREFIX):]) if url.startswith(JOURNAL_PREFIX) else None


def open_storage(url: str):
    """What ``optuna.create_study(storage=...)`` takes: a ``JournalStorage`` for a journal URL (its
    directory created), else the URL itself (Optuna opens an ``RDBStorage``)."""
    path = journal_path(url)
    if path is None:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def storage_file(url: str) -> Path | None:
    """The file of a SQLite or journal storage (None for an RDB server)."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else journal_path(url)


def exists(url: str) -> bool:
    """Whether a dry run may read the storage: an existing SQLite or journal file (reading creates
    neither; an RDB server is not contacted)."""
    path = storage_file(url)
    return path is not None and path.is_file()


def find_storages(paths) -> list[str]:
    """The URLs of every per-study storage file (``optuna.db``, ``optuna.journal``) under ``paths``."""
    found = set()
    for path in map(Path, paths):
        for name, prefix in ((SQLITE_NAME, "sqlite:///"), (JOURNAL_NAME, JOURNAL_PREFIX)):
            files = [path] if path.is_file() and path.name == name else (path.rglob(name) if path.is_dir() else [])
            found.update(f"{prefix}{f.resolve()}" for f in files)
    return sorted(found)
