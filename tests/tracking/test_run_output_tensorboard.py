"""A real tiny run as a user launches it (stdout a pipe, `logger=tensorboard`): plain progress lines,
no bar redraws, each log line once, no noise, stdout ending with the summary of result.json, and the
event file read back with TensorBoard's own reader holding the same metrics and hyperparameters."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lora_lab.tracking.base import flatten

ROOT = Path(__file__).resolve().parents[2]
TINY = ["debug=tiny", "task.train_size=64", "task.val_size=32", "task.test_size=32", "task.batch_size=16",
        "trainer.max_steps=8", "trainer.max_epochs=-1", "trainer.val_check_interval=4", "trainer.check_val_every_n_epoch=null",
        "trainer.log_every_n_steps=2", "progress.every_n_steps=2", "optim.lr=1e-2"]


def run_cli(tmp_path, *args):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def tensorboard_events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    return scalars, hparams


@pytest.mark.real
def test_run_prints_progress_then_summary_and_tensorboard_holds_the_record(tmp_path):
    proc = run_cli(tmp_path, "train", *TINY, "logger=tensorboard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    best, test = record["metrics"]["best_val"], record["metrics"]["test"]

    # stdout ends with the summary, every value equal to result.json
    assert proc.stdout.rstrip("\n").splitlines()[-6:] == [
        f"run success: {record['run_name']}",
        f"  best val   accuracy {best['val/accuracy']:.4f} at step {best['step']}",
        f"  test       accuracy {test['test/accuracy']:.4f}",
        f"  trainable  {record['params']['trainable_params']:,} parameters",
        f"  wall time  {round(record['wall_time_s'])} s ({record['wall_time_s']:.1f} s)",
        f"  result     {Path(record['run_dir']) / 'result.json'}",
    ]
    # plain lines in a pipe: one every 2 steps, one per validation, no carriage-return redraws
    output = proc.stdout + proc.stderr
    assert "\r" not in output
    steps = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("step ")]
    assert steps == ["2/8", "4/8", "6/8", "8/8"]
    vals = [ln for ln in proc.stdout.splitlines() if ln.startswith("val   step ")]
    assert [ln.split(":")[0] for ln in vals] == ["val   step 4", "val   step 8"]
    # each line once, no noise
    lines = [ln.split("] - ", 1)[-1] for ln in output.splitlines() if ln.strip()]
    assert max(Counter(lines).values()) == 1, Counter(lines).most_common(3)
    for noise in ("Tip:", "GPU available", "Loading weights", "LOAD REPORT", "LeafSpec"):
        assert noise not in output

    # TensorBoard's own reader: curves, test metrics, summary and hyperparameters equal result.json
    scalars, hparams = tensorboard_events(Path(record["run_dir"]) / "tensorboard")
    for point in record["curve"]:
        assert scalars["val/accuracy"][point["step"]] == pytest.approx(point["val/accuracy"], abs=1e-6)
        assert scalars["val/f1"][point["step"]] == pytest.approx(point["val/f1"], abs=1e-6)
    assert sorted(scalars["train/loss"]) == [2, 4, 6, 8] and sorted(scalars["train/lr"]) == [2, 4, 6, 8]
    assert scalars["test/accuracy"][8] == pytest.approx(test["test/accuracy"], abs=1e-6)
    assert scalars["summary/best_val_accuracy"][8] == pytest.approx(best["val/accuracy"], abs=1e-6)
    assert scalars["summary/best_step"][8] == best["step"]
    assert scalars["summary/trainable_params"][8] == record["params"]["trainable_params"]
    flat = flatten(record["config"])
    assert set(hparams) == set(flat) | {"status"} and hparams["status"] == "success"
    for key, value in flat.items():
        expected = value if isinstance(value, (bool, int, float, str)) else str(value)
        assert hparams[key] == (pytest.approx(expected) if isinstance(expected, float) else expected), key
