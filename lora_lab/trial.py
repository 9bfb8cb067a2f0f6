"""One trial in its run directory: claim the directory, build, fit, evaluate, write the record.

`run_in_dir` is the gate every trial passes (``lora-lab train``, a sweep job, a SLURM requeue):

- it holds `RunLock` for the whole trial: a second live job of the same trial returns at once
  without touching the run dir;
- it reads the previous `ResultRecord` and decides with `decide` (nothing is written before):

  ============================  =====================  =============================================
  previous record               same trial identity    different identity
  ============================  =====================  =============================================
  none                          start (resume a ckpt)  --
  ``success``                   skip; ``force``: fresh refused (`RunDirTaken`); ``force``: fresh
  ``failed``/``cancelled``/     resume from last.ckpt  fresh (the old checkpoint and metrics.csv
  ``running`` (no live lock)                           belong to another config: discarded)
  ============================  =====================  =============================================

  so a failed or cancelled record never blocks a corrected rerun, ``force=true`` wins over anything
  but a live lock, and a finished ``success`` is only ever replaced by ``force=true``.

Only then does `run_trial` write into the directory: ``result.json`` ``running`` at start (a killed
job leaves evidence the report counts as incomplete), then ``success`` or ``failed``/``cancelled``.
A run stopped by a SLURM signal (`lora_lab.resume.signals`) appends to ``interruptions`` and is
written ``running`` (its requeue was requested) or ``cancelled``; the requeued job carries the list
forward. ``adapter/`` holds the scored adapter (best validation, the state the test metrics are
measured at; ``result.json: exported_state``), ``adapter_last/`` the final one. Only global rank 0
writes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from lora_lab.adapters.io import save_adapter
from lora_lab.atomic import atomic_write_text
from lora_lab.config import TrialConfig
from lora_lab.console import in_sweep
from lora_lab.errors import ConfigError
from lora_lab.gate import RunDirTaken, decide, preflight, read_previous  # noqa: F401  (RunDirTaken: re-exported)
from lora_lab.models.backbones import load_tokenizer, set_offline_env
from lora_lab.process_rank import is_global_zero
from lora_lab.progress import ProgressPrinter
from lora_lab.pruning import pruned_reason, pruning_callbacks
from lora_lab.results.record import ResultRecord, git_state, package_versions, peak_memory_mb, read_record, write_result
from lora_lab.resume.checkpoint import LAST_NAME, ResumeCheckpoint
from lora_lab.resume.checkpoint_io import AtomicCheckpointIO
from lora_lab.resume.lock import RunLock
from lora_lab.resume.rng import RngState
from lora_lab.resume.sampler import LoaderStateRestore
from lora_lab.resume.signals import RunPreempted, hand_over
from lora_lab.resume.slurm import cluster_plugins
from lora_lab.tasks.registry import family_of
from lora_lab.tracking import split_logger_nodes, tracker_callback
from lora_lab.tracking.callback import fail_trackers, finish_trackers

log = logging.getLogger("lora_lab.trial")


def is_rank_zero() -> bool:
    return is_global_zero()  # the global rank: NODE_RANK counts under Lightning's multi-node launch


def job_info() -> dict:
    """Where this attempt runs: host, pid and the SLURM job (array job + task) if any."""
    env = os.environ
    array = "_".join(filter(None, (env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")))) or None
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": env.get("SLURM_JOB_ID"), "slurm_array_task": array,
            "slurm_restart_count": env.get("SLURM_RESTART_COUNT")}


def base_record(resolved: dict, run_dir: Path, overrides: list[str]) -> ResultRecord:
    return ResultRecord(run_dir=str(run_dir), run_name=resolved.get("run_name"), study=resolved.get("study"), config=resolved,
                        overrides=list(overrides), versions=package_versions(), git=git_state(), job=job_info())


# ------------------------------------------------------------------------------------ the gate


def _start_fresh(run_dir: Path) -> None:
    (run_dir / "checkpoints" / LAST_NAME).unlink(missing_ok=True)
    (run_dir / "logs" / "metrics.csv").unlink(missing_ok=True)


def run_in_dir(trial: TrialConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None,
               on_start: Callable[[Path], None] | None = None) -> dict:
    """Run ``trial`` into ``run_dir`` behind the lock and the `decide` gate; returns the record as a dict.

    ``on_start(run_dir)`` runs once the trial owns the directory (the Hydra wrapper writes its
    ``.hydra/`` files and opens ``train.log`` there)."""
    run_dir = Path(run_dir)
    if preflight(trial, run_dir) == "skip":  # read-only: a finished run on a read-only root is still "finished"
        log.info("already finished: %s (force=true reruns it)", run_dir)
        return read_previous(run_dir).to_dict()
    with RunLock(run_dir) as lock:
        if not lock.acquired:
            log.warning("%s is being run by another job (%s); not running it twice", run_dir, lock.holder())
            return {"status": "running", "run_dir": str(run_dir), "reason": f"held by {lock.holder()}"}
        previous = read_previous(run_dir)
        action = decide(previous, trial.identity, trial.force, run_dir)
        if action == "skip":
            log.info("already finished: %s (force=true reruns it)", run_dir)
            return previous.to_dict()
        if action == "fresh":
            _start_fresh(run_dir)
            previous = None
        lock.announce()
        if on_start is not None:
            on_start(run_dir)
        if trial.task.data_is_local:
            set_offline_env(trial.backbone.name, trial.backbone.tokenizer)
        history = list(previous.interruptions) if previous is not None else []
        try:
            return run_trial(trial, run_dir, overrides or [], interruptions=history).to_dict()
        except RunPreempted:
            raise  # recorded by run_trial
        except KeyboardInterrupt:
            record_failure(trial.resolved, run_dir, overrides or [], "cancelled", "interrupted", status="cancelled")
            raise
        except Exception as err:  # a bug or a fault (disk full): recorded with its type and message, then re-raised
            record_failure(trial.resolved, run_dir, overrides or [], type(err).__name__, describe(err))
            raise


def describe(err: BaseException) -> str:
    """The message of ``err``, with the OS cause found in its chain (torch reports a full disk as
    ``unexpected pos 64 vs 0``; the ``No space left on device`` underneath is what the user needs)."""
    seen, cause = set(), err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            where = f": {cause.filename}" if cause.filename else ""
            return f"{cause.strerror}{where}" if cause is err else f"{err} ({cause.strerror}{where})"
        cause = cause.__cause__ or cause.__context__
    return str(err)


def record_failure(resolved: dict, run_dir: Path, overrides: list[str], kind: str, reason: str, status: str = "failed") -> None:
    if not is_rank_zero():
        return
    try:
        record = base_record(resolved, run_dir, overrides)
        record.status, record.reason = status, f"{kind}: {reason}"
        previous = read_record(run_dir) if (run_dir / "result.json").is_file() else None
        if previous is not None:
            record.interruptions = previous.interruptions
        write_result(run_dir, record)
    except Exception as err:  # never mask the original error
        log.error("could not write the failure record in %s: %s", run_dir, describe(err))


def record_stop(run_dir: Path, record: ResultRecord, stop, trainer) -> None:
    """Write the interruption into result.json (rank 0) before the job ends or is requeued."""
    entry = {"signal": stop.signal_name, "step": stop.step, "epoch": int(trainer.current_epoch),
             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **job_info()}
    record.interruptions = [*record.interruptions, entry]
    requeued = stop.requeue and callable(stop.previous_handler)
    if requeued:
        record.status, record.reason = "running", f"requeue requested after {stop}"
    else:
        record.status, record.reason = "cancelled", f"{stop}; resumes from checkpoints/last.ckpt when requeued or rerun"
    if is_rank_zero():
        write_result(run_dir, record)


# ----------------------------------------------------------------------------------- the trial


def build_trainer(resolved: dict, run_dir: Path, resume: dict | None = None, progress: dict | None = None, extra_callbacks=()):
    """The Lightning trainer of one trial: configured callbacks and loggers, plus what every run gets
    (`lora_lab.resume`): `ResumeCheckpoint` (owns checkpoints/last.ckpt and SLURM stop signals),
    `RngState`, `LoaderStateRestore` (mid-epoch data position), atomic checkpoint writes and, on SLURM,
    Lightning's auto-requeue switched off; live progress (`ProgressPrinter`, ``progress`` as parsed by
    `lora_lab.config`) and the chosen trackers (`lora_lab.tracking`: one callback, continuing the
    tracker runs of a trial that resumes from its checkpoint)."""
    resume = resume or {}
    lightning_loggers, trackers = split_logger_nodes(resolved.get("logger") or {})
    loggers = [instantiate({**node, "save_dir": str(run_dir)}) for node in lightning_loggers.values()]
    callbacks = []
    for name, node in (resolved.get("callbacks") or {}).items():
        if name == "checkpoint":
            node = {**node, "dirpath": str(run_dir / "checkpoints")}
        if not loggers and node["_target_"].endswith("LearningRateMonitor"):
            continue  # it refuses to run without a logger
        callback = instantiate(node)
        if isinstance(callback, ModelCheckpoint) and callback.save_last:
            raise ConfigError(f"callbacks.{name}.save_last", "last.ckpt is written by lora_lab's resume checkpoint; set save_last: false")
        callbacks.append(callback)
    callbacks += [ResumeCheckpoint(run_dir / "checkpoints", every_n_minutes=resume.get("every_n_minutes")), RngState(), LoaderStateRestore()]
    callbacks += [ProgressPrinter(**(progress or {}), multirun=in_sweep())]
    callbacks += tracker_callback(trackers, resolved, run_dir, resuming=(run_dir / "checkpoints" / LAST_NAME).is_file())
    callbacks += list(extra_callbacks)
    trainer_cfg = dict(resolved["trainer"])
    plugins = [AtomicCheckpointIO(), *cluster_plugins(), *(trainer_cfg.pop("plugins", None) or [])]
    return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir), plugins=plugins)


def run_trial(trial: TrialConfig, run_dir: Path, overrides: list[str], interruptions: list[dict] | None = None) -> ResultRecord:
    """Build, fit, evaluate and record one trial in ``run_dir`` (already claimed by `run_in_dir`)."""
    resolved = trial.resolved
    started, started_cpu = time.time(), time.process_time()
    run_dir.mkdir(parents=True, exist_ok=True)
    record = base_record(resolved, run_dir, overrides)
    record.interruptions = list(interruptions or [])
    if is_rank_zero():
        write_result(run_dir, record)  # status "running"

    L.seed_everything(trial.seed, workers=True, verbose=False)
    spec = trial.task.spec()
    tokenizer = load_tokenizer(trial.backbone)
    module_args = {"backbone": resolved["backbone"], "adapter": trial.adapter.to_dict(), "optim": resolved["optim"], "task": resolved["task"]}
    datamodule, module = family_of(trial.task).build(trial.task, spec, tokenizer, trial.backbone, module_args, trial.seed)
    pruning = pruning_callbacks(resolved.get("optuna_trial"), spec.primary_key)  # [] unless a study with a pruner runs it
    trainer = build_trainer(resolved, run_dir, trial.resume, trial.progress, extra_callbacks=pruning)
    last = run_dir / "checkpoints" / LAST_NAME
    if getattr(trial.task, "eval_untrained", False) and not last.is_file():
        module.evaluate_untrained(trainer, datamodule)  # a resumed run restores it from the checkpoint
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
    except RunPreempted as stop:
        record_stop(run_dir, record, stop, trainer)
        hand_over(stop)  # submitit: requeue and exit; otherwise returns
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")
    if pruned_reason(trainer) is not None:
        return record_pruned(run_dir, record, module, trainer, spec, started)

    try:  # a fault after fit (evaluation, saving, writing) closes the tracker runs as failed, then propagates
        if module.best is None and not resolved["trainer"].get("fast_dev_run", False):
            # no selectable evaluation happened during fit (e.g. evaluation points all fell before
            # AdaLoRA's final phase): evaluate the final adapter once so best/final exist
            trainer.validate(module, datamodule=datamodule, verbose=False)
        final = module.curve[-1] if module.curve else {}
        # summary and artifacts describe the trained (final) adapter; restore_best below may load an
        # earlier state (e.g. an AdaLoRA rank pattern from mid-schedule): the scored one
        method_summary = module.method.summary()
        backbone_info = {**resolved["backbone"], "model_kind": module.model_kind, "num_labels": spec.num_labels}
        save = resolved.get("save_adapter", True) and trainer.is_global_zero
        if trainer.is_global_zero:
            module.method.save_artifacts(run_dir)
        exported_state = "final"
        if module.best_state is not None and module.curve:
            if save:
                save_adapter(run_dir / "adapter_last", module.model, module.method, backbone_info)
            module.restore_best()
            exported_state = "best_val"
        if save:
            save_adapter(run_dir / "adapter", module.model, module.method, backbone_info)
        test = {}
        if spec.has_test and resolved.get("test_after_fit", True) and module.curve:
            test = {k: float(v) for k, v in trainer.test(module, datamodule=datamodule, verbose=False)[0].items()}

        record.status = "success"
        record.task_spec = spec.__dict__
        record.primary_metric = spec.primary_key
        record.params = module.report.to_dict()
        record.metrics = {"best_val": module.best or {}, "final": final, "test": test}
        record.exported_state = exported_state if save else None
        record.baselines = module.baselines(datamodule)
        record.data = {"sizes": {k: len(v) for k, v in datamodule.splits.items()}, "skipped": dict(getattr(datamodule, "skipped", {}))}
        record.curve = module.curve
        record.method_summary = method_summary
        record.quantization = module.quantization
        record.optimizer_steps = int(trainer.global_step)
        record.wall_time_s = time.time() - started
        record.cpu_time_s = time.process_time() - started_cpu  # all threads of this process; wall time depends on the machine's load
        record.torch_threads = torch.get_num_threads()
        record.peak_memory_mb = peak_memory_mb()
        if trainer.is_global_zero:
            _write_predictions(run_dir, getattr(module, "predictions", None))
            write_result(run_dir, record)
    except BaseException as err:
        fail_trackers(trainer, err)
        raise
    finish_trackers(trainer, record.to_dict())  # after result.json: the trackers' final summary is the record's
    return record


def record_pruned(run_dir: Path, record: ResultRecord, module, trainer, spec, started: float) -> ResultRecord:
    """A trial its Optuna study's pruner stopped (`lora_lab.pruning`): result.json ``pruned`` with the
    curve so far (no test evaluation, no adapter saved: the trial is not scored)."""
    record.status, record.reason = "pruned", pruned_reason(trainer)
    record.task_spec = spec.__dict__
    record.primary_metric = spec.primary_key
    record.metrics = {"best_val": module.best or {}, "final": module.curve[-1] if module.curve else {}, "test": {}}
    record.curve = module.curve
    record.optimizer_steps = int(trainer.global_step)
    record.wall_time_s = time.time() - started
    if trainer.is_global_zero:
        write_result(run_dir, record)
    finish_trackers(trainer, record.to_dict())
    return record


def _write_predictions(run_dir: Path, predictions: dict | None) -> None:
    """``predictions_<split>.jsonl``: generation runs: question, gold, predicted SQL and verdicts of the
    latest evaluation of each split (test: at the best-validation adapter); classification runs: id,
    label, prediction at the selected evaluation (`lora_lab.tasks.classification.module`)."""
    for split, rows in (predictions or {}).items():
        atomic_write_text(run_dir / f"predictions_{split}.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
