"""The versioned, self-describing ``result.json`` every run writes into its run directory, as one
typed record: `ResultRecord` is the only writer and reader of that file (the trial writes it; the
report, the sweep status and the trial's own identity check read it).

Schema (``schema_version`` 2; version 1 files read the same, without ``exported_state``): ``status``
(``success`` | ``failed`` | ``cancelled`` | ``running`` | ``pruned``), ``reason`` (for failures), ``run_dir``,
``run_name``, ``study``, ``config`` (fully resolved), ``overrides``, ``params`` (trainable / total /
adapter / head counts and the adapted modules), ``metrics`` (``best_val`` = the evaluation with the
best primary validation metric, ``final`` = the last evaluation, ``test`` = test split at the
best-validation adapter state where the task has labels), ``exported_state`` (which adapter state
``adapter/`` holds: ``best_val`` -- the scored one -- or ``final``; the other is in ``adapter_last/``),
``primary_metric``, ``task_spec``, ``baselines`` (majority-class accuracy; for generation
``untrained_val``, the model's validation before training), ``data`` (split sizes, skipped training
examples), ``curve`` (one entry per evaluation), ``method_summary``, ``quantization`` (the frozen base's, if quantised), ``optimizer_steps``,
``precision`` (what Lightning ran, after its own substitutions), ``wall_time_s`` (summed over every
process that worked on the trial: ``attempts``, one entry per process with host, pid, start, its wall
seconds and how it ended -- ``success``, ``failed``, ``cancelled``, ``stopped: <signal>`` or ``killed``),
``cpu_time_s`` (process CPU seconds of the last attempt), ``torch_threads``,
``peak_memory_mb``, ``versions`` and ``git`` (SHA + dirty flag), ``job`` (host, pid, SLURM job /
array task of the attempt that wrote it), ``interruptions`` (one entry per SLURM stop the run
survived: signal, step, job id), ``trackers`` (each chosen tracker's ``status``: ``ok``, or
``failed`` with ``during`` and ``error``: a tracker fault never fails the run), ``snapshots`` (the adapter snapshots on disk, ``[{step, path}]``,
when ``analysis.snapshot_*`` asked for them). ``success`` means the
optimizer stepped and the reported validation (and, where expected, test) metrics exist. Keys this version does not know are kept in ``extra`` and written
back. Written atomically (`lora_lab.atomic`: temp file in the same directory, fsync, ``os.replace``),
so a reader sees the old file or the new one, never half of one; readers open only the final name,
never a temp file a killed writer left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lora_lab.atomic import atomic_write_text  # re-exported: callers import it from here

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RESULT_NAME = "result.json"
PLAN_NAME = "sweep_plan.json"  # a sweep dir's list of planned trials (`lora_lab.sweeps.launch`)
STATUSES = ("success", "failed", "cancelled", "running", "pruned")  # pruned: stopped by an Optuna pruner (`lora_lab.pruning`)


class MalformedResult(ValueError):
    """A result.json whose fields do not have the types this schema writes (or a status it does not know)."""


class UnknownSchema(MalformedResult):
    """A result.json of a ``schema_version`` this code cannot read: never taken as finished, never
    overwritten without ``force=true`` (`lora_lab.run.gate.decide`), ``corrupt`` in the report."""


_OBJECTS = ("config", "params", "metrics", "baselines", "data", "method_summary", "versions", "git", "job", "task_spec", "peak_memory_mb",
            "trackers")
_STRINGS = ("status", "reason", "run_dir", "run_name", "primary_metric", "written_at", "exported_state", "precision")
_LISTS = ("overrides", "curve", "interruptions", "snapshots", "attempts")
_KIND_NAMES = {dict: "an object", str: "a string", list: "a list"}


@dataclass
class ResultRecord:
    """One trial's result (see the module docstring for every field)."""

    status: str = "running"
    reason: str | None = None
    run_dir: str | None = None
    run_name: str | None = None
    study: str | None = None
    config: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    exported_state: str | None = None
    primary_metric: str | None = None
    task_spec: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    method_summary: dict = field(default_factory=dict)
    quantization: dict | None = None  # the frozen base's quantisation (None: not quantised)
    optimizer_steps: int | None = None
    precision: str | None = None  # the precision Lightning ran (trainer.precision after its substitutions)
    wall_time_s: float | None = None  # summed over every process of the trial (attempts)
    cpu_time_s: float | None = None
    torch_threads: int | None = None
    peak_memory_mb: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    git: dict = field(default_factory=dict)
    job: dict = field(default_factory=dict)
    interruptions: list = field(default_factory=list)
    attempts: list = field(default_factory=list)  # one entry per process (lora_lab.resume.attempts)
    trackers: dict = field(default_factory=dict)  # tracker name -> {"status": "ok" | "failed", "during", "error"}
    snapshots: list = field(default_factory=list)  # adapter snapshots kept: [{"step", "path"}] (`lora_lab.analysis.snapshots`)
    written_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)  # keys this schema version does not know, kept as written

    @classmethod
    def from_dict(cls, raw) -> "ResultRecord":
        """Parse a loaded result.json; `MalformedResult` names the first field of the wrong type."""
        if not isinstance(raw, dict):
            raise MalformedResult(f"malformed result.json: top level is {type(raw).__name__}, not an object")
        checks = [(key, raw.get(key), dict) for key in _OBJECTS] + [(key, raw.get(key), str) for key in _STRINGS]
        checks += [(key, raw.get(key), list) for key in _LISTS]
        for parent, keys in (("config", ("task", "adapter", "optim")), ("metrics", ("best_val", "test", "final"))):
            node = raw.get(parent) if isinstance(raw.get(parent), dict) else {}
            checks += [(f"{parent}.{key}", node.get(key), dict) for key in keys]
        for key, value, kind in checks:
            if value is not None and not isinstance(value, kind):
                raise MalformedResult(f"malformed result.json: '{key}' is {type(value).__name__}, not {_KIND_NAMES[kind]}")
        version = raw.get("schema_version", 1)
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise UnknownSchema(f"result.json has schema_version {version!r}; this lora_lab reads {', '.join(map(str, READABLE_VERSIONS))} "
                                "(written by another lora_lab version: read it with that one)")
        if raw.get("status", "running") not in STATUSES:
            raise MalformedResult(f"malformed result.json: unknown status {raw['status']!r}; known: {', '.join(STATUSES)}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @property
    def finished(self) -> bool:
        return self.status == "success"

    @classmethod
    def start(cls, resolved: dict, run_dir: str | os.PathLike, overrides: list[str], interruptions: list[dict] = ()) -> "ResultRecord":
        """The ``running`` record of a trial as it starts: its resolved config, where and by whom."""
        return cls(run_dir=str(run_dir), run_name=resolved.get("run_name"), study=resolved.get("study"), config=resolved,
                   overrides=list(overrides), versions=package_versions(), git=git_state(), job=job_info(),
                   interruptions=list(interruptions))

    def succeed(self, module, trainer, datamodule, spec, *, final: dict, test: dict, method_summary: dict,
                exported_state: str | None) -> "ResultRecord":
        """Fill the result fields of a finished trial from what the fit left: the Lightning ``module``
        (attach report, curve, selected evaluation, baselines, quantisation), the ``trainer`` (optimizer
        steps), the ``datamodule`` (split sizes, skipped examples) and the task ``spec``."""
        self.status = "success"
        self.task_spec = spec.__dict__
        self.primary_metric = spec.primary_key
        self.params = module.report.to_dict()
        self.metrics = {"best_val": module.best or {}, "final": final, "test": test}
        self.exported_state = exported_state
        self.baselines = module.baselines(datamodule)
        self.data = {"sizes": {k: len(v) for k, v in datamodule.splits.items()}, "skipped": dict(getattr(datamodule, "skipped", {}))}
        self.curve = module.curve
        self.method_summary = method_summary
        self.quantization = module.quantization
        self.optimizer_steps = int(trainer.global_step)
        return self

    def account(self, wall_time_s: float, started_cpu: float) -> "ResultRecord":
        """The costs: ``wall_time_s`` (summed over the trial's attempts by the caller), the CPU seconds
        of this process since ``started_cpu`` (``time.process_time()`` at its start; all threads, so it
        does not depend on the machine's load as wall time does), torch's threads and peak memory."""
        self.wall_time_s = wall_time_s
        self.cpu_time_s = time.process_time() - started_cpu
        self.torch_threads = _torch_threads()
        self.peak_memory_mb = peak_memory_mb()
        return self


def write_result(run_dir: str | os.PathLike, record: ResultRecord | dict) -> Path:
    """Write ``run_dir/result.json`` atomically, stamped with the schema version and the time."""
    if isinstance(record, dict):
        record = ResultRecord.from_dict({k: v for k, v in record.items() if k != "schema_version"})
    record.schema_version, record.written_at = SCHEMA_VERSION, time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = Path(run_dir) / RESULT_NAME
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2, default=_jsonable, allow_nan=True))
    return path


