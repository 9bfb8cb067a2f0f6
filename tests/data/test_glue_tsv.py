"""GLUE TSV reader on small files written here: headerless CoLA, quote-leading sentences, errors."""

import pytest

from lora_lab.tasks.classification.glue import GLUE_TASKS, load_glue_local, read_glue_tsv
from lora_lab.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_cola_headerless_and_quotes(tmp_path):
    p = write(tmp_path / "CoLA/train.tsv", 'gj04\t1\t\t"Our friends won\'t buy this analysis, let alone the next one.\nclc95\t0\t*\tThe more you eat, the "more you want.\n')
    rows = read_glue_tsv(GLUE_TASKS["cola"], p)
    assert rows == [('"Our friends won\'t buy this analysis, let alone the next one.', None, 1), ('The more you eat, the "more you want.', None, 0)]


def test_sst2_quote_leading_sentence(tmp_path):
    p = write(tmp_path / "SST-2/dev.tsv", 'sentence\tlabel\n" a quoted start \t1\nplain text\t0\n')
    assert read_glue_tsv(GLUE_TASKS["sst2"], p) == [('" a quoted start ', None, 1), ("plain text", None, 0)]


def test_mnli_two_dev_splits_and_string_labels(tmp_path):
    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    row = "0\t1\t2\tfiction\t-\t-\t-\t-\tA man sleeps.\tA person rests.\tentailment\t{}\n"
    for stem, label in (("train", "neutral"), ("dev_matched", "contradiction"), ("dev_mismatched", "entailment")):
        write(tmp_path / f"MNLI/{stem}.tsv", header + row.format(label))
    splits = load_glue_local(GLUE_TASKS["mnli"], tmp_path)
    assert splits["train"] == [("A man sleeps.", "A person rests.", 1)]
    assert splits["val"][0][2] == 2 and splits["val_mm"][0][2] == 0


def test_stsb_regression_labels(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    p = write(tmp_path / "STS-B/dev.tsv", header + "0\tmain\tf\t2012\t1\tn\tn\tA plane.\tAn aircraft.\t4.75\n")
    assert read_glue_tsv(GLUE_TASKS["stsb"], p) == [("A plane.", "An aircraft.", 4.75)]


def test_missing_file_and_missing_column(tmp_path):
    with pytest.raises(ConfigError, match=r"task.data_dir: missing GLUE file .*RTE/train.tsv"):
        load_glue_local(GLUE_TASKS["rte"], tmp_path)
    p = write(tmp_path / "RTE/train.tsv", "index\tsentence1\tlabel\n0\ta\tentailment\n")
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['sentence2'\]"):
        read_glue_tsv(GLUE_TASKS["rte"], p)
    p = write(tmp_path / "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ConfigError, match="label 'maybe' is not one of"):
        read_glue_tsv(GLUE_TASKS["rte"], p)


def test_mrpc_header_with_byte_order_mark(tmp_path):
    # the original MRPC train/dev files begin with a UTF-8 byte-order mark before "Quality"
    text = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tHe said so.\tHe stated it.\n0\t1\t2\tA cat.\tA car.\n"
    p = tmp_path / "MRPC/train.tsv"
    p.parent.mkdir(parents=True)
    p.write_text(text, encoding="utf-8")
    assert read_glue_tsv(GLUE_TASKS["mrpc"], p) == [("He said so.", "He stated it.", 1), ("A cat.", "A car.", 0)]


def test_hub_data_is_not_forced_offline(tmp_path):
    """Only local model + local (or generated) data set the HF offline variables; GLUE/WikiSQL
    without ``data_dir`` load from the Hub and must keep the network."""
    from lora_lab.tasks.registry import parse_task_config

    assert not parse_task_config({"kind": "glue", "glue_task": "rte"}).data_is_local
    assert not parse_task_config({"kind": "wikisql"}).data_is_local
    assert not parse_task_config({"kind": "text_generation", "hub_dataset": "someone/summaries"}).data_is_local
    assert parse_task_config({"kind": "glue", "glue_task": "rte", "data_dir": str(tmp_path)}).data_is_local
    assert parse_task_config({"kind": "synthetic_sentiment"}).data_is_local
    assert parse_task_config({"kind": "wikisql_synthetic"}).data_is_local
