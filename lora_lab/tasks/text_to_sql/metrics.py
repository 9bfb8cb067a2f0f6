"""Execution accuracy and logical-form match for generated SQL, safe against untrusted text.

Each example's table is built in its own in-memory SQLite database (table ``t``; ``real`` columns
with REAL affinity, ``text`` columns with TEXT affinity and ``COLLATE NOCASE``, mirroring WikiSQL's
case-insensitive string conditions). Gold and predicted SQL run there; a prediction is correct when
its result equals the gold result as a multiset of rows (numbers compared as floats rounded to 9
significant digits; row order is not part of a WikiSQL answer).

Predicted SQL is untrusted model output. A double-quoted name that is no column is refused (SQLite
would silently read it as a string). It runs only if it is a single ``SELECT`` statement
(`statement_problem`: one optional trailing ``;``, no other ``;`` outside quotes, a complete
statement); the connection is ``PRAGMA query_only``, an authorizer allows nothing but reading and
the functions in `ALLOWED_FUNCTIONS` (no DDL/DML, ``ATTACH``, ``PRAGMA``, no ``printf``/``zeroblob``), statement length and result size are capped, every
string a statement builds is capped (`MIN_VALUE_CHARS`, so no single function call is slow), and a
progress handler stops any statement after ``timeout_s``. Every failure (refused, syntax error,
runtime error, time-out) counts as wrong and is tallied by reason; none of them escapes.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass

import torch
from torchmetrics import Metric

from lora_lab.tasks.text_to_sql.sql_parse import logical_form_match
from lora_lab.tasks.text_to_sql.wikisql import TABLE_NAME, SqlExample, Table, quote_identifier

MAX_SQL_CHARS = 4000
MAX_ROWS = 10_000
#: longest string or blob a statement may build (at least the table's longest cell). The progress
#: handler runs only between SQLite instructions, and one ``instr`` over two strings of length L
#: costs O(L^2): at SQLite's default limit (1e9) or even 1e6, a single call built with ``||`` runs
#: for tens of seconds; at 2e4 it is milliseconds, so ``timeout_s`` holds for any predicted SQL.
MIN_VALUE_CHARS = 20_000
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


def statement_problem(sql: str) -> str | None:
    """Why ``sql`` may not run (None when it is one complete SELECT statement)."""
    text = sql.strip()
    if not text:
        return "empty"
    if len(text) > MAX_SQL_CHARS:
        return "too long"
    if "\x00" in text:
        return "null character"
    if text.endswith(";"):
        text = text[:-1].rstrip()
    quote = None
    for ch in text:  # a ';' outside quotes means a second statement
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`[":
            quote = "]" if ch == "[" else ch
        elif ch == ";":
            return "more than one statement"
    if not sqlite3.complete_statement(text + ";"):
        return "incomplete statement"
    if not text[:6].upper() == "SELECT" or (len(text) > 6 and (text[6].isalnum() or text[6] == "_")):
        return "not a SELECT"
    return None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(name: str) -> str:
    """SQLite folds only ASCII letters when it matches identifiers."""
    return name.translate(_ASCII_LOWER)


def unknown_identifier(sql: str, table: Table) -> str | None:
    """The first double-quoted name in ``sql`` that is neither a column nor the table, else None.

    SQLite reads a double-quoted name that matches no column as a *string literal*
    (``COUNT("Tema")`` counts rows), so a misspelt column could execute "correctly"; such SQL is
    refused instead. Single-quoted literals are skipped."""
    known = {_ascii_lower(c) for c in table.columns} | {TABLE_NAME}
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            j = i + 1
            while j < n and not (sql[j] == ch and not (j + 1 < n and sql[j + 1] == ch)):
                j += 2 if sql[j] == ch else 1
            if ch == '"':
                name = sql[i + 1 : j].replace('""', '"')
                if _ascii_lower(name) not in known:
                    return name
            i = j + 1
        else:
            i += 1
    return None


#: SQL functions a WikiSQL-style query may call. Others are refused: the progress handler runs only
#: between SQLite instructions, so one slow built-in call (``printf('%.*c', 1e9, 'x')``,
#: ``zeroblob``, ``randomblob``) could outlast ``timeout_s``.
ALLOWED_FUNCTIONS = frozenset({
    "count", "sum", "avg", "min", "max", "total", "abs", "round", "lower", "upper", "length", "trim", "ltrim",
    "rtrim", "coalesce", "ifnull", "nullif", "like", "glob", "instr", "substr", "substring", "typeof",
})


def _authorizer(action, arg1=None, arg2=None, *_):
    if action == sqlite3.SQLITE_FUNCTION:  # arg2 is the function's name
        return sqlite3.SQLITE_OK if str(arg2).lower() in ALLOWED_FUNCTIONS else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def build_database(table: Table) -> sqlite3.Connection:
    """A read-only in-memory database holding ``table`` as `TABLE_NAME`."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    cols = ", ".join(
        f"{quote_identifier(c)} {'REAL' if ty == 'real' else 'TEXT COLLATE NOCASE'}" for c, ty in zip(table.columns, table.types)
    )
    conn.execute(f"CREATE TABLE {TABLE_NAME} ({cols})")
    width = len(table.columns)
    rows = [tuple(_cell(v) for v in (list(r) + [None] * width)[:width]) for r in table.rows]
    if rows:
        conn.executemany(f"INSERT INTO {TABLE_NAME} VALUES ({', '.join('?' * width)})", rows)
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(_authorizer)
    longest = max((len(str(v)) for r in rows for v in r if v is not None), default=0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(MIN_VALUE_CHARS, longest + 1))
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 2)
    return conn


