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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from lora_lab.adapters.io import save_adapter
from lora_lab.analysis.snapshot_schedule import snapshots_on
from lora_lab.analysis.snapshots import SNAPSHOT_DIR, AdapterSnapshots, list_snapshots
from lora_lab.atomic import atomic_write_text
from lora_lab.config.trial_config import TrialConfig
from lora_lab.run.console import in_sweep
from lora_lab.errors import ConfigError
from lora_lab.run.gate import RunDirTaken, decide, preflight, read_previous  # noqa: F401  (RunDirTaken: re-exported)
from lora_lab.locations import set_offline_env
from lora_lab.models.backbones import load_tokenizer
from lora_lab.process_rank import is_global_zero
from lora_lab.pruning import pruned_reason, pruning_callbacks
from lora_lab.run.progress import ProgressPrinter
from lora_lab.results.record import ResultRecord, job_info, read_record, write_result
from lora_lab.resume.checkpoint import LAST_NAME, ResumeCheckpoint
from lora_lab.resume.checkpoint_io import AtomicCheckpointIO
from lora_lab.resume.lock import RunLock
from lora_lab.resume.rng import RngState
from lora_lab.resume.sampler import LoaderStateRestore
from lora_lab.resume.attempts import begin_attempt, end_attempt, tick
from lora_lab.resume.heartbeat import AttemptHeartbeat
from lora_lab.resume.csv_logger import CsvRowsAtCheckpoint
from lora_lab.resume.signals import RunPreempted, RunStopped, StopOnSignals, hand_over
from lora_lab.resume.slurm import cluster_plugins
from lora_lab.tasks.loaders import calibration_batches
from lora_lab.tasks.registry import family_of
from lora_lab.tracking import split_logger_nodes, tracker_callback
from lora_lab.tracking.callback import fail_trackers, finish_trackers, tracker_statuses

log = logging.getLogger("lora_lab.trial")


def is_rank_zero() -> bool:
    return is_global_zero()  # the global rank: NODE_RANK counts under Lightning's multi-node launch


# ------------------------------------------------------------------------------------ the gate


def _start_fresh(run_dir: Path) -> None:
    (run_dir / "checkpoints" / LAST_NAME).unlink(missing_ok=True)
    (run_dir / "logs" / "metrics.csv").unlink(missing_ok=True)
    shutil.rmtree(run_dir / SNAPSHOT_DIR, ignore_errors=True)  # another config's (or a forced rerun's) snapshots


def run_in_dir(trial: TrialConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None,
               on_start: Callable[[Path], None] | None = None) -> dict:
    """Run ``trial`` into ``run_dir`` behind the lock and the `decide` gate; returns the record as a dict.

    ``on_start(run_dir)`` runs once the trial owns the directory (the Hydra wrapper writes its
    ``.hydra/`` files and opens ``train.log`` there)."""
    run_dir = Path(run_dir)
    if preflight(trial, run_dir) == "skip":  # read-only: a finished run on a read-only root is still "finished"
        log.info("already finished: %s (force=true reruns it)", run_dir)
        return read_previous(run_dir).to_dict()
    check_trainer_builds(trial.resolved)  # Lightning's own checks, before the run dir is claimed
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
        attempts = begin_attempt(previous.attempts if previous is not None else None)
        try:
            with StopOnSignals() as stops:
                return run_trial(trial, run_dir, overrides or [], interruptions=history, attempts=attempts, stops=stops).to_dict()
        except RunPreempted:
            raise  # recorded by run_trial
        except (KeyboardInterrupt, RunStopped) as stop:
            reason = f"{stop}; resumes from checkpoints/last.ckpt on a rerun" if isinstance(stop, RunStopped) else "interrupted"
            record_failure(trial.resolved, run_dir, overrides or [], "cancelled", reason, status="cancelled")
            raise
        except Exception as err:  # a bug or a fault (disk full): recorded with its type and message, then re-raised
            record_failure(trial.resolved, run_dir, overrides or [], type(err).__name__, describe(err))
            raise


