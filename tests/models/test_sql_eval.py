"""Execution accuracy and logical-form match on hand-written cases, and the guards around untrusted SQL."""

import sqlite3

import pytest

from lora_lab.tasks.text_to_sql.sql_parse import logical_form_match, parse_sql
from lora_lab.tasks.text_to_sql.wikisql import LogicalForm, SqlExample, Table
from lora_lab.tasks.text_to_sql.metrics import SqlAccuracy, build_database, execute, execution_accuracy, judge, statement_problem

TABLE = Table(
    "teams", ("Team", "City", "Wins", "Founded"), ("text", "text", "real", "real"),
    (("Lions", "Oslo", 12, 1950), ("Eagles", "Bergen", 7, 1921), ("Sharks", "Oslo", 3, 1999), ("Wolves", "Tromso", 12, 1921)),
)
# SELECT "Team" FROM t WHERE "City" = 'Oslo' AND "Wins" > 5  -> Lions
GOLD = SqlExample("Which Oslo team has more than 5 wins?", TABLE, LogicalForm(0, 0, ((1, 0, "Oslo"), (2, 1, 5))))


@pytest.mark.parametrize(
    "pred",
    [
        'SELECT "Team" FROM t WHERE "City" = \'Oslo\' AND "Wins" > 5',
        'SELECT "Team" FROM t WHERE "Wins" > 5 AND "City" = \'Oslo\'',           # conditions reordered
        'select "team" from T where "wins" > 5.0 and "city" = \'oslo\' ;',       # case, spacing, 5.0, ';'
        "SELECT Team FROM t WHERE City = 'Oslo' AND Wins > '5'",                 # bare names, quoted number
    ],
)
def test_equivalent_sql_counts_correct(pred):
    j = judge(pred, GOLD)
    assert j.exec_correct and j.lf_correct and j.pred_error is None and j.gold_error is None


def test_execution_without_logical_form_match_and_vice_versa():
    # same rows by another route: execution right, logical form wrong
    j = judge('SELECT "Team" FROM t WHERE "Founded" = 1950', GOLD)
    assert j.exec_correct and not j.lf_correct
    # another condition that happens to return different rows
    j = judge('SELECT "Team" FROM t WHERE "City" = \'Oslo\'', GOLD)
    assert not j.exec_correct and not j.lf_correct


@pytest.mark.parametrize(
    "pred",
    [
        'SELECT "Team" FROM t WHERE "City" = ',          # malformed
        'SELECT "Team" FRM t',                           # malformed
        'SELECT "Coach" FROM t',                         # unknown column
        "SELECT 'Lions' FROM t WHERE \"City\" = 'Oslo",  # unterminated string
        "",
        "the answer is Lions",
    ],
)
def test_malformed_sql_counts_wrong_without_raising(pred):
    j = judge(pred, GOLD)
    assert not j.exec_correct and not j.lf_correct and j.pred_error


