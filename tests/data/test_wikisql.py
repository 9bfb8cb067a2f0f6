"""WikiSQL: SQL rendering of known logical forms, prompts, the original local layout, Hub records,
and the synthetic generator (deterministic, varied, always answerable)."""

import json
from collections import Counter

import pytest

from lora_lab.tasks.text_to_sql.wikisql import (
    LogicalForm, SqlExample, Table, example_from_hub, load_wikisql_local, render_prompt, render_sql,
)
from lora_lab.tasks.text_to_sql.wikisql_synthetic import make_wikisql_synthetic
from lora_lab.errors import ConfigError

HEADER = ["Player", "No.", "Nationality", "Position", "Years in Toronto", "School/Club Team"]
TYPES = ["text", "real", "text", "text", "text", "text"]
ROWS = [
    ["Antonio Lang", 21, "United States", "Guard-Forward", "1999-2000", "Duke"],
    ["Voshon Lenard", 2, "United States", "Guard", "2002-03", "Minnesota"],
    ["Martin Lewis", 32, "United States", "Guard-Forward", "1996-97", "Butler CC (KS)"],
]
TABLE = Table("1-10015132-11", tuple(HEADER), tuple(TYPES), tuple(map(tuple, ROWS)))


@pytest.mark.parametrize(
    "sql,expected",
    [
        ({"sel": 3, "agg": 0, "conds": [[5, 0, "Butler CC (KS)"]]},
         'SELECT "Position" FROM t WHERE "School/Club Team" = \'Butler CC (KS)\''),
        ({"sel": 1, "agg": 1, "conds": []}, 'SELECT MAX("No.") FROM t'),
        ({"sel": 1, "agg": 2, "conds": [[1, 1, "20"]]}, 'SELECT MIN("No.") FROM t WHERE "No." > 20'),
        ({"sel": 0, "agg": 3, "conds": [[3, 0, "Guard"], [1, 2, 30.0]]},
         'SELECT COUNT("Player") FROM t WHERE "Position" = \'Guard\' AND "No." < 30'),
        ({"sel": 1, "agg": 4, "conds": [[1, 0, 2.5]]}, 'SELECT SUM("No.") FROM t WHERE "No." = 2.5'),
        ({"sel": 1, "agg": 5, "conds": [[0, 0, "Shaquille O'Neal"]]},
         'SELECT AVG("No.") FROM t WHERE "Player" = \'Shaquille O\'\'Neal\''),
        # a number in a text column stays a string literal; a non-number in a real column too
        ({"sel": 0, "agg": 0, "conds": [[4, 0, 1999], [1, 0, "n/a"]]},
         'SELECT "Player" FROM t WHERE "Years in Toronto" = \'1999\' AND "No." = \'n/a\''),
    ],
)
def test_render_known_logical_forms(sql, expected):
    assert render_sql(LogicalForm.from_json(sql), TABLE) == expected


def test_columns_unique_non_empty_and_quotes_escaped():
    table = Table("x", ("Name", "name", "", 'Say "hi"'), ("text",) * 4, ())
    assert table.columns == ("Name", "name_2", "col2", 'Say "hi"')
    assert render_sql(LogicalForm(1, 0, ((3, 0, "a"),)), table) == 'SELECT "name_2" FROM t WHERE "Say ""hi""" = \'a\''


@pytest.mark.parametrize("lf", [LogicalForm(6, 0), LogicalForm(0, 6), LogicalForm(0, 0, ((0, 3, "x"),)), LogicalForm(0, 0, ((9, 0, "x"),))])
def test_render_rejects_out_of_range(lf):
    with pytest.raises(ValueError):
        render_sql(lf, TABLE)


def test_prompt_carries_question_header_types_and_optional_rows():
    prompt = render_prompt("Who  plays\nguard?", TABLE, rows=2)
    lines = prompt.split("\n")
    assert lines[1].startswith('Columns: "Player" (text) | "No." (real) | ')
    assert lines[2] == "Row: Antonio Lang | 21 | United States | Guard-Forward | 1999-2000 | Duke"
    assert lines[3].startswith("Row: Voshon Lenard") and not any("Martin Lewis" in l for l in lines)
    assert lines[-2:] == ["Question: Who plays guard?", "SQL:"]
    assert "Row:" not in render_prompt("q", TABLE)


