"""``lora-lab --version`` and ``lora-lab env``: what a bug report needs about this installation.

``env`` prints one ``key: value`` line each: lora_lab's version and git SHA (+ dirty flag), Python and
platform, CPU model and cores, torch's version and build (CUDA / cuDNN it was built with, whether a GPU is
usable and which), torch threads, and the version of every library a run may use (``-`` for an
optional one that is not installed): `LIBRARIES` plus every requirement of the installed lora_lab's
metadata, extras included (Optuna and SQLAlchemy of ``.[hpo]``, the trackers, bitsandbytes, the
Hydra launcher plugins); the Optuna sweeper plugin is lora_lab's own (``hydra_plugins.lora_lab_sweeper``).
"""

from __future__ import annotations

import os
import platform
import re
from importlib.metadata import PackageNotFoundError, requires, version

from lora_lab.machine import cpu_model, usable_cpus
from lora_lab.results.record import git_state

LIBRARIES = ("transformers", "lightning", "torchmetrics", "hydra-core", "omegaconf", "hydra-submitit-launcher",
             "hydra-joblib-launcher", "datasets", "safetensors", "numpy", "scipy", "pandas", "peft", "bitsandbytes",
             "optuna", "sqlalchemy", "tensorboard", "mlflow", "wandb")


def declared_libraries() -> list[str]:
    """`LIBRARIES`, then every other distribution the installed lora_lab requires (extras included),
    each once (names compared as pip does: case and ``-``/``_`` ignored); torch has its own lines."""
    try:
        declared = [re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0] for req in requires("lora_lab") or []]
    except PackageNotFoundError:  # a clone run from its directory without installing
        declared = []
    names, seen = [], {"torch"}
    for name in (*LIBRARIES, *declared):
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


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
        ("cpu", cpu_model()),
        ("cpus", f"{usable_cpus()} usable of {os.cpu_count()}"),
        *torch_lines(),
    ]
    lines += [(name, package_version(name)) for name in declared_libraries()]
    return lines


def env_text() -> str:
    rows = env_lines()
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in rows)
