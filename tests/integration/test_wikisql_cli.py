"""Text-to-SQL through the training entry point as users run it: synthetic WikiSQL on a tiny LLaMA
(bf16 autocast), local WikiSQL files in the original layout on a tiny T5, bad input as one line."""

import json

import pytest

from tests.data.test_wikisql import write_layout
from tests.integration.test_train_cli import refused_in_own_process, refused_in_process, run_train

SMALL = ["logger=none", "trainer.max_epochs=1", "task.batch_size=8", "task.eval_batch_size=16", "task.max_new_tokens=12"]


def only_result(tmp_path) -> tuple[dict, object]:
    results = list((tmp_path / "runs").rglob("result.json"))
    assert len(results) == 1
    return json.loads(results[0].read_text()), results[0].parent


@pytest.mark.slow
def test_synthetic_wikisql_tiny_llama_bf16(tmp_path):
    args = [*SMALL, "task=wikisql_synthetic", "backbone=tiny_llama", "task.train_size=32", "task.val_size=16", "task.test_size=16",
            "trainer.precision=bf16-mixed"]
    proc = run_train(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, run = only_result(tmp_path)
    assert record["status"] == "success" and record["primary_metric"] == "val/exec_acc"
    assert record["optimizer_steps"] == 4 and len(record["curve"]) == 1
    untrained = record["baselines"]["untrained_val"]
    assert untrained["step"] == 0 and untrained["val/n"] == 16 and 0.0 <= untrained["val/exec_acc"] <= 1.0
    assert set(record["metrics"]["test"]) >= {"test/exec_acc", "test/lf_acc", "test/invalid_rate", "test/loss"}
    assert record["metrics"]["test"]["test/n"] == 16 and record["data"]["sizes"] == {"train": 32, "val": 16, "test": 16}
    rows = [json.loads(l) for l in (run / "predictions_test.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and rows[0]["gold"].startswith("SELECT ") and {"predicted", "exec_correct", "error"} <= set(rows[0])
    assert sum(r["exec_correct"] for r in rows) / 16 == pytest.approx(record["metrics"]["test"]["test/exec_acc"])
    assert (run / "adapter/adapter_model.safetensors").is_file()
    meta = json.loads((run / "adapter/adapter_config.json").read_text())
    assert meta["backbone"]["model_kind"] == "causal_lm" and meta["adapted_modules"][0].endswith("q_proj")


@pytest.mark.slow
def test_local_wikisql_layout_tiny_t5(tmp_path):
    data = write_layout(tmp_path / "wikisql")
    proc = run_train(tmp_path, *SMALL, "task=wikisql", f"task.data_dir={data}", "backbone=tiny_t5", "task.eval_untrained=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, run = only_result(tmp_path)
    assert record["status"] == "success" and record["data"]["sizes"] == {"train": 2, "val": 2, "test": 2}
    assert record["baselines"]["untrained_val"] is None and record["metrics"]["best_val"]["val/n"] == 2
    assert json.loads((run / "adapter/adapter_config.json").read_text())["backbone"]["model_kind"] == "seq2seq"


#: (overrides, a fragment of the one error line); in-process through `cli_main`, the first also in its own
#: ``python -m lora_lab.train`` process
BAD_GENERATION_INPUT = [
    (["task=wikisql", "task.data_dir=/nonexistent/wikisql"], "error: task.data_dir: /nonexistent/wikisql is not a directory"),
    (["task=wikisql_synthetic", "task.num_beams=0"], "error: task.num_beams: must be a positive integer, got 0"),
    (["task=wikisql_synthetic", "backbone=smollm2", "backbone.gguf_file=x.bin"], "error: backbone.gguf_file: must be the name of a .gguf file"),
]


def test_python_m_lora_lab_train_refuses_bad_generation_input(tmp_path):
    overrides, expected = BAD_GENERATION_INPUT[0]
    refused_in_own_process(tmp_path, [*SMALL, "backbone=tiny_llama", *overrides], expected)


@pytest.mark.parametrize("overrides,expected", BAD_GENERATION_INPUT)
def test_bad_generation_input_one_line(tmp_path, capsys, overrides, expected):
    refused_in_process(tmp_path, capsys, [*SMALL, "backbone=tiny_llama", *overrides], expected)


@pytest.mark.slow
def test_untrained_baseline_is_recorded_by_every_generation_run(tmp_path):
    """The untrained model's validation (the chance level of a generation task) is recorded by a normal
    run (``task.eval_untrained``, on by default) before training; ``trainer.max_steps=0`` is refused
    as an input error rather than recorded as a successful, untrained run."""
    args = [*SMALL, "task=wikisql_synthetic", "backbone=tiny_llama", "task.train_size=16", "task.val_size=8", "task.test_size=8",
            "trainer.max_epochs=-1"]
    refused = run_train(tmp_path, *args, "trainer.max_steps=0")
    assert refused.returncode == 2 and "trainer.max_steps" in refused.stderr
    assert not list(tmp_path.rglob("result.json"))
    proc = run_train(tmp_path, *args, "trainer.max_steps=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, run = only_result(tmp_path)
    assert record["optimizer_steps"] == 2 and record["metrics"]["test"]["test/n"] == 8
    untrained = record["baselines"]["untrained_val"]
    rows = [json.loads(line) for line in (run / "predictions_untrained_val.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert set(untrained) >= {"val/exec_acc", "val/invalid_rate", "val/loss"} and 0.0 <= untrained["val/exec_acc"] <= 1.0
