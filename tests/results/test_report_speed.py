"""The report reads 5,000 result.json files (full resolved configs, 20-point curves) in under 10 s,
start to finish as a user runs it (a fresh ``lora-lab report`` process, plots included)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lora_lab.config.compose import CONF_DIR
from tests.results.fake_results import make_record

ROOT = Path(__file__).resolve().parents[2]
N = 5000


@pytest.mark.slow
def test_report_on_5000_results_under_10_seconds(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        full = OmegaConf.to_container(compose("train", overrides=["study=speed"]), resolve=True)
    root = tmp_path / "runs"
    n = 0
    for method in ("lora", "dora", "adalora", "pissa"):
        for task in ("glue_sst2", "glue_rte", "glue_mrpc", "glue_cola", "synthetic"):
            for r in (1, 2, 4, 8, 16, 64):
                for lr in (2.5e-4, 5e-4, 1e-3):
                    for seed in range(14):
                        if n == N:
                            continue
                        record = make_record(task=task, method=method, seed=seed, lr=lr, r=r, val=0.6 + 0.001 * (n % 97),
                                             test=0.6, curve=[0.5 + 0.01 * i for i in range(20)], study="speed")
                        record["config"] = {**full, **record["config"], "task": {**full["task"], **record["config"]["task"]},
                                            "adapter": {**full["adapter"], **record["config"]["adapter"]}}
                        run_dir = root / "speed" / record["run_name"]
                        run_dir.mkdir(parents=True)
                        (run_dir / "result.json").write_text(json.dumps(record, indent=2))
                        n += 1
    assert n == N
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", "report", str(root), "--out", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Trials: {N} ({N} success" in proc.stdout
    assert proc.stdout.count("\n| ") == 4 * 6 + 1  # header + method x rank rows
    assert elapsed < 10.0, f"report took {elapsed:.1f} s"
