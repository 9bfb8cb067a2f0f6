"""``lora-lab --version`` and ``lora-lab env``: what a bug report needs about this installation.

``env`` prints one ``key: value`` line each: lora_lab's version and git SHA (+ dirty flag), Python and
platform, CPU count, torch's version and build (CUDA / cuDNN it was built with, whether a GPU is
usable and which), torch threads, and the versions of the libraries a run depends on (``-`` for an
optional one that is not installed: peft, bitsandbytes, tensorboard, mlflow, wandb).
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from lora_lab.results.record import git_state

LIBRARIES = ("transformers", "lightning", "torchmetrics", "hydra-core", "omegaconf", "datasets", "safetensors", "numpy",
             "pandas", "peft", "bitsandbytes", "tensorboard", "mlflow", "wandb")


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def version_line() -> str:
    git = git_state()
    sha = f" (git {git['sha'][:12]}{', dirty' if git['dirty'] else ''})" if git.get("sha") else ""
    return f"lora-lab {package_version('lora_lab')}{sha}"


def torch_lines() -> list[tuple[str, str]]:
    import torch

    cuda = torch.cuda.is_available()
    devices = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else "none"
    return [
        ("torch", torch.__version__),
        ("torch cuda build", str(torch.version.cuda or "none (CPU build)")),
        ("torch cudnn", str(torch.backends.cudnn.version()) if cuda else "-"),
        ("cuda available", f"{cuda} ({devices})"),
        ("bf16 on cuda", str(cuda and torch.cuda.is_bf16_supported())),
        ("torch threads", str(torch.get_num_threads())),
    ]


def env_lines() -> list[tuple[str, str]]:
    git = git_state()
    lines = [
        ("lora_lab", package_version("lora_lab")),
        ("git sha", f"{git.get('sha') or '-'}{' (dirty)' if git.get('dirty') else ''}"),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("platform", platform.platform()),
        ("cpus", str(os.cpu_count())),
        *torch_lines(),
    ]
    lines += [(name, package_version(name)) for name in LIBRARIES]
    return lines


def env_text() -> str:
    rows = env_lines()
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in rows)
