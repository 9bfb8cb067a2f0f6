"""Trainer settings a run could not honour, refused before anything is written (`lora_lab.config.trial_config`).

Lightning accepts each of these and then trains something other than what the record would claim:

- an unknown ``trainer`` key (Lightning's ``Trainer.__init__`` raises a ``TypeError`` after the model
  loaded); `TRAINER_KEYS` is its parameter list, and a test compares the two;
- ``fast_dev_run`` (one batch, no checkpoint, no selected evaluation: a wiring check, not a result;
  ``debug=fdr`` is an honest one-step run instead), ``limit_train_batches`` of 0 (0 optimizer steps),
  ``limit_val_batches`` of 0 (no validation metric to select or report), ``limit_test_batches`` of 0
  with ``test_after_fit`` (no test metrics), ``overfit_batches`` (the same batches for training and
  validation: a debugging mode whose "validation" is the training data);
- ``val_check_interval``: a fraction of an epoch in (0, 1] or a whole number of batches >= 1;
- ``accelerator`` naming a device this machine lacks (``cuda`` / ``gpu`` without a visible GPU,
  ``mps`` off Apple silicon), and ``precision=16-mixed`` without a GPU (Lightning silently runs
  ``bf16-mixed`` on a CPU while the config, and so the record, says ``16-mixed``).
"""

from __future__ import annotations

import math

from lora_lab.errors import ConfigError, did_you_mean

#: the parameters of ``lightning.pytorch.Trainer.__init__`` (tests/config/test_trainer_checks.py keeps it equal)
TRAINER_KEYS = (
    "accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks", "fast_dev_run", "max_epochs",
    "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches", "limit_val_batches", "limit_test_batches",
    "limit_predict_batches", "overfit_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps",
    "log_every_n_steps", "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches",
    "gradient_clip_val", "gradient_clip_algorithm", "deterministic", "benchmark", "inference_mode",
    "use_distributed_sampler", "profiler", "detect_anomaly", "barebones", "plugins", "sync_batchnorm",
    "reload_dataloaders_every_n_epochs", "default_root_dir", "enable_autolog_hparams", "model_registry",
)
#: what the trial passes itself (``trainer`` nodes must not set them) besides `TRAINER_KEYS`: the Hydra target
CONFIG_ONLY_KEYS = ("_target_",)
#: keys the trial sets from other config groups (callbacks, logger, the run dir)
SET_BY_THE_TRIAL = ("callbacks", "logger", "default_root_dir")
ACCELERATORS = ("cpu", "cuda", "gpu", "mps", "auto")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_trainer_keys(trainer: dict) -> None:
    allowed = [k for k in TRAINER_KEYS if k not in SET_BY_THE_TRIAL]
    for key in trainer:
        if key in CONFIG_ONLY_KEYS:
            continue
        if key in SET_BY_THE_TRIAL:
            raise ConfigError(f"trainer.{key}", f"is set by lora_lab from the {'run dir' if key == 'default_root_dir' else key} config group; set it there")
        if key not in TRAINER_KEYS:
            raise ConfigError(f"trainer.{key}", f"unknown trainer key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")


def check_debug_modes(trainer: dict, test_after_fit: bool) -> None:
    """Settings under which the optimizer does not step as configured or no metric exists."""
    fdr = trainer.get("fast_dev_run")
    if fdr not in (None, False, 0) :
        raise ConfigError("trainer.fast_dev_run", f"{fdr!r} runs a single batch and records no result a table can use; allowed: false (for a quick wiring check use debug=fdr: one optimizer step, recorded as such)")
    overfit = trainer.get("overfit_batches")
    if overfit not in (None, 0, 0.0):
        raise ConfigError("trainer.overfit_batches", f"{overfit!r} validates on the training batches, so the recorded validation metric would not be one; allowed: 0")
    needs = {"limit_train_batches": "0 optimizer steps", "limit_val_batches": "no validation metric"}
    if test_after_fit:
        needs["limit_test_batches"] = "no test metric (or set test_after_fit=false)"
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
        value = trainer.get(key)
        if value is None:
            continue
        if not _is_number(value) or value < 0 or (isinstance(value, float) and value > 1.0):
            raise ConfigError(f"trainer.{key}", f"must be a fraction in (0, 1] or a whole number of batches >= 1, got {value!r}")
        if value == 0 and key in needs:
            raise ConfigError(f"trainer.{key}", f"0 leaves {needs[key]}; allowed: a fraction in (0, 1] or a whole number of batches >= 1")


def check_val_check_interval(value) -> None:
    if value is None:
        return
    fraction = _is_number(value) and isinstance(value, float) and 0 < value <= 1
    batches = _is_number(value) and float(value).is_integer() and value >= 1
    if not (fraction or batches):
        raise ConfigError("trainer.val_check_interval", f"must be a fraction of an epoch in (0, 1] or a whole number of batches >= 1, got {value!r}")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_accelerator(trainer: dict) -> None:
    """An accelerator this machine has, and a precision Lightning runs as written on it."""
    import torch

    accelerator = trainer.get("accelerator", "auto")
    if accelerator is None:
        accelerator = "auto"
    if not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
        raise ConfigError("trainer.accelerator", f"unknown accelerator {accelerator!r}; allowed: {', '.join(ACCELERATORS)}")
    gpus = gpu_count()
    if accelerator in ("cuda", "gpu") and gpus == 0:
        raise ConfigError("trainer.accelerator", f"{accelerator!r} but this machine has no visible CUDA GPU; allowed here: cpu, auto")
    if accelerator == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("trainer.accelerator", "'mps' but this machine has no Apple-silicon GPU; allowed here: cpu, auto" + (", cuda" if gpus else ""))
    on_gpu = accelerator in ("cuda", "gpu") or (accelerator == "auto" and gpus > 0)
    if str(trainer.get("precision")) == "16-mixed" and not on_gpu:
        raise ConfigError("trainer.precision", "'16-mixed' on a CPU: Lightning would run bf16-mixed instead (and the record would say 16-mixed); allowed on a CPU: 32-true, bf16-mixed")
