"""One trial's configuration: composed, checked and parsed into the typed schemas once.

Every input error is found here, before anything is written or any model is loaded, and raised as
one `ConfigError` line that names the key, the bad value and the allowed values:

- `compose` builds the config as ``lora-lab train`` would and turns Hydra's multi-line failures
  (a typo'd key without ``+``, an unknown group option, a resolver error such as ``lr_scale=-1``)
  into one line, with a did-you-mean among the allowed keys;
- `parse` checks every group (adapter, task + its local data files, backbone, optim, trainer, seed,
  resume, progress, the logger nodes and their tracker packages) and returns a `TrialConfig`: the
  typed schemas, the resolved dict and the run-control options. The trial (`lora_lab.run.trial`), the sweep planner (`lora_lab.sweeps.expand`) and the Hydra
  entry point (`lora_lab.train`) all call it.

Imports go one way: ``train -> trial -> config``; this module imports neither of the other two.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from lora_lab.adapters import AdapterConfig, parse_config
from lora_lab.analysis.snapshot_schedule import analysis_options
from lora_lab.tasks.base import TaskConfig
from lora_lab.tasks.registry import parse_task_config
from lora_lab.errors import ConfigError, checked_number, did_you_mean
from lora_lab.models.backbones import BackboneConfig, parse_backbone_config
from lora_lab.models.optim import OptimConfig, parse_optim
from lora_lab.path_names import check_run_path_names
from lora_lab.resolvers import register_resolvers
from lora_lab.resources import config_dir
from lora_lab.schema_keys import SCHEMA_GROUPS, schema_keys, settable
from lora_lab.tracking import load_tracker_class, split_logger_nodes
from lora_lab.tracking.settings import check_tracker_settings
from lora_lab.trainer_checks import check_accelerator, check_debug_modes, check_trainer_keys, check_val_check_interval
from lora_lab.backbone_fit import check_backbone_fits

CONF_DIR = str(config_dir())
register_resolvers()

RESUME_KEYS = ("every_n_minutes",)
#: how to run a trial, not which trial: ignored when matching results (a rerun with another progress
#: display or other trackers is the same trial)
RUN_CONTROL_KEYS = ("force", "resume", "progress", "logger", "analysis", "optuna_trial")
#: where a trial writes, not what it computes: a copied or moved runs dir, or ``runs`` spelled
#: ``runs/`` or absolute, holds the same trials
LOCATION_KEYS = ("paths",)
#: inputs whose whole effect the resolved config already holds: ``method_lr`` (each method's default
#: lr) only matters through ``optim.lr``, so giving a new method its default does not make every
#: finished run of the other methods "a different config"
DERIVED_KEYS = ("method_lr",)

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


def trial_identity(config: dict | None) -> dict | None:
    """The resolved config without run-control, location and derived-only keys: two configs equal
    here are the same trial (what changes the result, not where it is written)."""
    return None if config is None else {k: v for k, v in config.items() if k not in RUN_CONTROL_KEYS + LOCATION_KEYS + DERIVED_KEYS}


def unknown_key(path: str, allowed) -> ConfigError:
    allowed = sorted(str(a) for a in allowed)
    name = path.rsplit(".", 1)[-1]
    return ConfigError(path, f"unknown key{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The `ConfigError` an OmegaConf/Hydra exception wraps (a resolver's error), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def container(node) -> dict:
    if node is None:
        return {}
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception as err:  # noqa: BLE001 -- a resolver's ConfigError comes back as one line
        inner = config_error_in(err)
        if inner is not None:
            raise inner from None
        raise ConfigError("config", " ".join(str(err).split()).split(" full_key:")[0]) from None


# ---------------------------------------------------------------------------------------- compose


def search_dirs(argv: list[str], conf_dir: str | os.PathLike = CONF_DIR) -> list[Path]:
    """``conf_dir`` and the user's config directories that a ``hydra.searchpath=[file://...]`` override
    adds (Hydra's search path: their options extend every group, `lora_lab.resources`)."""
    dirs = [Path(conf_dir)]
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            dirs += [Path(item.strip().strip("'\"")[len("file://"):]) for item in value.strip("[]").split(",")
                     if item.strip().strip("'\"").startswith("file://")]
    return dirs


def unknown_group_choice(argv: list[str], conf_dir: str | os.PathLike = CONF_DIR) -> ConfigError | None:
    """The first ``group=option`` command-line override naming an option that no ``<group>/`` of the
    config search path holds, as a one-line `ConfigError` listing the allowed options (Hydra's own
    message spans ~20 lines)."""
    roots = search_dirs(argv, conf_dir)
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith("hydra") or "." in key or not any((root / key).is_dir() for root in roots):
            continue
        allowed = sorted({p.stem for root in roots for p in (root / key).glob("*.yaml")})
        for option in value.strip("[]").split(","):  # a multirun list names several options; [a,b] selects both
            option = option.strip()
            if option and option != "null" and not any((root / key / f"{option}.yaml").is_file() for root in roots):
                return ConfigError(key, f"unknown option {option!r}{did_you_mean(option, allowed)}; allowed: {', '.join(allowed)}")
    return None


def _is_group_choice(arg: str, conf_dir: Path) -> bool:
    key = arg.partition("=")[0].lstrip("+~")
    return "." not in key and (key.startswith("hydra/") or (conf_dir / key).is_dir())


def _compose(overrides: list[str], config_name: str, config_dir: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)


def _base(overrides: list[str], config_name: str, config_dir: str) -> DictConfig | None:
    """The config composed from the group choices (and search path) of ``overrides`` only: what the
    value overrides apply to. A swept choice (``task=a,b``) composes its first option; None when the
    choices themselves fail (Hydra's message is then reported)."""
    chosen = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            chosen.append(item)
        elif _is_group_choice(item, Path(config_dir)):
            chosen.append(f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else item)
    try:
        return _compose(chosen, config_name, config_dir)
    except Exception:  # noqa: BLE001
        return None


def _schema_node(node: DictConfig) -> dict:
    """What picks a group option's schema: its task ``kind`` or adapter ``method``."""
    return {k: node.get(k) for k in ("kind", "method") if k in node}


def schema_settable(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> list[str]:
    """``overrides`` with each ``group.key=value`` whose key a schema of the group has (any option:
    a study may sweep the option, e.g. ``task.data_dir`` for GLUE tasks while the default task is
    synthetic) but the composed option's YAML lacks written as Hydra's ``++group.key=value``
    (`lora_lab.schema_keys`); the schema check of each trial then judges it against its own option.
    Overrides of keys the YAML has are left as given. Composes once, only when a candidate is present."""
    candidates = {i for i, item in enumerate(overrides) if settable([item]) != [item]}
    base = _base(overrides, config_name, config_dir) if candidates else None
    if base is None:
        return list(overrides)
    out = list(overrides)
    for i in candidates:
        group, _, name = out[i].partition("=")[0].partition(".")
        node = base.get(group)
        if isinstance(node, DictConfig) and name not in node.keys():  # (`in node` is False for a ``???`` value)
            out[i] = f"++{out[i]}"
    return out


def unknown_override_key(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> ConfigError | None:
    """For an override ``a.b=v`` (no ``+``) whose key the composed config lacks: one line naming
    the allowed keys at ``a`` (for a group with a schema: the schema's keys, `lora_lab.schema_keys`)
    and the closest one."""
    base = _base(overrides, config_name, config_dir)
    if base is None:
        return None
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or _is_group_choice(item, Path(config_dir)):
            continue
        parent_path, _, name = key.rpartition(".")
        parent = OmegaConf.select(base, parent_path) if parent_path else base
        if isinstance(parent, DictConfig) and name not in parent:
            if parent_path == "adapter":  # the method schema's message: whose knob it is, the closest one
                parse_config({**OmegaConf.to_container(parent, resolve=False), name: None})
            allowed = [k for k in parent if str(k) != "hydra"]
            if parent_path in SCHEMA_GROUPS:
                allowed = schema_keys(parent_path, _schema_node(parent))
            return unknown_key(key, allowed)
    return None


def missing_option(message: str) -> ConfigError | None:
    """Hydra's "Could not find 'hydra/launcher/nope'" + its list of available options, as one line."""
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if found is None:
        return None
    group, option = found.groups()
    listed = message.split("Available options", 1)[1].split(":", 1)[-1] if "Available options" in message else ""
    allowed = [o.strip() for o in listed.split("\n") if o.strip() and " " not in o.strip()]
    return ConfigError(group, f"unknown option {option!r}{did_you_mean(option, allowed)}; allowed: {', '.join(allowed) or '(none)'}")


def compose(overrides: list[str], config_name: str = "train", config_dir: str = CONF_DIR) -> DictConfig:
    """The config ``lora-lab train OVERRIDES`` runs with (``hydra`` node included); Hydra's errors
    become one `ConfigError` line."""
    err = unknown_group_choice(overrides, config_dir)
    if err is not None:
        raise err
    try:
        return _compose(overrides, config_name, config_dir)
    except Exception as failure:  # noqa: BLE001 -- Hydra's messages span many lines
        inner = config_error_in(failure) or missing_option(str(failure)) or unknown_override_key(overrides, config_name, config_dir)
        if inner is not None:
            raise inner from None
        text = " ".join(str(failure).split()).split(" Config search path:")[0]
        raise ConfigError("overrides", text) from None


def run_dir_of(cfg: DictConfig) -> Path:
    """Where a single (non-multirun) ``lora-lab train`` writes: ``hydra.run.dir``."""
    try:
        return Path(str(cfg.hydra.run.dir))
    except Exception as err:  # noqa: BLE001
        inner = config_error_in(err)
        if inner is not None:
            raise inner from None
        raise ConfigError("hydra.run.dir", " ".join(str(err).split()).split(" full_key:")[0]) from None


# ------------------------------------------------------------------------------------------ parse




def check_precision(precision) -> None:
    """Adapter weights stay fp32: bf16 autocast for the frozen base only (`docs/errors.md`)."""
    if precision is not None and str(precision) not in ALLOWED_PRECISIONS:
        raise ConfigError("trainer.precision", f"{precision!r} would cast the adapter weights to 16 bits; allowed: {', '.join(ALLOWED_PRECISIONS)} (bf16-mixed: frozen base in bf16 under autocast, adapters fp32)")


def check_trainer(trainer: dict, test_after_fit: bool = True) -> None:
    """Lightning accepts (or crashes later on) values that cannot train, or that train something the
    record would misreport: refuse them up front (`lora_lab.trainer_checks`)."""
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
        load_tracker_class(node["tracker"], key=f"logger.{name}.tracker")
        check_tracker_settings(name, node)


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


# ----------------------------------------------------------------------------------- overlays

OVERLAY_GROUPS = ("debug", "experiment")


def _leaves(node, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if key == "defaults":
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, path + "."))
        elif not (isinstance(value, str) and "${" in value):
            out[path] = value
    return out


def _overlay_settings(group: str, option: str, conf_dir: Path) -> dict:
    """Every leaf a ``# @package _global_`` overlay sets, its ``override /group: option`` choices
    expanded into that option's own leaves."""
    path = conf_dir / group / f"{option}.yaml"
    if not path.is_file() or "@package _global_" not in path.read_text():
        return {}
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    settings = _leaves(raw)
    for entry in raw.get("defaults") or []:
        if isinstance(entry, dict):
            for key, choice in entry.items():
                sub = str(key).replace("override", "").strip().lstrip("/")
                chosen = conf_dir / sub / f"{choice}.yaml"
                if "/" not in sub and chosen.is_file():
                    settings.update(_leaves(OmegaConf.to_container(OmegaConf.load(chosen), resolve=False), f"{sub}."))
    return settings


def overlay_conflict(overrides: list[str], trial_overrides: list[str], resolved: dict, conf_dir: str = CONF_DIR) -> ConfigError | None:
    """An overlay chosen on the command line (``debug=tiny``) that a study's own settings silently
    override (the study fixes ``backbone: minilm``): one line naming the setting that cannot take
    effect. Keys set explicitly on the command line or swept by the study are the user's choice."""
    explicit = [o.partition("=")[0].lstrip("+~") for o in [*overrides, *trial_overrides]]
    for item in overrides:
        group, sep, option = item.partition("=")
        if not sep or group not in OVERLAY_GROUPS or option in ("", "null"):
            continue
        for key, value in _overlay_settings(group, option, Path(conf_dir)).items():
            if any(key == e or key.startswith(e + ".") for e in explicit):
                continue
            actual = OmegaConf.select(OmegaConf.create(resolved), key, default=None)
            if actual != value and not (isinstance(value, (int, float)) and isinstance(actual, (int, float)) and float(actual) == float(value)):
                return ConfigError(group, f"{group}={option} sets {key}={value!r} but the study keeps {key}={actual!r}: the overlay cannot take effect (set {key} on the command line, or use a study without that setting)")
    return None
