"""Parse WikiSQL-style SQL text back into a `LogicalForm`: the normalisation behind logical-form match.

Accepted grammar (keywords, column names and the table name case-insensitive; any whitespace; one
optional trailing ``;``)::

    SELECT [AGG (] column [)] FROM name [WHERE column op value (AND column op value)*]
    AGG    := MAX | MIN | COUNT | SUM | AVG          op := = | > | <
    column := "double-quoted name" | bare_name        value := 'string' | number | "quoted text"

Columns resolve against the table's column names; a condition value is normalised to a number when it
reads as one (``'1990'`` and ``1990`` select the same rows) and otherwise to its case-folded text
(WikiSQL's own comparison lower-cases condition strings). `parse_sql` returns None for anything
outside the grammar, so a prediction that does not parse never matches.
"""

from __future__ import annotations

import re
from collections import Counter

from lora_lab.tasks.text_to_sql.wikisql import AGG_OPS, COND_OPS, LogicalForm, Table, as_number

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<qident>"(?:[^"]|"")*")
      | (?P<string>'(?:[^']|'')*')
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[(),;=<>*])
    )""",
    re.VERBOSE,
)


def tokenize(sql: str) -> list[tuple[str, str]] | None:
    """(kind, text) tokens, or None if some character fits no token."""
    out, pos, sql = [], 0, sql.strip()
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if not m or m.end() == pos:
            return None
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(text: str, q: str) -> str:
    return text[1:-1].replace(q + q, q)


def normalise_value(value):
    number = as_number(value)
    return ("n", float(number)) if number is not None else ("s", " ".join(str(value).split()).casefold())


def parse_sql(sql: str, table: Table) -> LogicalForm | None:
    """The logical form ``sql`` denotes over ``table`` (values normalised), or None."""
    tokens = tokenize(sql)
    if not tokens:
        return None
    if tokens[-1] == ("punct", ";"):
        tokens = tokens[:-1]
    lookup = {c.casefold(): i for i, c in enumerate(table.columns)}
    pos = 0

    def peek(offset=0):
        return tokens[pos + offset] if pos + offset < len(tokens) else (None, None)

    def keyword(word: str) -> bool:
        nonlocal pos
        kind, text = peek()
        if kind == "word" and text.upper() == word:
            pos += 1
            return True
        return False

    def punct(char: str) -> bool:
        nonlocal pos
        if peek() == ("punct", char):
            pos += 1
            return True
        return False

    def column() -> int | None:
        nonlocal pos
        kind, text = peek()
        if kind == "qident":
            name = _unquote(text, '"')
        elif kind == "word" and text.upper() not in ("SELECT", "FROM", "WHERE", "AND"):
            name = text
        else:
            return None
        pos += 1
        return lookup.get(" ".join(name.split()).casefold())

    if not keyword("SELECT"):
        return None
    agg = 0
    kind, text = peek()
    if kind == "word" and text.upper() in AGG_OPS[1:] and peek(1) == ("punct", "("):
        agg = AGG_OPS.index(text.upper())
        pos += 2
    sel = column()
    if sel is None or (agg and not punct(")")):
        return None
    if not keyword("FROM"):
        return None
    kind, _ = peek()
    if kind not in ("word", "qident"):
        return None
    pos += 1
    conds = []
    if keyword("WHERE"):
        while True:
            col = column()
            kind, op_text = peek()
            if col is None or kind != "punct" or op_text not in COND_OPS[:3]:
                return None
            pos += 1
            kind, text = peek()
            if kind == "number":
                value = as_number(text)
            elif kind in ("string", "qident"):
                value = _unquote(text, text[0])
            else:
                return None
            pos += 1
            conds.append((col, COND_OPS.index(op_text), value))
            if not keyword("AND"):
                break
    if pos != len(tokens):
        return None
    return LogicalForm(sel, agg, tuple(conds))


def logical_form_key(lf: LogicalForm) -> tuple:
    """Comparable form: condition order ignored (a multiset), values normalised."""
    conds = Counter((c, o, normalise_value(v)) for c, o, v in lf.conds)
    return lf.sel, lf.agg, frozenset(conds.items())


def logical_form_match(predicted_sql: str, gold: LogicalForm, table: Table) -> bool:
    """Exact match of logical forms: same column, aggregation and multiset of conditions."""
    lf = parse_sql(predicted_sql, table)
    return lf is not None and logical_form_key(lf) == logical_form_key(gold)
