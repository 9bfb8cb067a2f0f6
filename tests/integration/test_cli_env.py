"""``lora-lab --version`` and ``lora-lab env`` report this installation as a bug report needs it."""

import os
import re
import signal
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_version_and_env_name_versions_build_and_git_sha():
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith(f"lora-lab {version('lora_lab')} (git {sha[:12]}")
    proc = cli("env")
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    env = {k.rstrip(":").strip(): v.strip() for k, v in env.items()}
    assert env["git sha"].split()[0] == sha
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout
    assert env["cpu"] == next(ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name:"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    assert env["cpus"].startswith(f"{nproc} usable of ")
    assert env["torch"] == torch.__version__
    assert env["torch cuda build"] == (torch.version.cuda or "none (CPU build)")
    assert env["cuda available"].startswith(str(torch.cuda.is_available()))
    assert env["transformers"] == version("transformers") and env["lightning"] == version("lightning")
    assert env["mlflow"] == version("mlflow") and env["wandb"] == version("wandb")
    for name in ("optuna", "sqlalchemy", "hydra-submitit-launcher", "hydra-joblib-launcher", "scipy", "bitsandbytes", "peft", "tensorboard"):
        assert env[name] == version(name), name
    for req in requires("lora_lab") or []:  # every declared dependency and extra of the installed package
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        assert any(k.replace("_", "-").lower() == name.replace("_", "-").lower() for k in env) or name == "torch", name


@pytest.mark.parametrize("args", [("env",), ("--help",), ("--version",)])
def test_output_into_a_reader_that_has_gone_ends_quietly_with_the_sigpipe_status(args):
    """``lora-lab env | head -1``: the reader closes the pipe before everything is written. The command
    ends with 128 + SIGPIPE, as a shell tool would, and prints no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 128 + signal.SIGPIPE and proc.stderr == ""
