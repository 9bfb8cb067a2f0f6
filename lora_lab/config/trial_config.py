"""One trial's configuration, checked and parsed into the typed schemas once.

Every input error is found before anything is written or any model is loaded, and raised as one
`ConfigError` line that names the key, the bad value and the allowed values. Composing the config as
``lora-lab train`` would (Hydra's failures as one line) is `lora_lab.config.compose`; here, `parse`
checks every group (adapter, task + its local data files, backbone, optim, trainer, seed, resume,
progress, the logger nodes and their tracker packages) and returns a `TrialConfig`: the typed schemas,
the resolved dict and the run-control options. The trial (`lora_lab.run.trial`), the sweep planner
(`lora_lab.sweeps.expand`) and the Hydra task (`lora_lab.run.hydra_task`) all call it.

Imports go one way: ``train -> run -> config``; this module imports neither of the other two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lora_lab.adapters import AdapterConfig, parse_config
from lora_lab.analysis.snapshot_schedule import analysis_options
from lora_lab.tasks.base import TaskConfig
from lora_lab.tasks.registry import parse_task_config
from lora_lab.errors import ConfigError, checked_number, did_you_mean
from lora_lab.models.backbones import BackboneConfig, parse_backbone_config
from lora_lab.models.optim import OptimConfig, parse_optim
from lora_lab.path_names import check_run_path_names
from lora_lab.tracking import split_logger_nodes
from lora_lab.tracking.settings import check_tracker_settings
from lora_lab.config.trainer_checks import check_accelerator, check_debug_modes, check_trainer_keys, check_val_check_interval
from lora_lab.config.backbone_fit import check_backbone_fits
from lora_lab.config.compose import container
from lora_lab.results.trial_identity import trial_identity

RESUME_KEYS = ("every_n_minutes",)
#: Lightning precisions that keep adapter weights in fp32 (the "-true" half precisions cast the whole
#: module, adapters included, to 16 bits)
ALLOWED_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "16-mixed")


@dataclass
class TrialConfig:
    """A validated trial: the typed schemas plus the resolved config they came from."""

    adapter: AdapterConfig
    task: TaskConfig
    backbone: BackboneConfig
    optim: OptimConfig
    resolved: dict = field(repr=False)
    seed: int = 0
    force: bool = False
    resume: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)  # `progress_options`
    analysis: dict = field(default_factory=dict)  # `lora_lab.analysis.snapshot_schedule.analysis_options`

    @property
    def identity(self) -> dict:
        return trial_identity(self.resolved)


# ------------------------------------------------------------------------------------------ parse




def check_precision(precision) -> None:
    """Adapter weights stay fp32: bf16 autocast for the frozen base only (`docs/errors.md`)."""
    if precision is not None and str(precision) not in ALLOWED_PRECISIONS:
        raise ConfigError("trainer.precision", f"{precision!r} would cast the adapter weights to 16 bits; allowed: {', '.join(ALLOWED_PRECISIONS)} (bf16-mixed: frozen base in bf16 under autocast, adapters fp32)")


def check_trainer(trainer: dict, test_after_fit: bool = True) -> None:
    """Lightning accepts (or crashes later on) values that cannot train, or that train something the
    record would misreport: refuse them up front (`lora_lab.config.trainer_checks`)."""
    check_trainer_keys(trainer)
    check_precision(trainer.get("precision"))
    check_debug_modes(trainer, test_after_fit)
    if trainer.get("num_sanity_val_steps") is not None:
        checked_number("trainer.num_sanity_val_steps", trainer["num_sanity_val_steps"], integer=True, minimum=0, allow=(-1,))
    for key in ("min_steps", "min_epochs"):
        if trainer.get(key) is not None:
            checked_number(f"trainer.{key}", trainer[key], integer=True, minimum=0, allow=(-1,))
    if trainer.get("deterministic") not in (None, True, False, "warn"):
        raise ConfigError("trainer.deterministic", f"{trainer['deterministic']!r}; allowed: true, false, warn")
    for key in ("detect_anomaly", "benchmark", "inference_mode", "barebones", "sync_batchnorm", "use_distributed_sampler",
                "enable_checkpointing", "enable_progress_bar", "enable_model_summary"):
        if trainer.get(key) is not None and not isinstance(trainer[key], bool):
            raise ConfigError(f"trainer.{key}", f"must be true or false, got {trainer[key]!r}")
    if "accumulate_grad_batches" in trainer:
        checked_number("trainer.accumulate_grad_batches", trainer["accumulate_grad_batches"], integer=True, minimum=1)
    if "max_steps" in trainer:
        checked_number("trainer.max_steps", trainer["max_steps"], integer=True, minimum=1, allow=(-1,))
    if "max_epochs" in trainer:
        checked_number("trainer.max_epochs", trainer["max_epochs"], integer=True, minimum=1, allow=(-1, None))
    if trainer.get("max_steps") == -1 and trainer.get("max_epochs") in (-1,):
        raise ConfigError("trainer.max_epochs", "-1 with trainer.max_steps=-1 never stops; set one of them")
    for key in ("log_every_n_steps", "check_val_every_n_epoch", "num_nodes"):
        if key in trainer and trainer[key] is not None:
            checked_number(f"trainer.{key}", trainer[key], integer=True, minimum=1)
    check_val_check_interval(trainer.get("val_check_interval"))
    if trainer.get("gradient_clip_val") is not None:
        checked_number("trainer.gradient_clip_val", trainer["gradient_clip_val"], minimum=0)


def resume_options(cfg) -> dict:
    raw = container(cfg.get("resume")) if isinstance(cfg, DictConfig) else dict(cfg.get("resume") or {})
    for key in raw:
        if key not in RESUME_KEYS:
            raise ConfigError(f"resume.{key}", f"unknown key{did_you_mean(key, RESUME_KEYS)}; allowed: {', '.join(RESUME_KEYS)}")
    minutes = raw.get("every_n_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise ConfigError("resume.every_n_minutes", f"must be null or a positive number, got {minutes!r}")
    return raw


_CHECKED_DATA: set[str] = set()


def check_local_data(task: TaskConfig) -> None:
    """A task reading local files reads them now: a missing, malformed or empty file is one line
    before any model loads (Hub datasets are checked when the trial loads them). Each distinct task
    config is read once per process (a sweep plan checks many trials of one task)."""
    data_dir = getattr(task, "data_dir", None)
    if not (data_dir or getattr(task, "files", None)) or repr(task) in _CHECKED_DATA:  # files: text_classification/generation
        return
    for split, examples in task.load_examples().items():
        if len(examples) == 0:
            raise ConfigError("task.data_dir", f"{data_dir}: split {split!r} has no examples (a header without rows?)")
    _CHECKED_DATA.add(repr(task))


def check_backbone(backbone: BackboneConfig) -> None:
    """A local model path that does not exist is one line, not a 78-line loader traceback."""
    for key in ("name", "tokenizer"):
        spec = getattr(backbone, key)
        if backbone.random_init is not None and key == "name":
            continue
        if isinstance(spec, str) and spec.startswith(("/", "./", "../", "~")) and not Path(os.path.expanduser(spec)).exists():
            raise ConfigError(f"backbone.{key}", f"{spec} does not exist (a local model directory, a Hub id org/name or pypi:<package>)")


def check_loggers(loggers) -> None:
    """Every ``logger`` node is a mapping; each tracker's package is importable and its settings are valid
    (`lora_lab.tracking.settings`; a missing package or a bad setting is one
    line naming ``logger.<name>.tracker`` before anything runs, not an ImportError after the model loaded)."""
    for name, node in split_logger_nodes(loggers or {})[1].items():
        check_tracker_settings(name, node)  # loads the backend class first: an unknown tracker or a missing package is its line


#: numpy's seed range (``np.random.seed``, which `lightning.seed_everything` calls): [0, 2**32 - 1]
MAX_SEED = 2**32 - 1


PROGRESS_MODES = ("auto", "bar", "lines", "none")
PROGRESS_KEYS = ("mode", "every_n_steps")


def progress_options(raw: dict | None) -> dict:
    """Validated ``progress:`` config: ``mode`` in `PROGRESS_MODES`, ``every_n_steps`` a positive int."""
    raw = dict(raw or {})
    for key in raw:
        if key not in PROGRESS_KEYS:
            raise ConfigError(f"progress.{key}", f"unknown key; allowed: {', '.join(PROGRESS_KEYS)}")
    mode = raw.get("mode", "auto")
    if mode not in PROGRESS_MODES:
        raise ConfigError("progress.mode", f"got {mode!r}; allowed: {', '.join(PROGRESS_MODES)}")
    every = raw.get("every_n_steps", 10)
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ConfigError("progress.every_n_steps", f"must be a positive integer, got {every!r}")
    return {"mode": mode, "every_n_steps": every}


def check_seed(seed) -> int:
    seed = checked_number("seed", seed, integer=True, minimum=0)
    if seed > MAX_SEED:
        raise ConfigError("seed", f"must be an integer in [0, {MAX_SEED}] (numpy's seed range), got {seed!r}")
    return seed


def check_metric_list(task: dict) -> None:
    """``task.metrics: []`` leaves nothing to select or report."""
    metrics = task.get("metrics")
    if metrics is not None and (not isinstance(metrics, (list, tuple)) or len(metrics) == 0):
        raise ConfigError("task.metrics", f"must be null (the task's default metrics) or a non-empty list of metric names, got {metrics!r}")


def parse(cfg: DictConfig, *, read_data: bool = True, here: bool = True) -> TrialConfig:
    """Check every group of ``cfg`` and parse it into the typed schemas (raises `ConfigError`).

    ``here``: the trial runs on this machine (``lora-lab train``, a sweep job), so its accelerator
    must exist here; a sweep planner on a SLURM login node passes False."""
    resolved = container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg)
    seed = check_seed(resolved.get("seed", 0))
    adapter = parse_config(resolved.get("adapter") or {})
    check_metric_list(resolved.get("task") or {})
    task = parse_task_config(resolved.get("task") or {})
    backbone = parse_backbone_config(resolved.get("backbone") or {})
    check_backbone(backbone)
    check_run_path_names(resolved)
    optim = parse_optim(resolved.get("optim") or {})
    check_trainer(resolved.get("trainer") or {}, test_after_fit=bool(resolved.get("test_after_fit", True)))
    if here:
        check_accelerator(resolved.get("trainer") or {})
    resume = resume_options(resolved)
    progress = progress_options(resolved.get("progress"))
    analysis = analysis_options(resolved.get("analysis"))
    check_loggers(resolved.get("logger"))
    force = resolved.get("force", False)
    if not isinstance(force, bool):
        raise ConfigError("force", f"must be true or false, got {force!r}")
    if read_data:
        check_local_data(task)
    check_backbone_fits(task, backbone, adapter)
    return TrialConfig(adapter, task, backbone, optim, resolved, seed, force, resume, progress, analysis)


def validate(cfg: DictConfig, here: bool = False):
    """``(adapter, task, backbone)`` of a checked config (the sweep planner's and tests' view; the
    accelerator is checked where the trial runs unless ``here``)."""
    trial = parse(cfg, here=here)
    return trial.adapter, trial.task, trial.backbone
