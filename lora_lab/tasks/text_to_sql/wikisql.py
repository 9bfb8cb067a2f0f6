"""WikiSQL (Zhong et al. 2017): tables, logical forms, SQL rendering, prompts, and loading.

A WikiSQL question is answered by one logical form over one table: a selected column ``sel``, an
aggregation ``agg`` (index into `AGG_OPS`) and a conjunction of conditions ``conds`` =
``[[column, op, value], ...]`` (``op`` indexes `COND_OPS`). We render it as SQLite text over a table
named ``t`` whose columns are the (de-duplicated) header names, always double-quoted::

    {"sel": 3, "agg": 1, "conds": [[5, 0, "Butler CC (KS)"], [2, 1, 1990]]}
    -> SELECT MAX("Pick") FROM t WHERE "School" = 'Butler CC (KS)' AND "Year" > 1990

Values in ``real`` columns are rendered as numbers where they parse as numbers, everything else as
single-quoted strings (quotes doubled). The prompt carries an instruction, the header with column
types, optionally the first ``rows`` table rows, and the question; it ends with ``SQL:``.

Data comes from the original layout (``<data_dir>/{train,dev,test}.jsonl`` with
``{train,dev,test}.tables.jsonl``; splits are renamed ``train``/``val``/``test``) or from the Hub
through `datasets` (``wikisql``; its loading script may not run with recent `datasets`, so the local
layout and the synthetic generator are the tested paths).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_lab.errors import ConfigError
from lora_lab.strict_read import AmbiguousInput, loads_json

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS = ("=", ">", "<", "OP")  # "OP" is a placeholder in the original release, never used
TABLE_NAME = "t"
LOCAL_SPLITS = {"train": "train", "val": "dev", "test": "test"}  # our split name -> file stem


@dataclass(frozen=True)
class Table:
    """One WikiSQL table. ``types`` are ``"text"`` or ``"real"``; rows hold raw cell values."""

    id: str
    header: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __post_init__(self):
        if len(self.header) != len(self.types):
            raise ValueError(f"table {self.id}: {len(self.header)} header names but {len(self.types)} types")

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names as used in SQL: the header, made non-empty and unique (``Name``, ``Name_2``)."""
        return unique_columns(self.header)


@dataclass(frozen=True)
class LogicalForm:
    """``SELECT agg(sel) WHERE conds``; conds are ``(column, op, value)`` triples."""

    sel: int
    agg: int
    conds: tuple[tuple[int, int, Any], ...] = ()

    @classmethod
    def from_json(cls, sql: dict) -> "LogicalForm":
        return cls(int(sql["sel"]), int(sql["agg"]), tuple((int(c), int(o), v) for c, o, v in sql.get("conds", [])))


@dataclass(frozen=True)
class SqlExample:
    question: str
    table: Table
    sql: LogicalForm

    @property
    def gold_sql(self) -> str:
        return render_sql(self.sql, self.table)


