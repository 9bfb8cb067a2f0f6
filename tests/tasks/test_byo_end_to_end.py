"""Bring your own data through the real entry points: ``lora-lab train`` on a CSV (text
classification, tiny random BERT) and on JSONL files (text generation, tiny random LLaMA) written by
the test, then ``lora-lab report`` on the runs; the numbers are checked against the data and the
prediction files."""

import csv
import json
import random

import pytest

from tests.integration.test_sweep_and_report import _cli
from tests.tasks.test_user_files import write

POSITIVE = ["great", "wonderful", "superb", "lovely", "excellent"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "poor"]


def only_result(runs):
    results = list(runs.rglob("result.json"))
    assert len(results) == 1
    return json.loads(results[0].read_text()), results[0].parent


def report_row(tmp_path, runs) -> tuple[dict, str]:
    out = tmp_path / "report"
    rep = _cli(tmp_path, "report", str(runs), "--out", str(out))
    assert rep.returncode == 0, rep.stderr[-3000:]
    with open(out / "table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    return rows[0], rep.stdout


@pytest.mark.slow
def test_text_classification_on_a_csv_trains_and_reports(tmp_path):
    rng = random.Random(0)
    labels = {}
    for split, n in (("train", 64), ("val", 24), ("test", 24)):
        rows = []
        for _ in range(n):
            good = rng.random() < 0.5
            rows.append({"review": f"the film was {rng.choice(POSITIVE if good else NEGATIVE)}", "sentiment": "good" if good else "bad"})
        write(tmp_path / f"{split}.csv", rows, "csv")
        labels[split] = [r["sentiment"] for r in rows]
    proc = _cli(tmp_path, "train", "backbone=tiny_bert", "logger=none", "task=text_classification", "task.name=reviews",
                f"task.data_dir={tmp_path}", "task.data_files.train=train.csv", "task.data_files.val=val.csv", "task.data_files.test=test.csv",
                "task.text_column=review", "task.label_column=sentiment", "task.labels=[bad,good]", "task.batch_size=8",
                "trainer.max_epochs=8", "optim.lr=5e-2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, run = only_result(tmp_path / "runs")
    assert record["status"] == "success" and record["primary_metric"] == "val/accuracy"
    assert record["task_spec"]["label_names"] == ["bad", "good"] and record["data"]["sizes"] == {"train": 64, "val": 24, "test": 24}
    majority = max(labels["val"].count("bad"), labels["val"].count("good")) / 24
    assert record["baselines"]["majority_val"] == pytest.approx(majority) and majority < 0.7
    assert record["optimizer_steps"] == 64 and record["curve"][0]["val/accuracy"] < 0.9
    assert record["metrics"]["best_val"]["val/accuracy"] == 1.0 and record["metrics"]["test"]["test/accuracy"] == 1.0  # it learned the words
    assert (run / "adapter/adapter_model.safetensors").is_file()

    row, table = report_row(tmp_path, tmp_path / "runs")
    assert float(row["reviews_mean"]) == 1.0 and row["reviews_n"] == "1" and row["reviews_at_chance"] == "0"
    assert "| LoRA | " in table and " | 0.05 | 100.00 (n=1) |" in table and "reviews = test Acc" in table


@pytest.mark.slow
def test_text_generation_on_jsonl_trains_and_reports(tmp_path):
    rng = random.Random(0)
    colours = ["red", "green", "blue", "black", "white", "brown"]
    for split, n in (("train", 32), ("val", 8), ("test", 8)):
        rows = [{"question": f"name a colour like {rng.choice(colours)} or {rng.choice(colours)}", "answer": "blue sky"} for _ in range(n)]
        write(tmp_path / f"{split}.jsonl", rows, "jsonl")
    proc = _cli(tmp_path, "train", "backbone=tiny_llama", "logger=none", "task=text_generation", "task.name=colours", f"task.data_dir={tmp_path}",
                "task.data_files.train=train.jsonl", "task.data_files.val=val.jsonl", "task.data_files.test=test.jsonl",
                "task.prompt_column=question", "task.target_column=answer", "task.max_new_tokens=4", "task.batch_size=8",
                "trainer.max_epochs=6", "optim.lr=5e-2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, run = only_result(tmp_path / "runs")
    assert record["status"] == "success" and record["primary_metric"] == "val/rouge_l" and record["task_spec"]["family"] == "generation"
    untrained = record["baselines"]["untrained_val"]
    assert untrained["step"] == 0 and untrained["val/n"] == 8 and untrained["val/exact_match"] == 0.0
    assert record["metrics"]["best_val"]["val/exact_match"] == 1.0  # the adapter learned the answer
    rows = [json.loads(line) for line in (run / "predictions_test.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"prompt", "target", "predicted", "exact_match", "rouge_l"} <= set(rows[0])
    test = record["metrics"]["test"]
    assert test["test/n"] == 8
    assert test["test/exact_match"] == pytest.approx(sum(r["predicted"] == r["target"] for r in rows) / 8)
    assert test["test/rouge_l"] == pytest.approx(sum(r["rouge_l"] for r in rows) / 8) and test["test/rouge_l"] == 1.0
    assert json.loads((run / "adapter/adapter_config.json").read_text())["backbone"]["model_kind"] == "causal_lm"

    row, table = report_row(tmp_path, tmp_path / "runs")
    assert float(row["colours_mean"]) == pytest.approx(test["test/rouge_l"]) and row["colours_n"] == "1"
    assert " | 0.05 | 100.00 (n=1) |" in table and "colours = test ROUGE-L" and "colours (ROUGE-L)" in table in table