def _cell(value):
    if value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return str(value)


@dataclass
class ExecResult:
    rows: Counter | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _norm(value):
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.9g}")
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value) if abs(value) < 2**53 else value
    if isinstance(value, bytes):
        return value.hex()
    return value


def execute(conn: sqlite3.Connection, sql: str, timeout_s: float = 1.0) -> ExecResult:
    """Run untrusted ``sql`` under every guard above; never raises for bad SQL."""
    problem = statement_problem(sql)
    if problem:
        return ExecResult(None, f"refused: {problem}")
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        cursor = conn.execute(sql.strip())
        rows = cursor.fetchmany(MAX_ROWS + 1)
        if len(rows) > MAX_ROWS:
            return ExecResult(None, "too many rows")
        return ExecResult(Counter(tuple(_norm(v) for v in row) for row in rows))
    except sqlite3.Error as err:
        message = str(err)
        return ExecResult(None, "timeout" if "interrupted" in message else f"{type(err).__name__}: {message}")
    except Exception as err:  # e.g. OverflowError, MemoryError, ValueError from the driver
        return ExecResult(None, f"{type(err).__name__}: {err}")
    finally:
        conn.set_progress_handler(None, 1000)


@dataclass
class Judgement:
    exec_correct: bool
    lf_correct: bool
    pred_error: str | None
    gold_error: str | None


def judge(predicted_sql: str, example: SqlExample, timeout_s: float = 1.0) -> Judgement:
    """Execution and logical-form correctness of one prediction."""
    conn = build_database(example.table)
    try:
        gold = execute(conn, example.gold_sql, timeout_s)
        unknown = unknown_identifier(predicted_sql, example.table)
        pred = ExecResult(None, f"refused: unknown column {unknown!r}") if unknown is not None else execute(conn, predicted_sql, timeout_s)
    finally:
        conn.close()
    exec_ok = gold.ok and pred.ok and pred.rows == gold.rows
    return Judgement(exec_ok, logical_form_match(predicted_sql, example.sql, example.table), pred.error, gold.error)


def execution_accuracy(predictions: list[str], examples: list[SqlExample], timeout_s: float = 1.0) -> float:
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    if not examples:
        return float("nan")
    return sum(judge(p, e, timeout_s).exec_correct for p, e in zip(predictions, examples)) / len(examples)


class SqlAccuracy(Metric):
    """Execution accuracy (``exec_acc``), logical-form exact match (``lf_acc``) and the share of
    predictions that could not run (``invalid_rate``); counts are summed across DDP ranks."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("exec_correct", "lf_correct", "invalid", "gold_errors", "total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, judgements: list[Judgement]) -> None:
        """Add judged predictions (see `judge`)."""
        for j in judgements:
            self.exec_correct += int(j.exec_correct)
            self.lf_correct += int(j.lf_correct)
            self.invalid += int(j.pred_error is not None)
            self.gold_errors += int(j.gold_error is not None)
            self.total += 1

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).float()
        return {
            "exec_acc": self.exec_correct.float() / total,
            "lf_acc": self.lf_correct.float() / total,
            "invalid_rate": self.invalid.float() / total,
            "gold_errors": self.gold_errors.float(),
            "n": self.total.float(),
        }
