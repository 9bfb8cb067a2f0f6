"""Issue 24, class 2: input that can be read two ways is an error naming the file, the line and the
key (`lora_lab.strict_read`), in every reader of user data: bring-your-own CSV/TSV/JSON/JSONL/Parquet,
GLUE TSVs, WikiSQL JSONL, the report's ``--reference`` YAML. Before, the last of two ``label``
columns or keys won silently and the run recorded success on the wrong labels."""

from __future__ import annotations

import json

import pyarrow
import pyarrow.parquet
import pytest

from lora_lab.cli import main as lora_lab
from lora_lab.errors import ConfigError
from lora_lab.strict_read import AmbiguousInput, check_header, load_yaml, loads_json
from lora_lab.tasks.registry import parse_task_config
from tests.resume.exact import train_cli
from tests.tasks.test_user_files import ROWS, write


def _error(fn) -> str:
    with pytest.raises(ConfigError) as info:
        fn()
    message = f"error: {info.value}"
    assert "\n" not in message
    return message


def task_with_train(tmp_path, name: str, content: str):
    path = tmp_path / name
    path.write_text(content)
    write(tmp_path / "val.csv", ROWS, "csv")
    return path, parse_task_config({"kind": "text_classification", "data_files": {"train": str(path), "val": str(tmp_path / "val.csv")},
                                    "labels": ["negative", "positive"]})


@pytest.mark.parametrize("name,content,where", [
    ("train.csv", "text,label,label\nfine film,positive,negative\n", "line 1: column 'label' appears twice in the header; rename one"),  # issue example
    ("train.tsv", "text\tlabel\tlabel\nfine film\tpositive\tnegative\n", "line 1: column 'label' appears twice in the header; rename one"),
    ("train.csv", "text,label, label\nfine film,positive,negative\n", "line 1: column 'label' appears twice in the header ('label' and ' label' after stripping spaces); rename one"),
    ("train.csv", "text,,label,\nfine,x,positive,y\n", "line 1: column '' appears twice in the header; rename one"),
    ("train.jsonl", '{"text": "ok", "label": "positive"}\n{"text": "fine film", "label": "positive", "label": "negative"}\n',  # issue example
     "line 2: key 'label' appears twice in one object"),
    ("train.jsonl", '{"text": "ok", "label": "positive", "meta": {"src": "a", "src": "b"}}\n', "line 1: key 'src' appears twice in one object"),
    ("train.json", '[\n {"text": "ok", "label": "positive"},\n {"text": "bad",\n  "label": "positive",\n  "label": "negative"}\n]\n',
     "line 5: key 'label' appears twice in one object"),
])
def test_repeated_columns_and_keys_name_file_line_and_key(tmp_path, name, content, where):
    path, cfg = task_with_train(tmp_path, name, content)
    assert _error(cfg.load_examples) == f"error: task.data_files.train: {path}: {where}"


def test_parquet_with_two_label_columns_is_refused(tmp_path):
    table = pyarrow.Table.from_arrays([pyarrow.array(["ok"]), pyarrow.array(["positive"]), pyarrow.array(["negative"])],
                                      names=["text", "label", "label"])
    pyarrow.parquet.write_table(table, tmp_path / "train.parquet")
    write(tmp_path / "val.csv", ROWS, "csv")
    cfg = parse_task_config({"kind": "text_classification", "labels": ["negative", "positive"],
                             "data_files": {"train": str(tmp_path / "train.parquet"), "val": str(tmp_path / "val.csv")}})
    assert _error(cfg.load_examples) == f"error: task.data_files.train: {tmp_path / 'train.parquet'}: column 'label' appears twice in the header; rename one"


def test_unambiguous_files_still_read_the_same(tmp_path):
    """Equal keys in *different* objects, equal values, nested objects: all fine, labels as written."""
    rows = [{"text": "a", "label": "positive", "meta": {"label": "x"}}, {"text": "b", "label": "negative", "meta": {"label": "x"}}]
    path, cfg = task_with_train(tmp_path, "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert [label for _, _, label in cfg.load_examples()["train"]] == [1, 0]


def test_issue_example_through_lora_lab_train_writes_nothing(tmp_path, capsys):
    """``lora-lab train task=text_classification`` on the ``text,label,label`` CSV: exit 2, one line, no run dir."""
    (tmp_path / "train.csv").write_text("text,label,label\n" + "".join(f"film {i},positive,negative\n" for i in range(16)))
    (tmp_path / "val.csv").write_text("text,label\n" + "".join(f"film {i},{'positive' if i % 2 else 'negative'}\n" for i in range(8)))
    code = train_cli(["task=text_classification", "debug=tiny", f"task.data_files.train={tmp_path / 'train.csv'}",
                      f"task.data_files.val={tmp_path / 'val.csv'}", "task.labels=[negative,positive]", f"paths.runs_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"error: task.data_files.train: {tmp_path / 'train.csv'}: line 1: column 'label' appears twice in the header; rename one"]
    assert not (tmp_path / "runs").exists()


def test_glue_tsv_with_a_repeated_column_is_refused(tmp_path):
    from lora_lab.tasks.classification.glue import GLUE_TASKS, read_glue_tsv

    task = GLUE_TASKS["rte"]
    path = tmp_path / "train.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\tlabel\n0\ta\tb\tentailment\tnot_entailment\n")
    assert _error(lambda: read_glue_tsv(task, path)) == f"error: task.data_dir: {path}:1: column 'label' appears twice in the header; rename one"


def test_report_reference_yaml_with_a_repeated_key_is_one_line(tmp_path, capsys):
    ref = tmp_path / "ref.yaml"
    ref.write_text("- label: LoRA (paper)\n  scores:\n    glue_rte: 80.0\n    glue_rte: 70.0\n")
    (tmp_path / "runs").mkdir()
    assert lora_lab(["report", str(tmp_path / "runs"), "--reference", str(ref), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --reference: {ref}: line 4: key 'glue_rte' appears twice in one mapping"
    assert not (tmp_path / "o").exists()


def test_strict_helpers_directly():
    assert loads_json('{"a": {"b": 1}, "b": [{"a": 1}, {"a": 2}]}') == {"a": {"b": 1}, "b": [{"a": 1}, {"a": 2}]}
    with pytest.raises(AmbiguousInput, match="'a' appears twice"):
        loads_json('[{"x": {"a": 1, "a": 1}}]')  # equal values are still two keys: refused
    check_header(["text", "label", "Label"])  # case differs: two names, as pandas and DictReader read them
    with pytest.raises(AmbiguousInput):
        check_header(["text ", "text"])
    assert load_yaml("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}
    with pytest.raises(AmbiguousInput, match="line 2"):
        load_yaml("a: 1\na: 2\n")
