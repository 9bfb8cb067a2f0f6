"""Bring your own data: the rows of local CSV, TSV, JSON, JSONL or Parquet files, or of a Hub dataset.

`UserDataConfig` holds the knobs the ``text_classification`` and ``text_generation`` kinds share:
``data_files`` (one file per split: ``train`` and ``val`` required, ``test`` optional; relative paths
are read from ``data_dir`` when it is set, else from the working directory), ``format`` (null: from
each file's suffix) or, with no files, ``hub_dataset`` (+ ``hub_config``, ``hub_revision``,
``hub_splits``: our split name -> the dataset's) through `datasets`.

Every problem with the data ends in one `ConfigError` line that names the key, the file and the row:
a missing file, an unknown format, a file that does not parse, a missing column, a bad row (too few or
too many CSV fields, a row that is not a JSON object, an empty or non-text cell), an empty split. Rows
are named by their line in CSV/TSV/JSONL files (the header is line 1) and by their 1-based record
number in JSON and Parquet files and Hub splits.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow
import pyarrow.parquet

from lora_lab.errors import ConfigError
from lora_lab.strict_read import AmbiguousInput, check_header, loads_json
from lora_lab.tasks.base import TaskConfig

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")


@dataclass(frozen=True)
class Row:
    """One row of a split: where it is (``<file>: line 3``) and its cells by column name."""

    where: str
    cells: dict

    def error(self, message: str, key: str) -> ConfigError:
        return ConfigError(key, f"{self.where}: {message}")

    def text(self, column: str, key: str) -> str:
        """The cell as non-empty text (numbers are refused: a text column holding them is likely a mix-up)."""
        value = self.cells.get(column)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"column {column!r} must hold non-empty text, got {value!r}", key)
        return value


def _csv_rows(path: Path, delimiter: str, key: str) -> Iterator[Row]:
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = reader.fieldnames or []
            try:
                check_header(header)
            except AmbiguousInput as err:
                raise ConfigError(key, f"{path}: line 1: {err}") from None
            for cells in reader:
                where = f"{path}: line {reader.line_num}"
                if None in cells:
                    raise ConfigError(key, f"{where}: {len(header) + len(cells[None])} fields, the header has {len(header)}")
                if any(v is None for v in cells.values()):
                    raise ConfigError(key, f"{where}: {sum(v is not None for v in cells.values())} fields, the header has {len(header)}")
                yield Row(where, cells)
    except UnicodeDecodeError as err:
        raise ConfigError(key, f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise ConfigError(key, f"{path}: {err}") from None


def _jsonl_rows(path: Path, key: str) -> Iterator[Row]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            try:
                cells = loads_json(line)
            except json.JSONDecodeError as err:
                raise ConfigError(key, f"{where}: not valid JSON ({err.msg})") from None
            except AmbiguousInput as err:
                raise ConfigError(key, f"{where}: {err}") from None
            if not isinstance(cells, dict):
                raise ConfigError(key, f"{where}: not a JSON object")
            yield Row(where, cells)


def _json_rows(path: Path, key: str) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8")
    try:
        records = loads_json(text)
    except json.JSONDecodeError as err:
        raise ConfigError(key, f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except AmbiguousInput as err:
        raise ConfigError(key, f"{path}: line {_repeated_key_line(text, err)}: {err}") from None
    if not isinstance(records, list):
        raise ConfigError(key, f"{path}: must hold a JSON list of objects (one per row), got a {type(records).__name__}")
    for i, cells in enumerate(records, 1):
        if not isinstance(cells, dict):
            raise ConfigError(key, f"{path}: record {i}: not a JSON object")
        yield Row(f"{path}: record {i}", cells)


def _repeated_key_line(text: str, err: AmbiguousInput) -> int:
    """The line of a JSON document where the object holding the repeated key closes: the hook runs
    when an object closes, so the shortest prefix of lines that fails the same way ends there (a
    shorter one is cut mid-document); found by bisection over the lines."""
    lines = text.splitlines(keepends=True)
    lo, hi = 1, len(lines)
    while lo < hi:
        mid = (lo + hi) // 2
        prefix = "".join(lines[:mid])
        try:
            loads_json(prefix)
            failed = False
        except AmbiguousInput as inner:
            failed = str(inner) == str(err)
        except json.JSONDecodeError:  # cut before the object closed
            failed = False
        if failed:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _parquet_rows(path: Path, key: str) -> Iterator[Row]:
    try:
        check_header(pyarrow.parquet.read_schema(path).names)
        table = pyarrow.parquet.read_table(path)
    except AmbiguousInput as err:
        raise ConfigError(key, f"{path}: {err}") from None
    except pyarrow.ArrowException as err:
        raise ConfigError(key, f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    for i, cells in enumerate(table.to_pylist(), 1):
        yield Row(f"{path}: record {i}", cells)


def file_rows(path: Path, fmt: str, key: str) -> Iterator[Row]:
    """The rows of one file in format ``fmt`` (one of `FORMATS`' values)."""
    if not path.is_file():
        raise ConfigError(key, f"{path} does not exist")
    if fmt in ("csv", "tsv"):
        return _csv_rows(path, "," if fmt == "csv" else "\t", key)
    if fmt == "jsonl":
        return _jsonl_rows(path, key)
    if fmt == "json":
        return _json_rows(path, key)
    return _parquet_rows(path, key)


def hub_rows(name: str, config: str | None, revision: str | None, split: str, key: str) -> Iterator[Row]:
    """The rows of one split of a Hub dataset (network or a warm cache); not exercised offline."""
    import datasets  # here, not at the top: it adds seconds to every start and only the Hub path needs it

    try:
        part = datasets.load_dataset(name, config, revision=revision, split=split)
    except Exception as err:  # network, cache, unknown split: one line, with the dataset's own reason
        raise ConfigError(key, f"cannot load split {split!r} of {name!r} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    for i, cells in enumerate(part, 1):
        yield Row(f"{name}[{split}]: record {i}", cells)


@dataclass
class UserDataConfig(TaskConfig):
    """Where a bring-your-own-data task reads its rows (see the module docstring)."""

    data_dir: str | None = None
    data_files: dict = field(default_factory=dict)
    format: str | None = None
    hub_dataset: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    hub_splits: dict = field(default_factory=lambda: {"train": "train", "val": "validation", "test": "test"})

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.data_files, dict):
            raise ConfigError("task.data_files", f"must map split names ({', '.join(SPLITS)}) to files, got {self.data_files!r}")
        unknown = [s for s in self.data_files if s not in SPLITS]
        if unknown:
            raise ConfigError(f"task.data_files.{unknown[0]}", f"unknown split; allowed: {', '.join(SPLITS)}")
        if self.format is not None and self.format not in FORMATS.values():
            raise ConfigError("task.format", f"unknown format {self.format!r}; allowed: {', '.join(FORMATS.values())} (null: from the file suffix)")
        if self.files:
            for split in REQUIRED_SPLITS:
                if not self.files.get(split):
                    raise ConfigError(f"task.data_files.{split}", f"is required (a {', '.join(FORMATS.values())} file)")
            for split, path in self.files.items():
                self.file_format(split, path)
                if not path.is_file():
                    raise ConfigError(f"task.data_files.{split}", f"{path} does not exist")
        elif self.hub_dataset:
            if not isinstance(self.hub_splits, dict) or any(not self.hub_splits.get(s) for s in REQUIRED_SPLITS):
                raise ConfigError("task.hub_splits", f"must name the dataset's train and val splits, got {self.hub_splits!r}")
        else:
            raise ConfigError("task.data_files.train", "is required: set task.data_files.train/val (and optionally test) to local files, or task.hub_dataset")

    @property
    def files(self) -> dict[str, Path]:
        """Split -> path of the split's file (relative paths read from ``data_dir``)."""
        root = Path(os.path.expanduser(self.data_dir)) if self.data_dir else None
        out = {}
        for split in SPLITS:
            value = self.data_files.get(split)
            if value:
                path = Path(os.path.expanduser(str(value)))
                out[split] = root / path if root is not None and not path.is_absolute() else path
        return out

    def file_format(self, split: str, path: Path) -> str:
        if self.format is not None:
            return self.format
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(f"task.data_files.{split}", f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
                              f"use one of {', '.join(FORMATS)} or set task.format")
        return fmt

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this task has, in ``train, val, test`` order."""
        if self.files:
            return tuple(s for s in SPLITS if s in self.files)
        return tuple(s for s in SPLITS if self.hub_splits.get(s))

    @property
    def data_is_local(self) -> bool:
        return bool(self.files)

    def split_rows(self, split: str, columns: list[str]) -> list[Row]:
        """Every row of ``split``, each checked to have ``columns``; an empty split is an error."""
        key = f"task.data_files.{split}" if self.files else "task.hub_dataset"
        if self.files:
            path = self.files[split]
            rows, source = file_rows(path, self.file_format(split, path), key), str(path)
        else:
            rows = hub_rows(self.hub_dataset, self.hub_config, self.hub_revision, self.hub_splits[split], key)
            source = f"{self.hub_dataset}[{self.hub_splits[split]}]"
        out = []
        for row in rows:
            missing = [c for c in columns if c not in row.cells]
            if missing:
                raise row.error(f"no column {missing[0]!r}; the row has {sorted(row.cells)} (set task.*_column)", key)
            out.append(row)
        if not out:
            raise ConfigError(key, f"{source}: no rows (the {split} split is empty)")
        return out


def as_number(row: Row, column: str, key: str) -> float:
    """The cell as a finite float (regression targets)."""
    value = row.cells[column]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise row.error(f"column {column!r} must hold a finite number, got {value!r}", key)
    return number
