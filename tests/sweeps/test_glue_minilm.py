"""The GLUE MiniLM study's command (sweeps/glue_minilm.sh) in dry-run mode: every one of its 96
trials is listed under runs/glue_minilm with the local data dir, and the report command it would
run reads the kept records (results/glue_minilm_records) and writes results/glue_minilm against LoRA,
without cost columns. The study itself is not run in CI."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # expands and validates 96 trial configs (~10 s CPU)
def test_dry_run_lists_every_trial_and_the_report_command(tmp_path):
    data = tmp_path / "glue_data"
    tiny = {  # two rows per split in each task's original layout (the plan reads the files)
        "CoLA": "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n",
        "MRPC": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA b.\tA b c.\n0\t3\t4\tC d.\tE f.\n",
        "RTE": "index\tsentence1\tsentence2\tlabel\n0\tA b.\tA.\tentailment\n1\tC d.\tE.\tnot_entailment\n",
        "STS-B": "index\tsentence1\tsentence2\tscore\n0\tA b.\tA b.\t5.0\n1\tC d.\tE f.\t0.5\n",
    }
    for task, text in tiny.items():
        (data / task).mkdir(parents=True)
        for split in ("train", "dev"):
            (data / task / f"{split}.tsv").write_text(text)
    env = {**os.environ, "DRY_RUN": "1", "LORA_LAB_RUNS": str(tmp_path / "runs"), "LORA_LAB_CLI": str(Path(sys.executable).parent / "lora-lab"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "sweeps/glue_minilm.sh", str(data)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = re.findall(r"\[\s*new\] (\S+)", proc.stdout)
    assert len(trials) == len(set(trials)) == 96
    for task in ("glue_cola", "glue_mrpc", "glue_rte", "glue_stsb"):
        for method in ("lora-r8-a16-kaiming", "dora-r8-a16-kaiming", "adalora-r12-a8-adalora", "lora-r8-a16-pissa"):
            assert sum(f"glue_minilm/{task}/minilm/{method}-" in t for t in trials) == 6  # 2 lr scales x 3 seeds
    assert f"report: {env['LORA_LAB_CLI']} report results/glue_minilm_records --out results/glue_minilm --baseline lora" in proc.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("result.json"))


def test_missing_data_dir_is_one_line(tmp_path):
    proc = subprocess.run(["bash", "sweeps/glue_minilm.sh", str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: GLUE_DATA: {tmp_path / 'nope'} is not a directory"