def unique_columns(header) -> tuple[str, ...]:
    out: list[str] = []
    for i, name in enumerate(header):
        name = " ".join(str(name).split()) or f"col{i}"
        base, k = name, 2
        while name.lower() in (o.lower() for o in out):
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return tuple(out)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def as_number(value) -> float | int | None:
    """The number a cell or condition value denotes (``"1,200"`` is not one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    if isinstance(number, float):
        if not math.isfinite(number):
            return None
        if number.is_integer() and abs(number) < 2**53:
            return int(number)
    return number


def render_value(value, column_type: str) -> str:
    number = as_number(value) if column_type == "real" else None
    if number is not None:
        return repr(number)
    return "'" + str(value).replace("'", "''") + "'"


def render_sql(lf: LogicalForm, table: Table) -> str:
    """SQLite text of a logical form over `TABLE_NAME` (see the module docstring)."""
    cols = table.columns
    if not 0 <= lf.sel < len(cols):
        raise ValueError(f"table {table.id}: sel {lf.sel} out of range for {len(cols)} columns")
    if not 0 <= lf.agg < len(AGG_OPS):
        raise ValueError(f"agg {lf.agg} out of range; allowed 0..{len(AGG_OPS) - 1}")
    column = quote_identifier(cols[lf.sel])
    select = f"{AGG_OPS[lf.agg]}({column})" if lf.agg else column
    parts = []
    for col, op, value in lf.conds:
        if not 0 <= col < len(cols) or not 0 <= op < 3:
            raise ValueError(f"table {table.id}: bad condition {[col, op, value]!r}")
        parts.append(f"{quote_identifier(cols[col])} {COND_OPS[op]} {render_value(value, table.types[col])}")
    where = f" WHERE {' AND '.join(parts)}" if parts else ""
    return f"SELECT {select} FROM {TABLE_NAME}{where}"


def _cell(value) -> str:
    return " ".join(str(value).split())


def render_prompt(question: str, table: Table, rows: int = 0) -> str:
    """The model input: instruction, columns with types, optionally ``rows`` table rows, question."""
    columns = " | ".join(f"{quote_identifier(c)} ({ty})" for c, ty in zip(table.columns, table.types))
    lines = [f"Write one SQLite query over table {TABLE_NAME} that answers the question.", f"Columns: {columns}"]
    lines += [f"Row: {' | '.join(_cell(v) for v in row)}" for row in table.rows[:rows]]
    lines += [f"Question: {' '.join(question.split())}", "SQL:"]
    return "\n".join(lines)


# ----- loading -------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(loads_json(line))
            except json.JSONDecodeError as err:
                raise ConfigError("task.data_dir", f"{path}:{lineno} is not valid JSON ({err.msg})") from None
            except AmbiguousInput as err:
                raise ConfigError("task.data_dir", f"{path}:{lineno}: {err}") from None
    return out


def table_from_json(record: dict) -> Table:
    header = tuple(record["header"])
    types = tuple(record.get("types") or ["text"] * len(header))
    return Table(str(record["id"]), header, types, tuple(tuple(r) for r in record.get("rows", [])))


def load_wikisql_split(questions: str | os.PathLike, tables: str | os.PathLike) -> list[SqlExample]:
    """One split in the original layout: a questions file and its ``*.tables.jsonl``."""
    questions, tables = Path(questions), Path(tables)
    for path in (questions, tables):
        if not path.is_file():
            raise ConfigError("task.data_dir", f"missing file {path} (original WikiSQL layout: <split>.jsonl + <split>.tables.jsonl)")
    by_id = {}
    for i, record in enumerate(_read_jsonl(tables), 1):
        try:
            table = table_from_json(record)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError("task.data_dir", f"{tables}:{i}: bad table record ({err})") from None
        by_id[table.id] = table
    out = []
    for i, record in enumerate(_read_jsonl(questions), 1):
        try:
            table = by_id[str(record["table_id"])]
            example = SqlExample(str(record["question"]), table, LogicalForm.from_json(record["sql"]))
            render_sql(example.sql, table)  # fail here, naming the line, not during training
        except KeyError as err:
            raise ConfigError("task.data_dir", f"{questions}:{i}: missing {err} (table ids come from {tables.name})") from None
        except (TypeError, ValueError) as err:
            raise ConfigError("task.data_dir", f"{questions}:{i}: bad example ({err})") from None
        out.append(example)
    return out


def load_wikisql_local(data_dir: str | os.PathLike) -> dict[str, list[SqlExample]]:
    """``train``/``val``/``test`` from ``<data_dir>/{train,dev,test}.jsonl`` (+ ``.tables.jsonl``);
    ``train`` and ``dev`` are required, ``test`` is optional."""
    root = Path(os.path.expanduser(str(data_dir)))
    if not root.is_dir():
        raise ConfigError("task.data_dir", f"{root} is not a directory")
    out = {}
    for split, stem in LOCAL_SPLITS.items():
        if split == "test" and not (root / f"{stem}.jsonl").is_file():
            continue
        out[split] = load_wikisql_split(root / f"{stem}.jsonl", root / f"{stem}.tables.jsonl")
    return out


def example_from_hub(record: dict) -> SqlExample:
    """One record of the Hub ``wikisql`` dataset (conditions as parallel lists, values as strings)."""
    t = record["table"]
    table = Table(str(t["id"]), tuple(t["header"]), tuple(t["types"]), tuple(tuple(r) for r in t["rows"]))
    c = record["sql"]["conds"]
    conds = tuple(zip(map(int, c["column_index"]), map(int, c["operator_index"]), c["condition"]))
    return SqlExample(record["question"], table, LogicalForm(int(record["sql"]["sel"]), int(record["sql"]["agg"]), conds))


def load_wikisql_hub(name: str = "wikisql", revision: str | None = None) -> dict[str, list[SqlExample]]:
    try:
        import datasets

        ds = datasets.load_dataset(name, revision=revision)
    except Exception as err:  # network, cache or loading-script failures all mean "use data_dir"
        raise ConfigError("task.hub_dataset", f"cannot load {name!r} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                          "set task.data_dir to a local copy in the original layout") from None
    names = {"train": "train", "val": "validation", "test": "test"}
    return {ours: [example_from_hub(r) for r in ds[theirs]] for ours, theirs in names.items() if theirs in ds}
