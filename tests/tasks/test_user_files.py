"""Bring-your-own-data loading: the same rows from CSV, TSV, JSON, JSONL and Parquet files; every
problem with the files is one `ConfigError` naming the key, the file and the row."""

import json

import pyarrow
import pyarrow.parquet
import pytest

from lora_lab.errors import ConfigError
from lora_lab.tasks.generation.example import TextExample
from lora_lab.tasks.registry import parse_task_config

ROWS = [
    {"text": "a fine film", "other": "x", "label": "positive"},
    {"text": "a dull, long film", "other": "y", "label": "negative"},
    {"text": "so \"quoted\"\tstuff", "other": "z", "label": "positive"},
]


def write(path, rows, fmt):
    """Write ``rows`` (dicts) as ``fmt``; returns the path."""
    if fmt in ("csv", "tsv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    return path


def classification(tmp_path, fmt="csv", train=ROWS, val=ROWS, **task):
    files = {"train": str(write(tmp_path / f"train.{fmt}", train, fmt)), "val": str(write(tmp_path / f"val.{fmt}", val, fmt))}
    return parse_task_config({"kind": "text_classification", "data_files": files, "labels": ["negative", "positive"], **task})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_every_format_gives_the_same_examples(tmp_path, fmt):
    cfg = classification(tmp_path, fmt)
    examples = cfg.load_examples()
    assert list(examples) == ["train", "val"] and cfg.data_is_local
    assert examples["train"] == [("a fine film", None, 1), ("a dull, long film", None, 0), ('so "quoted"\tstuff', None, 1)]
    spec = cfg.spec()
    assert (spec.family, spec.num_labels, spec.label_names, spec.metrics, spec.primary, spec.has_test) == (
        "classification", 2, ("negative", "positive"), ("accuracy", "f1"), "accuracy", False)


def test_pairs_regression_data_dir_and_test_split(tmp_path):
    rows = [{"a": "one", "b": "two", "score": 0.5}, {"a": "three", "b": "four", "score": "4"}]
    for split in ("tr", "dev", "te"):
        write(tmp_path / f"{split}.jsonl", rows, "jsonl")
    cfg = parse_task_config({"kind": "text_classification", "data_dir": str(tmp_path), "regression": True, "text_column": "a",
                             "text_pair_column": "b", "label_column": "score",
                             "data_files": {"train": "tr.jsonl", "val": "dev.jsonl", "test": "te.jsonl"}})
    assert cfg.load_examples()["test"] == [("one", "two", 0.5), ("three", "four", 4.0)]
    spec = cfg.spec()
    assert (spec.num_labels, spec.metrics, spec.primary, spec.has_test) == (1, ("pearson", "spearman"), "pearson", True)


def test_generation_prompt_template(tmp_path):
    rows = [{"document": "The cat sat on the mat all day.", "summary": "Cat sits."}, {"document": "Rain {fell}.", "summary": "Rain."}]
    files = {s: str(write(tmp_path / f"{s}.jsonl", rows, "jsonl")) for s in ("train", "val", "test")}
    cfg = parse_task_config({"kind": "text_generation", "data_files": files, "prompt_template": "Summarize: {document}\nSummary:",
                             "target_column": "summary", "metrics": ["rouge_l"], "metric_fn": "os.path.commonprefix"})
    assert cfg.load_examples()["val"][1] == TextExample("Summarize: Rain {fell}.\nSummary:", "Rain.")
    spec = cfg.spec()
    assert (spec.family, spec.metrics, spec.primary, spec.has_test) == ("generation", ("rouge_l", "commonprefix"), "rouge_l", True)


def _error(cfg_or_fn) -> str:
    with pytest.raises(ConfigError) as info:
        cfg_or_fn()
    message = f"error: {info.value}"
    assert "\n" not in message
    return message


def test_missing_file_and_unknown_suffix(tmp_path):
    files = {"train": str(tmp_path / "nope.csv"), "val": str(tmp_path / "nope.csv")}
    assert _error(lambda: parse_task_config({"kind": "text_classification", "data_files": files, "labels": ["a", "b"]})) == (
        f"error: task.data_files.train: {tmp_path / 'nope.csv'} does not exist")
    (tmp_path / "t.xlsx").write_text("")
    message = _error(lambda: parse_task_config({"kind": "text_generation", "data_files": {"train": str(tmp_path / "t.xlsx"), "val": "v.csv"}}))
    assert message.startswith(f"error: task.data_files.train: {tmp_path / 't.xlsx'}: cannot tell the format from the suffix '.xlsx'")
    assert _error(lambda: parse_task_config({"kind": "text_generation"})).startswith("error: task.data_files.train: is required")
    assert _error(lambda: parse_task_config({"kind": "text_generation", "data_files": {"train": "a.csv"}})) == (
        "error: task.data_files.val: is required (a csv, tsv, json, jsonl, parquet file)")


def test_missing_column_names_file_and_line(tmp_path):
    cfg = classification(tmp_path, label_column="sentiment")
    assert _error(cfg.load_examples) == (
        f"error: task.data_files.train: {tmp_path / 'train.csv'}: line 2: no column 'sentiment'; the row has ['label', 'other', 'text'] (set task.*_column)")


def test_unknown_label_names_file_and_line(tmp_path):
    cfg = classification(tmp_path, "jsonl", val=[*ROWS, {"text": "meh", "other": "", "label": "neutral"}])
    assert _error(cfg.load_examples) == (
        f"error: task.data_files.val: {tmp_path / 'val.jsonl'}: line 4: label 'neutral' is not one of task.labels ['negative', 'positive']")


def test_empty_split(tmp_path):
    cfg = classification(tmp_path, "csv")
    (tmp_path / "val.csv").write_text("text,other,label\n")
    assert _error(cfg.load_examples) == f"error: task.data_files.val: {tmp_path / 'val.csv'}: no rows (the val split is empty)"


@pytest.mark.parametrize(
    "fmt,content,problem",
    [
        ("csv", 'text,label\n"ok",positive\nextra,positive,field\n', "line 3: 3 fields, the header has 2"),
        ("csv", "text,label\nok,positive\nshort\n", "line 3: 1 fields, the header has 2"),
        ("csv", "text,label\n,positive\n", "line 2: column 'text' must hold non-empty text, got ''"),
        ("jsonl", '{"text": "ok", "label": "positive"}\n{"text": "ok", "label": \n', "line 2: not valid JSON (Expecting value)"),
        ("jsonl", '{"text": "ok", "label": "positive"}\n\n["text", "label"]\n', "line 3: not a JSON object"),
        ("jsonl", '{"text": 3, "label": "positive"}\n', "line 1: column 'text' must hold non-empty text, got 3"),
        ("json", '{"text": "ok"}', "must hold a JSON list of objects (one per row), got a dict"),
        ("json", '[{"text": "ok", "label": "positive"}, 7]', "record 2: not a JSON object"),
        ("json", '[{"text": "ok", "label": "positive"},', "not valid JSON (Expecting value at line 1)"),
        ("parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, fmt, content, problem):
    path = tmp_path / f"train.{fmt}"
    path.write_text(content)
    write(tmp_path / "val.csv", ROWS, "csv")
    cfg = parse_task_config({"kind": "text_classification", "data_files": {"train": str(path), "val": str(tmp_path / "val.csv")},
                             "labels": ["negative", "positive"]})
    assert _error(cfg.load_examples).startswith(f"error: task.data_files.train: {path}: {problem}")


@pytest.mark.parametrize(
    "task,expected",
    [
        ({"labels": ["a"]}, "task.labels: must list at least two distinct label names"),
        ({"labels": ["a", "a"]}, "task.labels: must list at least two distinct label names"),
        ({"labels": ["a", "b"], "regression": True}, "task.labels: must be null with regression: true"),
        ({"labels": ["a", "b"], "metrics": ["pearson"]}, "task.metrics: unknown metric 'pearson' for classification; allowed: accuracy, f1, mcc"),
        ({"labels": ["a", "b", "c"], "metrics": ["f1"]}, "task.metrics: f1 is the binary F1 of label id 1; it needs exactly two labels, got 3"),
        ({"labels": ["a", "b"], "primary_metric": "mcc"}, "task.primary_metric: 'mcc' is not among the metrics; allowed: accuracy, f1"),
        ({"labels": ["a", "b"], "format": "xls"}, "task.format: unknown format 'xls'; allowed: csv, tsv, json, jsonl, parquet"),
        ({"labels": ["a", "b"], "data_files": {"train": "a.csv", "dev": "b.csv"}}, "task.data_files.dev: unknown split; allowed: train, val, test"),
    ],
)
def test_bad_classification_settings(tmp_path, task, expected):
    files = {"train": str(write(tmp_path / "t.csv", ROWS, "csv")), "val": str(tmp_path / "t.csv")}
    assert expected in _error(lambda: parse_task_config({"kind": "text_classification", "data_files": files, **task}))


@pytest.mark.parametrize(
    "task,expected",
    [
        ({"metrics": ["bleu"]}, "task.metrics: unknown metric 'bleu'; allowed: exact_match, rouge_l (your own: task.metric_fn)"),
        ({"metric_fn": "no_such_module.fn"}, "task.metric_fn: cannot import 'no_such_module.fn' (ModuleNotFoundError"),
        ({"metric_fn": "os.sep"}, "task.metric_fn: 'os.sep' must be the dotted path of a function"),
        ({"primary_metric": "bleu"}, "task.primary_metric: 'bleu' is not among the metrics; allowed: exact_match, rouge_l"),
        ({"prompt_template": "Q: {0}"}, "task.prompt_template: 'Q: {0}' is not a format string (every {field} must be a column name)"),
        ({"num_beams": 0}, "task.num_beams: must be a positive integer, got 0"),
    ],
)
def test_bad_generation_settings(tmp_path, task, expected):
    files = {"train": str(write(tmp_path / "t.jsonl", [{"prompt": "p", "target": "t"}], "jsonl")), "val": str(tmp_path / "t.jsonl")}
    assert expected in _error(lambda: parse_task_config({"kind": "text_generation", "data_files": files, **task}))
