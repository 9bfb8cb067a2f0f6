"""The versioned, self-describing ``result.json`` every run writes into its run directory.

Schema (``schema_version`` 1): ``status`` (``success`` | ``failed`` | ``cancelled`` | ``running``),
``reason`` (for failures), ``run_dir``, ``run_name``, ``config`` (fully resolved), ``overrides``,
``params`` (trainable / total / adapter / head counts and the adapted modules), ``metrics``
(``best_val`` = the evaluation with the best primary validation metric, ``final`` = the last
evaluation, ``test`` = test split at the best-validation adapter state where the task has labels),
``primary_metric``, ``baselines`` (majority-class accuracy; for generation ``untrained_val``, the
model's validation before training), ``data`` (split sizes, skipped training examples), ``curve``
(one entry per evaluation), ``method_summary``, ``wall_time_s``, ``cpu_time_s`` (process CPU seconds of the trial), ``torch_threads``, ``peak_memory_mb``, ``versions`` and ``git``
(SHA + dirty flag), ``job`` (host, pid, SLURM job / array task of the attempt that wrote it),
``interruptions`` (one entry per SLURM stop the run survived: signal, step,
job id). Written atomically (`lora_lab.atomic`: temp file in the same directory, fsync, ``os.replace``),
so a reader sees the old file or the new one, never half of one; `read_result` opens only the final
name, never a temp file a killed writer left behind.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from lora_lab.atomic import atomic_write_text  # re-exported: callers import it from here

SCHEMA_VERSION = 1
RESULT_NAME = "result.json"


def write_result(run_dir: str | os.PathLike, record: dict) -> Path:
    record = {"schema_version": SCHEMA_VERSION, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
    path = Path(run_dir) / RESULT_NAME
    atomic_write_text(path, json.dumps(record, indent=2, default=_jsonable, allow_nan=True))
    return path


def read_result(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / RESULT_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("lora_lab", "torch", "transformers", "lightning", "torchmetrics", "hydra-core", "datasets", "safetensors", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def git_state(repo: str | os.PathLike | None = None) -> dict:
    repo = Path(repo or Path(__file__).resolve().parents[2])
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha or None, "dirty": bool(dirty) if sha else None}


def peak_memory_mb() -> dict[str, float]:
    import torch

    out = {"cpu_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if sys.platform == "darwin":
        out["cpu_max_rss_mb"] /= 1024.0
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out
