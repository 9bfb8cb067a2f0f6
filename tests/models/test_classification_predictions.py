"""Classification runs save per-example predictions (``predictions_<split>.jsonl``) at the selected
evaluation: ids cover the split once, and the accuracy recomputed from the file is the accuracy the
run reports (validation: ``metrics.best_val``; test: ``metrics.test``), so the report can pair runs
example by example."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # one tiny training run in a subprocess (~15 s)
def test_predictions_match_the_reported_metrics(tmp_path):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    overrides = ["debug=tiny", "task.train_size=64", "task.val_size=40", "task.test_size=30", "trainer.max_epochs=2", "task.batch_size=16",
                 "task.eval_batch_size=16"]
    proc = subprocess.run([sys.executable, "-m", "lora_lab.train", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result_path,) = (tmp_path / "runs").rglob("result.json")
    record = json.loads(result_path.read_text())
    for split, n, reported in (("val", 40, record["metrics"]["best_val"]["val/accuracy"]), ("test", 30, record["metrics"]["test"]["test/accuracy"])):
        rows = _rows(result_path.parent / f"predictions_{split}.jsonl")
        assert sorted(r["id"] for r in rows) == list(range(n))
        assert all(r["label"] in (0, 1) and r["pred"] in (0, 1) for r in rows)
        assert sum(r["label"] == r["pred"] for r in rows) / n == pytest.approx(reported, abs=1e-6)  # metrics are float32