@pytest.mark.parametrize(
    "pred,reason",
    [
        ("DROP TABLE t", "refused: not a SELECT"),
        ('SELECT "Team" FROM t; DROP TABLE t', "refused: more than one statement"),
        ('SELECT "Team" FROM t WHERE "City" = \'Oslo\'; SELECT 1;', "refused: more than one statement"),
        ("DELETE FROM t", "refused: not a SELECT"),
        ("PRAGMA query_only = OFF", "refused: not a SELECT"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "refused: not a SELECT"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c", "refused: not a SELECT"),
        ("SELECTED * FROM t", "refused: not a SELECT"),
    ],
)
def test_dangerous_sql_refused_and_table_intact(pred, reason):
    conn = build_database(TABLE)
    assert execute(conn, pred).error == reason
    assert execute(conn, 'SELECT COUNT(*) FROM t').rows == {(4.0,): 1}


def test_misspelt_quoted_column_is_refused_not_read_as_a_string():
    gold = SqlExample("q", TABLE, LogicalForm(0, 3, ((1, 0, "Oslo"),)))  # COUNT("Team") ... = 2
    conn = build_database(TABLE)
    # what SQLite alone would do: "Tema" becomes the string 'Tema' and the count still comes out 2
    assert conn.execute("SELECT COUNT(\"Tema\") FROM t WHERE \"City\" = 'Oslo'").fetchall() == [(2,)]
    j = judge("SELECT COUNT(\"Tema\") FROM t WHERE \"City\" = 'Oslo'", gold)
    assert not j.exec_correct and j.pred_error == "refused: unknown column 'Tema'"
    assert judge("SELECT COUNT(\"team\") FROM \"t\" WHERE \"City\" = 'Say \"hi\"' OR 1", gold).pred_error is None
    # SQLite folds only ASCII letters: "ÄRA" names the column "Ära", "ära" does not (it would be a string)
    table = Table("u", ("Ära", "n"), ("text", "real"), (("x", 1),))
    assert build_database(table).execute('SELECT "ära" FROM t').fetchall() == [("ära",)]
    assert judge('SELECT "ära" FROM t', SqlExample("q", table, LogicalForm(0, 0))).pred_error == "refused: unknown column 'ära'"
    assert judge('SELECT "ÄRA" FROM T', SqlExample("q", table, LogicalForm(0, 0))).exec_correct


def test_semicolons_inside_literals_are_one_statement():
    assert statement_problem("SELECT \"Team\" FROM t WHERE \"City\" = 'a;b';") is None
    assert statement_problem('SELECT "a;b" FROM t') is None


def test_database_itself_refuses_writes_even_past_the_text_filter():
    conn = build_database(TABLE)
    for sql in ("DELETE FROM t", "DROP TABLE t", "INSERT INTO t VALUES ('x', 'y', 1, 2)", "PRAGMA query_only = OFF"):
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(sql)
    with pytest.raises(sqlite3.DatabaseError):  # recursive CTEs denied by the authorizer
        conn.execute("SELECT * FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchall() == [(4,)]


def test_slow_query_times_out_as_wrong():
    slow = "SELECT COUNT(*) FROM t a, t b, t c, t d, t e, t f, t g, t h, t i, t j, t k"  # 4^11 rows
    result = execute(build_database(TABLE), slow, timeout_s=0.05)
    assert result.error == "timeout"
    assert not judge(slow, GOLD, timeout_s=0.05).exec_correct


def test_slow_builtin_functions_are_refused_not_run():
    """One long built-in call would outlast the progress handler's time limit: such functions are denied."""
    import time

    for sql in ("SELECT printf('%.*c', 1000000000, 'x') FROM t", "SELECT length(zeroblob(1000000000))", "SELECT randomblob(1000000000)"):
        t0 = time.perf_counter()
        result = execute(build_database(TABLE), sql, timeout_s=1.0)
        assert not result.ok and time.perf_counter() - t0 < 0.5, (sql, result)
    assert execute(build_database(TABLE), "SELECT COUNT(*), MAX(\"Wins\"), lower(\"Team\") FROM t WHERE \"City\" LIKE 'o%'", 1.0).ok


def test_result_is_a_multiset_and_text_is_case_insensitive():
    # row order is no part of the answer; duplicates are
    gold = SqlExample("q", TABLE, LogicalForm(1, 0, ((2, 0, 12),)))  # Oslo, Tromso
    assert judge("SELECT \"City\" FROM t WHERE \"Wins\" > 11", gold).exec_correct
    gold_dup = SqlExample("q", TABLE, LogicalForm(3, 0, ((1, 0, "Oslo"),)))  # 1950, 1999
    assert not judge('SELECT "Founded" FROM t WHERE "Founded" < 2000', gold_dup).exec_correct
    # WikiSQL compares condition strings case-insensitively
    assert judge("SELECT \"Team\" FROM t WHERE \"City\" = 'OSLO' AND \"Wins\" > 5", GOLD).exec_correct


def test_aggregates_compare_numerically():
    gold = SqlExample("q", TABLE, LogicalForm(2, 5, ((1, 0, "Oslo"),)))  # AVG(Wins) = 7.5
    assert judge("SELECT AVG(\"Wins\") FROM t WHERE \"City\" = 'Oslo'", gold).exec_correct
    assert judge("SELECT SUM(\"Wins\") / 2.0 FROM t WHERE \"City\" = 'Oslo'", gold).exec_correct
    assert not judge("SELECT MAX(\"Wins\") FROM t WHERE \"City\" = 'Oslo'", gold).exec_correct


def test_parse_logical_form():
    lf = parse_sql('SELECT MAX("Wins") FROM t WHERE "City" = \'Oslo\' AND "Founded" < 1990', TABLE)
    assert lf == LogicalForm(2, 1, ((1, 0, "Oslo"), (3, 2, 1990)))
    for bad in ('SELECT MAX("Wins" FROM t', 'SELECT "Wins" FROM t WHERE', 'SELECT "Wins" FROM t WHERE "City" >= 1',
                'SELECT "Wins" FROM t ORDER BY "Wins"', 'SELECT COUNT(*) FROM t', "SELECT \"Wins\" FROM t WHERE \"City\" = 'a' OR \"City\" = 'b'"):
        assert parse_sql(bad, TABLE) is None, bad
    # conditions are a multiset: a duplicated condition is a different logical form
    assert not logical_form_match('SELECT "Team" FROM t WHERE "City" = \'Oslo\' AND "City" = \'Oslo\' AND "Wins" > 5', GOLD.sql, TABLE)


def test_metric_and_execution_accuracy():
    preds = [GOLD.gold_sql, 'SELECT "Team" FROM t WHERE "Founded" = 1950', "DROP TABLE t", 'SELECT "Coach" FROM t']
    examples = [GOLD] * 4
    assert execution_accuracy(preds, examples) == pytest.approx(0.5)
    metric = SqlAccuracy()
    metric.update([judge(p, e) for p, e in zip(preds[:2], examples)])
    metric.update([judge(p, e) for p, e in zip(preds[2:], examples)])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out == {"exec_acc": 0.5, "lf_acc": 0.25, "invalid_rate": 0.5, "gold_errors": 0.0, "n": 4.0}
