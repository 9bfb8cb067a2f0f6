"""An Optuna study's settings, checked when it is planned (dry run and real sweep alike), before any
trial runs or any file is written: each problem is one `ConfigError` line.

- `check_sweeper_numbers`: ``n_trials`` and ``n_jobs`` are integers >= 1 (``0``, ``-1``, ``abc``,
  ``true`` refused), ``direction`` is ``auto``, ``maximize`` or ``minimize``;
- `check_storage`: the storage is a journal file (``journal:<path>``, `lora_lab.optuna_storage`: its
  directory can be created and written, for the real sweep) or a database URL
  (``dialect[+driver]://...``) of a SQLAlchemy dialect;
  a SQLite file that exists is a SQLite database (a truncated or foreign file is refused, never
  overwritten); for the real sweep also: the database driver is installed and the SQLite directory
  can be created and written (a dry run writes nothing and may plan on a machine without the driver);
- `search_key_collision`: every searched key changes the trial's run directory. Otherwise two
  sampled trials that differ only in that key share one run dir, and the second one finds "a
  finished result of a different config" (the dry run used to miss this; the sweep then failed).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.optuna_storage import journal_path

DIRECTIONS = ("auto", "maximize", "minimize")
STORAGE_FORMS = ("sqlite:///path/to/optuna.db, journal (<sweep dir>/optuna.journal), journal:/shared/path/study.journal, "
                 "postgresql://user@host/db, mysql+pymysql://user@host/db (or null: <sweep dir>/optuna.db)")


def _positive_int(key: str, value) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if not ok and isinstance(value, str) and value.strip().isdigit():
        ok, value = int(value) >= 1, int(value)
    if not ok:
        raise ConfigError(key, f"must be an integer >= 1, got {value!r}")
    return int(value)


def check_sweeper_numbers(sweeper: dict) -> None:
    _positive_int("hydra.sweeper.n_trials", sweeper.get("n_trials"))
    _positive_int("hydra.sweeper.n_jobs", sweeper.get("n_jobs", 1))
    direction = sweeper.get("direction", "auto")
    if direction not in DIRECTIONS:
        raise ConfigError("hydra.sweeper.direction", f"{direction!r}; allowed: {', '.join(DIRECTIONS)}")


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for ``:memory:`` / an empty path)."""
    rest = url.split("://", 1)[1]
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _check_sqlite_file(path: Path, write: bool) -> None:
    key = "hydra.sweeper.storage"
    if path.exists():
        if not path.is_file():
            raise ConfigError(key, f"{path} is not a file")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as err:
            raise ConfigError(key, f"{path} is not a readable SQLite database ({err}); it is left as it is: move it away or name another storage") from None
        return
    directory = path.parent
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ConfigError(key, f"cannot create {path}: {existing} is not a directory")
    if write:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise ConfigError(key, f"cannot write {err.filename or directory}: {err.strerror or err}") from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, f"cannot write {existing}: permission denied")


def check_storage(url: str, write: bool) -> None:
    """The storage URL a study will open (see the module docstring); ``write`` (the real sweep): also
    import the driver and probe the SQLite directory by creating it and a file in it."""
    key = "hydra.sweeper.storage"
    journal = journal_path(url) if isinstance(url, str) else None
    if journal is not None:
        if write:
            try:
                journal.parent.mkdir(parents=True, exist_ok=True)
                with open(journal, "a"):
                    pass
            except OSError as err:
                raise ConfigError(key, f"cannot write {journal}: {err.strerror or err}") from None
        return
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(key, f"{url!r} is not a database URL; allowed: {STORAGE_FORMS}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise ConfigError(key, f"{url!r}: {err}; allowed: {STORAGE_FORMS}") from None
    if write:  # a dry run may plan on a machine (a login node) without the driver the sweep's will have
        try:
            (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
        except ImportError as err:
            raise ConfigError(key, f"{url!r}: the database driver is not installed ({err}); install it or use sqlite:///") from None
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        if path is not None:
            _check_sqlite_file(path, write)


def search_key_collision(base_run_dir: str, probes: list[tuple[str, object, object, str]]) -> ConfigError | None:
    """``probes``: (searched key, the base point's value, another value, the run dir with only that
    key changed). The first key whose change leaves the run dir as it was, as one line."""
    for key, value, other, run_dir in probes:
        if run_dir == base_run_dir:
            return ConfigError(
                f"hydra.sweeper.params.{key}",
                f"searched, but not part of the run dir ({key}={value} and {key}={other} both run in {run_dir}): two sampled trials "
                f"would share one run dir; put it into run_suffix (e.g. run_suffix=-{key.rsplit('.', 1)[-1]}${{{key}}}) or run_name",
            )
    return None
