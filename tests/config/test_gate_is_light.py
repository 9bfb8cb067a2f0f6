"""``lora-lab train`` answers a bad command line from `lora_lab.run.gate`, which imports no training code
(`lora_lab.run.trial`, `lora_lab.train`): the error costs a config compose, never a model load.
(Lightning itself still comes in through the task registry, whose families hold their Lightning
data modules: `lora_lab.config.trial_config` -> `lora_lab.tasks.registry`.)"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from lora_lab.cli import main
try:
    main(["train", "debug=tiny", "adapter.r=0"])
except SystemExit as stop:
    print("exit", stop.code)
print("loaded", sorted(m for m in ("lora_lab.run.trial", "lora_lab.train", "lora_lab.run.launch_ranks") if m in sys.modules))
"""


def test_a_bad_train_command_errors_before_the_trial_is_imported(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines() == ["error: adapter.r: must be a positive integer, got 0"], proc.stderr
    assert proc.stdout.split("\n")[:2] == ["exit 2", "loaded []"]
    assert not (tmp_path / "runs").exists()


MODULE_PROBE = """
import runpy, sys
sys.argv = ["lora_lab.train", "debug=tiny", "adapter.r=0"]
try:
    runpy.run_module("lora_lab.train", run_name="__main__")
except SystemExit as stop:
    print("exit", stop.code)
print("loaded", sorted(m for m in ("lora_lab.run.trial", "lora_lab.run.hydra_task", "lora_lab.run.launch_ranks") if m in sys.modules))
"""


def test_python_m_lora_lab_train_errors_before_the_trial_is_imported_too(tmp_path):
    """``python -m lora_lab.train`` (what DDP ranks and the docs' equivalent run) is as light as the CLI:
    the Hydra task and the trial code load only after the gate accepted the command line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", MODULE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines() == ["error: adapter.r: must be a positive integer, got 0"], proc.stderr
    assert proc.stdout.split("\n")[:2] == ["exit 2", "loaded []"]
    assert not (tmp_path / "runs").exists()
