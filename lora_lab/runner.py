"""One trial, start to finish: data, module, Lightning trainer, fit, test, adapter, result.json.

Called by `lora_lab.train.train` after validation. ``result.json`` is written ``running`` at start
(so a killed job leaves evidence the report counts as incomplete), then ``success`` or
``failed``/``cancelled`` at the end. A run stopped by a SLURM signal (`lora_lab.resume.signals`)
appends to ``interruptions`` and is written ``running`` (its requeue was requested) or ``cancelled``
(SIGTERM: SLURM requeues it or not; a rerun resumes either way); the requeued job carries the
list forward. Only global rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from lora_lab.results.record import git_state, package_versions, peak_memory_mb, write_result
from lora_lab.tracking.callback import finish_trackers

log = logging.getLogger("lora_lab.runner")


def _is_rank_zero() -> bool:
    import os

    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) or 0) == 0 and int(os.environ.get("LOCAL_RANK", "0") or 0) == 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def base_record(cfg: DictConfig, resolved: dict | None, run_dir: Path, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    if resolved is None:
        try:
            resolved = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # an unresolvable config is itself the failure being recorded
            resolved = OmegaConf.to_container(cfg, resolve=False)
    return {
        "run_dir": str(run_dir),
        "run_name": resolved.get("run_name"),
        "study": resolved.get("study"),
        "config": resolved,
        "overrides": list(overrides),
        "versions": package_versions(),
        "git": git_state(),
        "job": job_info(),
    }


def job_info() -> dict:
    """Where this attempt runs: host, pid and the SLURM job (array job + task) if any."""
    import os
    import socket

    env = os.environ
    array = "_".join(filter(None, (env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")))) or None
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": env.get("SLURM_JOB_ID"), "slurm_array_task": array,
            "slurm_restart_count": env.get("SLURM_RESTART_COUNT")}


def record_failure(cfg, run_dir: Path, overrides: list[str], kind: str, reason: str, status: str = "failed") -> None:
    if not _is_rank_zero():
        return
    try:
        write_result(run_dir, {**base_record(cfg, None, run_dir, overrides), "status": status, "reason": f"{kind}: {reason}"})
    except Exception:  # never mask the original error
        log.exception("could not write the failure record in %s", run_dir)


def record_stop(run_dir: Path, record: dict, stop, trainer) -> None:
    """Write the interruption into result.json (rank 0) before the job ends or is requeued."""
    entry = {"signal": stop.signal_name, "step": stop.step, "epoch": int(trainer.current_epoch),
             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **job_info()}
    record["interruptions"] = [*record.get("interruptions", []), entry]
    requeued = stop.requeue and callable(stop.previous_handler)
    if requeued:
        status, reason = "running", f"requeue requested after {stop}"
    else:
        status, reason = "cancelled", f"{stop}; resumes from checkpoints/last.ckpt when requeued or rerun"
    if _is_rank_zero():
        write_result(run_dir, {**record, "status": status, "reason": reason})


def classification_parts(resolved: dict, adapter_cfg, task_cfg, backbone_cfg, spec, tokenizer, seed: int):
    """Data module and Lightning module for sequence classification / regression."""
    from lora_lab.data.classification import ClassificationDataModule
    from lora_lab.models.classification import ClassificationModule

    datamodule = ClassificationDataModule(task_cfg, spec, tokenizer, seed=seed)
    module = ClassificationModule(
        backbone=resolved["backbone"], adapter=adapter_cfg.to_dict(), optim=resolved["optim"], task=resolved["task"],
        spec=spec.__dict__, pad_token_id=tokenizer.pad_token_id,
    )
    return datamodule, module


def generation_parts(resolved: dict, adapter_cfg, task_cfg, backbone_cfg, spec, tokenizer, seed: int):
    """Data module and Lightning module for text-to-SQL generation; causal LM or seq2seq by backbone."""
    from lora_lab.data.generation import GenerationDataModule, eos_id
    from lora_lab.models.backbones import generation_family
    from lora_lab.models.generation import GenerationModule

    family = generation_family(backbone_cfg)
    datamodule = GenerationDataModule(task_cfg, spec, tokenizer, family, seed=seed)
    module = GenerationModule(
        backbone=resolved["backbone"], adapter=adapter_cfg.to_dict(), optim=resolved["optim"], task=resolved["task"],
        spec=spec.__dict__, family=family, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_id(tokenizer),
    )
    return datamodule, module


#: TaskSpec.family -> builder of (data module, Lightning module)
TASK_FAMILIES = {"classification": classification_parts, "generation": generation_parts}


def _baselines(module, datamodule, spec) -> dict:
    if spec.family == "classification":
        return {"majority_val": datamodule.majority_baseline(spec.eval_splits[0])}
    return {"untrained_val": getattr(module, "untrained", None)}


def run_trial(cfg: DictConfig, resolved: dict, run_dir: Path, overrides: list[str], adapter_cfg, task_cfg, backbone_cfg,
              interruptions: list[dict] | None = None) -> dict:
    import lightning as L

    from lora_lab.adapters.io import save_adapter
    from lora_lab.data.tasks import task_spec
    from lora_lab.models.backbones import load_tokenizer
    from lora_lab.resume.signals import RunPreempted, hand_over
    from lora_lab.train import build_trainer

    started, started_cpu = time.time(), time.process_time()
    run_dir.mkdir(parents=True, exist_ok=True)
    record = base_record(cfg, resolved, run_dir, overrides)
    record["interruptions"] = list(interruptions or [])
    if _is_rank_zero():
        write_result(run_dir, {**record, "status": "running"})

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    spec = task_spec(task_cfg)
    tokenizer = load_tokenizer(backbone_cfg)
    datamodule, module = TASK_FAMILIES[spec.family](resolved, adapter_cfg, task_cfg, backbone_cfg, spec, tokenizer, int(cfg.seed))
    trainer = build_trainer(cfg, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if getattr(task_cfg, "eval_untrained", False) and not last.is_file():
        module.evaluate_untrained(trainer, datamodule)  # a resumed run restores it from the checkpoint
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
    except RunPreempted as stop:
        record_stop(run_dir, record, stop, trainer)
        hand_over(stop)  # submitit: requeue and exit; otherwise returns
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")

    if module.best is None and not cfg.trainer.get("fast_dev_run", False):
        # no selectable evaluation happened during fit (e.g. evaluation points all fell before
        # AdaLoRA's final phase): evaluate the final adapter once so best/final exist
        trainer.validate(module, datamodule=datamodule, verbose=False)
    if cfg.get("save_adapter", True) and trainer.is_global_zero:
        backbone_info = {**resolved["backbone"], "family": module.family, "num_labels": spec.num_labels}
        save_adapter(run_dir / "adapter", module.model, module.method, backbone_info)
    final = module.curve[-1] if module.curve else {}
    # summary and artifacts describe the trained (final) adapter, the one saved above; restore_best
    # below may load an earlier state (e.g. an AdaLoRA rank pattern from mid-schedule) for testing
    method_summary = module.method.summary()
    if trainer.is_global_zero:
        module.method.save_artifacts(run_dir)
    test = {}
    if spec.has_test and cfg.get("test_after_fit", True) and module.curve:
        module.restore_best()
        test = {k: float(v) for k, v in trainer.test(module, datamodule=datamodule, verbose=False)[0].items()}

    record.update(
        status="success",
        task_spec=spec.__dict__,
        primary_metric=spec.primary_key,
        params=module.report.to_dict(),
        metrics={"best_val": module.best or {}, "final": final, "test": test},
        baselines=_baselines(module, datamodule, spec),
        data={"sizes": {k: len(v) for k, v in datamodule.splits.items()}, "skipped": dict(getattr(datamodule, "skipped", {}))},
        curve=module.curve,
        method_summary=method_summary,
        quantization=module.quantization,
        optimizer_steps=int(trainer.global_step),
        wall_time_s=time.time() - started,
        cpu_time_s=time.process_time() - started_cpu,  # all threads of this process; wall time depends on the machine's load
        torch_threads=_torch_threads(),
        peak_memory_mb=peak_memory_mb(),
    )
    if trainer.is_global_zero:
        _write_predictions(run_dir, getattr(module, "predictions", None))
        write_result(run_dir, record)
    finish_trackers(trainer, record)
    return record


def _write_predictions(run_dir: Path, predictions: dict | None) -> None:
    """``predictions_<split>.jsonl`` for generation runs: question, gold, predicted SQL and verdicts
    of the latest evaluation of each split (test: at the best-validation adapter)."""
    import json

    from lora_lab.results.record import atomic_write_text

    for split, rows in (predictions or {}).items():
        atomic_write_text(run_dir / f"predictions_{split}.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