def check_trainer_builds(resolved: dict) -> None:
    """Lightning's own checks of the ``trainer`` settings (devices, strategy, max_time, profiler ...),
    which it runs when a `Trainer` is constructed: construct one, without callbacks or loggers, before
    the run dir is claimed or any model loads; what it refuses is one `ConfigError` line."""
    cfg = dict(resolved["trainer"])
    plugins = [AtomicCheckpointIO(), *cluster_plugins(), *(cfg.pop("plugins", None) or [])]
    try:
        with tempfile.TemporaryDirectory(prefix="lora_lab_trainer_check") as scratch:
            instantiate(cfg, callbacks=[], logger=False, default_root_dir=scratch, plugins=plugins)
    except Exception as err:  # noqa: BLE001 -- MisconfigurationException, TypeError, ValueError, ...
        cause = err.__cause__ or err  # Hydra wraps it: "Error in call to target ...: <the exception>"
        raise ConfigError("trainer", f"Lightning refuses these settings: {' '.join(str(cause).split())}") from None


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
    """Rewrite the running record as ``status``, keeping its interruptions, attempts (this process's
    closed as ``status``) and tracker statuses."""
    if not is_rank_zero():
        return
    try:
        record = ResultRecord.start(resolved, run_dir, overrides)
        record.status, record.reason = status, f"{kind}: {reason}"
        previous = read_record(run_dir) if (run_dir / "result.json").is_file() else None
        if previous is not None:
            record.interruptions, record.trackers = previous.interruptions, previous.trackers
            record.attempts = previous.attempts
            record.wall_time_s = end_attempt(record.attempts, status)
        write_result(run_dir, record)
    except Exception as err:  # never mask the original error
        log.error("could not write the failure record in %s: %s", run_dir, describe(err))


def record_stop(run_dir: Path, record: ResultRecord, stop, trainer) -> None:
    """Write the interruption into result.json (rank 0) before the job ends or is requeued."""
    entry = {"signal": stop.signal_name, "step": stop.step, "epoch": int(trainer.current_epoch),
             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **job_info()}
    record.interruptions = [*record.interruptions, entry]
    record.wall_time_s = end_attempt(record.attempts, f"stopped: {stop.signal_name}")
    requeued = stop.requeue and callable(stop.previous_handler)
    if requeued:
        record.status, record.reason = "running", f"requeue requested after {stop}"
    else:
        record.status, record.reason = "cancelled", f"{stop}; resumes from checkpoints/last.ckpt when requeued or rerun"
    if is_rank_zero():
        write_result(run_dir, record)


# ----------------------------------------------------------------------------------- the trial