def load_record(path: str | os.PathLike) -> ResultRecord:
    """Parse one result.json file (`OSError`, `ValueError` or `MalformedResult` when it cannot be)."""
    return ResultRecord.from_dict(json.loads(Path(path).read_bytes()))


def read_record(run_dir: str | os.PathLike) -> ResultRecord | None:
    """The run dir's record, or None where it has no result.json."""
    path = Path(run_dir) / RESULT_NAME
    return load_record(path) if path.is_file() else None


def read_result(run_dir: str | os.PathLike) -> dict | None:
    """The run dir's record as a plain dict (None without one)."""
    record = read_record(run_dir)
    return None if record is None else record.to_dict()


def record_status(run_dir: str | os.PathLike) -> str:
    """``new`` (no result.json), ``corrupt`` (unreadable) or the recorded status."""
    try:
        record = read_record(run_dir)
    except (OSError, ValueError):
        return "corrupt"
    return "new" if record is None else record.status


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def job_info() -> dict:
    """Where this attempt runs: host, pid and the SLURM job (array job + task) if any."""
    env = os.environ
    array = "_".join(filter(None, (env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")))) or None
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": env.get("SLURM_JOB_ID"), "slurm_array_task": array,
            "slurm_restart_count": env.get("SLURM_RESTART_COUNT")}


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")  # loaded by any trial; the record module itself never imports it
    return torch.get_num_threads() if torch is not None else None


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