def write_layout(root, splits=("train", "dev", "test")):
    """A small sample in the original WikiSQL layout."""
    root.mkdir(parents=True, exist_ok=True)
    table = {"id": TABLE.id, "header": HEADER, "types": TYPES, "rows": ROWS}
    other = {"id": "1-2", "header": ["City", "Population"], "types": ["text", "real"], "rows": [["Oslo", 700000.0], ["Bergen", 285000.0]]}
    questions = [
        {"phase": 1, "table_id": TABLE.id, "question": "What position does the player from Butler CC (KS) play?",
         "sql": {"sel": 3, "agg": 0, "conds": [[5, 0, "Butler CC (KS)"]]}},
        {"phase": 1, "table_id": "1-2", "question": "Largest population?", "sql": {"sel": 1, "agg": 1, "conds": []}},
    ]
    for stem in splits:
        (root / f"{stem}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
        (root / f"{stem}.tables.jsonl").write_text(json.dumps(table) + "\n\n" + json.dumps(other) + "\n")
    return root


def test_local_original_layout_loads(tmp_path):
    data = load_wikisql_local(write_layout(tmp_path / "wikisql"))
    assert list(data) == ["train", "val", "test"]
    first, second = data["val"]
    assert first.question.startswith("What position") and first.table.header == tuple(HEADER)
    assert first.table.rows[2][5] == "Butler CC (KS)" and first.sql == LogicalForm(3, 0, ((5, 0, "Butler CC (KS)"),))
    assert first.gold_sql == 'SELECT "Position" FROM t WHERE "School/Club Team" = \'Butler CC (KS)\''
    assert second.gold_sql == 'SELECT MAX("Population") FROM t'


def test_local_layout_test_split_optional(tmp_path):
    assert list(load_wikisql_local(write_layout(tmp_path / "w", ("train", "dev")))) == ["train", "val"]
    # the task spec agrees, so a run over such a copy skips the test pass instead of failing after training
    from lora_lab.tasks.registry import parse_task_config

    assert not parse_task_config({"kind": "wikisql", "data_dir": str(tmp_path / "w")}).spec().has_test
    assert parse_task_config({"kind": "wikisql", "data_dir": str(write_layout(tmp_path / "full"))}).spec().has_test
    assert parse_task_config({"kind": "wikisql"}).spec().has_test  # the Hub dataset has a test split


def test_eval_subsets_do_not_depend_on_the_run_seed():
    """Runs of every seed are evaluated on the same ``max_eval_samples`` examples; the training
    subset is drawn with the run's seed."""
    from lora_lab.tasks.base import split_subset
    from lora_lab.tasks.registry import parse_task_config

    cfg = parse_task_config({"kind": "wikisql_synthetic", "max_train_samples": 10, "max_eval_samples": 10})
    pool = list(range(100))
    assert split_subset(cfg, "val", pool, 0, 1) == split_subset(cfg, "val", pool, 7, 1)
    assert split_subset(cfg, "test", pool, 0, 2) == split_subset(cfg, "test", pool, 3, 2) != split_subset(cfg, "val", pool, 3, 1)
    assert split_subset(cfg, "train", pool, 0, 0) != split_subset(cfg, "train", pool, 1, 0)
    assert len(split_subset(cfg, "val", pool, 0, 1)) == 10 and split_subset(cfg, "val", pool[:5], 0, 1) == pool[:5]


def test_local_layout_errors_name_the_key(tmp_path):
    root = write_layout(tmp_path / "w")
    (root / "dev.tables.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"task.data_dir: missing file .*dev.tables.jsonl"):
        load_wikisql_local(root)
    root = write_layout(tmp_path / "w2")
    (root / "train.jsonl").write_text('{"table_id": "nope", "question": "q", "sql": {"sel": 0, "agg": 0, "conds": []}}\n')
    with pytest.raises(ConfigError, match=r"train.jsonl:1: missing 'nope'"):
        load_wikisql_local(root)
    (root / "train.jsonl").write_text('{"table_id": "1-2", "question": "q", "sql": {"sel": 7, "agg": 0, "conds": []}}\n')
    with pytest.raises(ConfigError, match=r"train.jsonl:1: bad example"):
        load_wikisql_local(root)
    with pytest.raises(ConfigError, match="is not a directory"):
        load_wikisql_local(tmp_path / "absent")


def test_hub_record_conversion():
    record = {
        "question": "Largest population?",
        "table": {"id": "1-2", "header": ["City", "Population"], "types": ["text", "real"], "rows": [["Oslo", "700000"]],
                  "page_title": "", "caption": ""},
        "sql": {"human_readable": "", "sel": 1, "agg": 1, "conds": {"column_index": [0], "operator_index": [0], "condition": ["Oslo"]}},
    }
    ex = example_from_hub(record)
    assert isinstance(ex, SqlExample) and ex.gold_sql == 'SELECT MAX("Population") FROM t WHERE "City" = \'Oslo\''


def test_synthetic_deterministic_varied_and_answerable():
    from lora_lab.tasks.text_to_sql.metrics import build_database, execute

    a, b, c = make_wikisql_synthetic(3, 300, 40, 40), make_wikisql_synthetic(3, 300, 40, 40), make_wikisql_synthetic(4, 300, 40, 40)
    assert [e.gold_sql for e in a["train"]] == [e.gold_sql for e in b["train"]]
    assert [e.question for e in a["val"]] == [e.question for e in b["val"]]
    assert [e.gold_sql for e in a["train"]] != [e.gold_sql for e in c["train"]]
    train = a["train"]
    assert set(Counter(e.sql.agg for e in train)) == {0, 1, 2, 3, 4, 5}
    assert set(Counter(op for e in train for _, op, _ in e.sql.conds)) == {0, 1, 2}
    assert all({"text", "real"} <= set(e.table.types) for e in train)
    # numeric aggregations only over real columns, > and < only on real columns
    assert all(e.table.types[e.sql.sel] == "real" for e in train if e.sql.agg in (1, 2, 4, 5))
    assert all(e.table.types[c] == "real" for e in train for c, op, _ in e.sql.conds if op)
    # validation tables are new, not copies of training ones
    assert not {e.table.rows for e in a["val"]} & {e.table.rows for e in train}
    for e in train[:100] + a["val"]:
        result = execute(build_database(e.table), e.gold_sql)
        assert result.ok and sum(result.rows.values()) > 0 and (None,) not in result.rows, e.gold_sql