def build_trainer(resolved: dict, run_dir: Path, resume: dict | None = None, progress: dict | None = None, extra_callbacks: list | None = None):
    """The Lightning trainer of one trial: configured callbacks and loggers, plus what every run gets
    (`lora_lab.resume`): `ResumeCheckpoint` (owns checkpoints/last.ckpt and SLURM stop signals),
    `RngState`, `LoaderStateRestore` (mid-epoch data position), atomic checkpoint writes and, on SLURM,
    Lightning's auto-requeue switched off; live progress (`ProgressPrinter`, ``progress`` as parsed by
    `lora_lab.config.trial_config`) and the chosen trackers (`lora_lab.tracking`: one callback, continuing the
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
    callbacks += [ResumeCheckpoint(run_dir / "checkpoints", every_n_minutes=resume.get("every_n_minutes")), RngState(), LoaderStateRestore(),
                  CsvRowsAtCheckpoint(), *(extra_callbacks or [])]
    callbacks += [ProgressPrinter(**(progress or {}), multirun=in_sweep())]
    callbacks += tracker_callback(trackers, resolved, run_dir, resuming=(run_dir / "checkpoints" / LAST_NAME).is_file())
    trainer_cfg = dict(resolved["trainer"])
    plugins = [AtomicCheckpointIO(), *cluster_plugins(), *(trainer_cfg.pop("plugins", None) or [])]
    return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir), plugins=plugins)


class UntrustworthyRun(RuntimeError):
    """Training ended without what a ``success`` record claims: optimizer steps, validation metrics,
    test metrics where the task has a labelled test split."""


def check_trustworthy(record: ResultRecord, test_expected: bool) -> None:
    """A record is only ``success`` when the optimizer stepped and the metrics it reports exist."""
    if not record.optimizer_steps:
        raise UntrustworthyRun("training ran 0 optimizer steps; nothing was trained")
    if not (record.metrics.get("best_val") or {}):
        raise UntrustworthyRun("no validation metric was computed; there is nothing to report")
    if test_expected and not (record.metrics.get("test") or {}):
        raise UntrustworthyRun("the test split was not evaluated (test_after_fit=true)")


def run_trial(trial: TrialConfig, run_dir: Path, overrides: list[str], interruptions: list[dict] | None = None,
              attempts: list[dict] | None = None, stops: StopOnSignals | None = None) -> ResultRecord:
    """Build, fit, evaluate and record one trial in ``run_dir`` (already claimed by `run_in_dir`).

    ``attempts`` (`lora_lab.resume.attempts`): every process of this trial so far, this one last;
    ``stops`` names the phase a SIGTERM/SIGINT would interrupt."""
    resolved = trial.resolved
    started_cpu = time.process_time()
    run_dir.mkdir(parents=True, exist_ok=True)
    record = ResultRecord.start(resolved, run_dir, overrides, interruptions or [])
    attempts = attempts if attempts is not None else begin_attempt(None)
    attempts[-1]["git"] = record.git  # this process's entry: the code it runs (a resumed trial's earlier ones keep theirs)
    record.attempts = attempts
    stops = stops or StopOnSignals()

    def write_running(wall_time_s: float) -> None:
        record.wall_time_s = wall_time_s
        write_result(run_dir, record)

    if is_rank_zero():
        write_running(tick(attempts))  # status "running"
    stops.phase = "model loading"

    L.seed_everything(trial.seed, workers=True, verbose=False)
    spec = trial.task.spec()
    tokenizer = load_tokenizer(trial.backbone)
    module_args = {"backbone": trial.backbone, "adapter": trial.adapter, "optim": trial.optim, "task": trial.task}
    datamodule, module = family_of(trial.task).build(trial.task, spec, tokenizer, trial.backbone, module_args, trial.seed)
    backbone_info = {**resolved["backbone"], "model_kind": module.model_kind, "num_labels": spec.num_labels}
    snapshots = [AdapterSnapshots(run_dir, trial.analysis, backbone_info)] if snapshots_on(trial.analysis) else []
    pruning = pruning_callbacks(resolved.get("optuna_trial"), spec.primary_key)  # [] unless a study with a pruner runs it
    trainer = build_trainer(resolved, run_dir, trial.resume, trial.progress, extra_callbacks=[AttemptHeartbeat(attempts, write_running), *snapshots, *pruning])
    record.precision = str(trainer.precision)  # what Lightning runs (after its own substitutions), not what was asked
    record.trackers = tracker_statuses(trainer)
    last = run_dir / "checkpoints" / LAST_NAME
    if not last.is_file():  # a data-driven init calibrates once; a resumed run has its result in the checkpoint
        module.calibration_batches = lambda: calibration_batches(datamodule, getattr(trial.adapter, "init_batches", 0), trial.seed)
    stops.phase = "training"
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
        return record_pruned(run_dir, record, module, trainer, spec, attempts, started_cpu)
    stops.phase = "the final evaluation and saving"

    try:  # a fault after fit (evaluation, saving, writing) closes the tracker runs as failed, then propagates
        if module.best is None and not resolved["trainer"].get("fast_dev_run", False):
            # no selectable evaluation happened during fit (e.g. evaluation points all fell before
            # AdaLoRA's final phase): evaluate the final adapter once so best/final exist
            trainer.validate(module, datamodule=datamodule, verbose=False)
        final = module.curve[-1] if module.curve else {}
        # summary and artifacts describe the trained (final) adapter; restore_best below may load an
        # earlier state (e.g. an AdaLoRA rank pattern from mid-schedule): the scored one
        method_summary = module.method.summary()
        if module.init_summary is not None:
            method_summary["init"] = module.init_summary  # what the data-driven init read
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

        record.succeed(module, trainer, datamodule, spec, final=final, test=test, method_summary=method_summary,
                       exported_state=exported_state if save else None)
        record.snapshots = list_snapshots(run_dir) if snapshots else []
        check_trustworthy(record, test_expected=bool(spec.has_test and resolved.get("test_after_fit", True)))
        record.trackers = tracker_statuses(trainer)
        record.account(end_attempt(attempts, "success"), started_cpu)  # wall time: every process of this trial (lora_lab.resume.attempts)
        if trainer.is_global_zero:
            _write_predictions(run_dir, getattr(module, "predictions", None))
            write_result(run_dir, record)
    except BaseException as err:
        fail_trackers(trainer, err)
        raise
    finish_trackers(trainer, record.to_dict())  # after result.json: the trackers' final summary is the record's
    if tracker_statuses(trainer) != record.trackers and trainer.is_global_zero:
        record.trackers = tracker_statuses(trainer)  # a tracker that failed while closing: the record says so
        write_result(run_dir, record)
    return record


def record_pruned(run_dir: Path, record: ResultRecord, module, trainer, spec, attempts: list[dict], started_cpu: float) -> ResultRecord:
    """A trial its Optuna study's pruner stopped (`lora_lab.pruning`): result.json ``pruned`` with the
    curve so far (no test evaluation, no adapter saved: the trial is not scored)."""
    record.status, record.reason = "pruned", pruned_reason(trainer)
    record.task_spec = spec.__dict__
    record.primary_metric = spec.primary_key
    record.metrics = {"best_val": module.best or {}, "final": module.curve[-1] if module.curve else {}, "test": {}}
    record.curve = module.curve
    record.optimizer_steps = int(trainer.global_step)
    record.account(end_attempt(attempts, "pruned"), started_cpu)
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
