"""Run an Optuna study to ``n_trials`` trials through a Hydra launcher: resumable and shareable.

The study lives in durable storage (`lora_lab.optuna_storage`): by default
``sqlite:///<sweep dir>/optuna.db`` (the sweep dir is ``runs/<study>``); ``journal`` (Optuna's journal
file, ``<sweep dir>/optuna.journal``), the storage for several SLURM jobs running ``lora-lab sweep``
on a shared filesystem; or any RDB URL (``hydra.sweeper.storage=postgresql://...``). Each process repeats:

1. under the study lock (``flock`` on ``<sweep dir>/.optuna/<study name>.lock``) claim up to
   ``n_jobs`` trials: first every RUNNING trial no live process holds (an interrupted trial: it is
   relaunched with its own sampled values, so it lands in the same run directory and resumes from
   its checkpoint like any other run), then new ones while the study has fewer than ``n_trials``
   trials in any state. A claim is a ``flock`` on ``.optuna/<study name>-trial<n>.lock`` held until
   the trial is told, so the kernel frees it when its process dies;
2. launch the claimed trials with the configured launcher (sequential, joblib, submitit, SLURM);
3. tell Optuna each trial's objective, which the training task returns: the task's selection metric
   on validation (never test). A trial that failed (result.json ``failed``, an exception, no number)
   is told FAIL, never a score; a trial whose run another job holds is left RUNNING for its holder.

Why our own claims rather than Optuna's heartbeat (``heartbeat_interval`` + ``fail_stale_trials`` +
``RetryFailedTrialCallback``): in Optuna 5.1 the heartbeat exists for RDB storages only, not for the
journal file storage that clusters use; it notices a dead process only after its grace period (a
``flock`` is released by the kernel the moment the process dies); and it marks the interrupted trial
FAIL and retries its parameters as a new trial, so the study would count a failure that did not
happen and give the resumed run a second trial number. The claim keeps one trial number per run.

Pruning (``hydra/sweeper/pruner=median|...``, off by default): the pruner is kept in the study's
user attributes and each launched trial gets the run-control override ``optuna_trial={storage,
study, number}``; the trial reports its selectable validation evaluations and stops when the pruner
says so (`lora_lab.pruning`), result.json ``pruned``, told PRUNED here (neither score nor failure).

Sampling: the sampler is built for each new trial with seed ``sampler.seed + trial number`` (TPE by
default, seed 0), so a resumed or shared study never repeats the random draws of its first trials,
and the same study in the same storage samples the same points however it was interrupted.

Output: one line per finished trial on stdout, as any sweep prints (`lora_lab.sweeps.trial_lines`),
with the Optuna trial number, the study's best so far and an ETA; ``k/N`` counts the study's finished
trials (complete or failed, by any process) against ``n_trials``:

    [3/20] glue_rte/minilm/lora-r8-a16-kaiming-qv/lr0.00112-seed0 success val=0.6354 test=- 71 s  (optuna #2, best 0.6498)  ETA 19 min
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.optuna_storage import open_storage, storage_url
from lora_lab.results.record import load_record
from lora_lab.results.run_summary import fmt_duration
from lora_lab.sweeps.trial_lines import eta_s, trial_line

LOCK_DIR = ".optuna"


class FileLock:
    """An exclusive ``flock`` on ``path``; the kernel releases it when the holding process dies."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def acquire(self, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@dataclass
class Claim:
    trial: object  # optuna.trial.Trial
    lock: FileLock
    adopted: bool


def objective_direction(config) -> str:
    """``maximize``/``minimize`` for the study's selection metric (the task's primary metric)."""
    from lora_lab.config.compose import container
    from lora_lab.tasks.registry import parse_task_config
    from lora_lab.sweeps.search_space import metric_direction

    return metric_direction(parse_task_config(container(config.task)).spec().primary_key)


def job_outcome(ret) -> tuple[str, float | None, str, str | None]:
    """``(state, value, reason, run dir)`` of a launched trial; state is COMPLETE, PRUNED (result.json
    ``pruned``), FAIL or RUNNING (another job holds the run: leave the Optuna trial to it)."""
    run_dir = None
    if ret.hydra_cfg is not None:
        run_dir = str(ret.hydra_cfg.hydra.runtime.output_dir)
    try:
        value = ret.return_value
    except Exception as err:  # the task raised (it records result.json itself)
        return "FAIL", None, f"{type(err).__name__}: {err}", run_dir
    status, reason = "?", ""
    if run_dir is not None:
        try:
            record = json.loads((Path(run_dir) / "result.json").read_bytes())
            status, reason = record.get("status", "?"), record.get("reason") or ""
        except (OSError, ValueError):
            pass
    if value is None and status == "running":
        return "RUNNING", None, "held by another job", run_dir
    if status == "pruned":  # stopped by the study's pruner (`lora_lab.pruning`): neither a score nor a failure
        return "PRUNED", None, reason, run_dir
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and status == "success":
        return "COMPLETE", float(value), "", run_dir
    return "FAIL", None, reason or f"status {status}, objective {value!r}", run_dir


def _plain(node):
    """A config node as a plain dict (None stays None)."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else (dict(node) if node else None)


def _quoted(text: str) -> str:
    """``text`` as a quoted Hydra override string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class OptunaStudyRun:
    """One process's share of an Optuna study (see the module docstring)."""

    def __init__(self, *, sampler, direction, storage, study_name, n_trials, n_jobs, config, launcher, space, fixed, pruner=None):
        if int(n_trials) <= 0:
            raise ConfigError("hydra.sweeper.n_trials", f"must be a positive integer, got {n_trials}")
        if int(n_jobs) <= 0:
            raise ConfigError("hydra.sweeper.n_jobs", f"must be a positive integer, got {n_jobs}")
        if direction not in ("auto", "maximize", "minimize"):
            raise ConfigError("hydra.sweeper.direction", f"{direction!r}; allowed: auto, maximize, minimize")
        self.sampler_cfg = sampler
        self.pruner_cfg = _plain(pruner)
        self.direction = objective_direction(config) if direction == "auto" else direction
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.storage = storage_url(storage, self.sweep_dir)
        self.study_name = str(study_name)
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.launcher, self.space, self.fixed = launcher, space, fixed
        self.lock_dir = self.sweep_dir / LOCK_DIR
        self.job_idx = 0

    def _sampler(self, number: int):
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(self.sampler_cfg, resolve=True) if not isinstance(self.sampler_cfg, dict) else dict(self.sampler_cfg)
        if cfg.get("_partial_"):
            raise ConfigError("hydra/sweeper/sampler", f"{cfg.get('_target_')} needs the search space up front; use tpe, random or cmaes (a grid study uses the basic sweeper)")
        seed = cfg.get("seed")
        return instantiate({**cfg, "seed": None if seed is None else int(seed) + number})

    def open_study(self):
        import optuna

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # storage schema checks, every start
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from hydra.utils import instantiate

        from lora_lab.pruning import PRUNER_ATTR

        pruner = instantiate(self.pruner_cfg) if self.pruner_cfg else optuna.pruners.NopPruner()
        with FileLock(self.lock_dir / f"{self.study_name}.lock"):
            study = optuna.create_study(study_name=self.study_name, storage=open_storage(self.storage), direction=self.direction,
                                        sampler=self._sampler(0), pruner=pruner, load_if_exists=True)
            if study.user_attrs.get(PRUNER_ATTR) != self.pruner_cfg:  # what the trials' callbacks build (Optuna stores no pruner)
                study.set_user_attr(PRUNER_ATTR, self.pruner_cfg)
        self.say(f"{self.storage} ({self.direction}): {len(study.get_trials(deepcopy=False))} of {self.n_trials} trials exist")
        return study

    def _claim_lock(self, number: int) -> FileLock:
        return FileLock(self.lock_dir / f"{self.study_name}-trial{number}.lock")

    def claim(self, study, skip: set[int]) -> list[Claim]:
        """Up to n_jobs trials: orphaned RUNNING ones first, then new ones up to n_trials in total."""
        import optuna
        from optuna.trial import TrialState

        claims: list[Claim] = []
        with FileLock(self.lock_dir / f"{self.study_name}.lock"):
            trials = study.get_trials(deepcopy=False)
            for frozen in trials:
                if len(claims) == self.n_jobs:
                    return claims
                if frozen.state != TrialState.RUNNING or frozen.number in skip:
                    continue
                lock = self._claim_lock(frozen.number)
                if lock.acquire(blocking=False):
                    claims.append(Claim(optuna.trial.Trial(study, frozen._trial_id), lock, adopted=True))
            # enqueued (WAITING) trials are asked first and already count towards n_trials
            waiting = sorted(t.number for t in trials if t.state == TrialState.WAITING)
            total = len(trials)
            while len(claims) < self.n_jobs and (waiting or total < self.n_trials):
                study.sampler = self._sampler(waiting.pop(0) if waiting else total)
                trial = study.ask(self.space)
                total += trial.number >= total
                lock = self._claim_lock(trial.number)
                lock.acquire()
                claims.append(Claim(trial, lock, adopted=False))
        return claims

    def overrides(self, trial) -> list[str]:
        from lora_lab.sweeps.search_space import format_value

        link = []
        if self.pruner_cfg:  # the trial reports to its Optuna trial (`lora_lab.pruning`)
            link = [f"optuna_trial={{storage:{_quoted(self.storage)},study:{_quoted(self.study_name)},number:{trial.number}}}"]
        return [*(f"{k}={v}" for k, v in self.fixed.items()), *(f"{k}={format_value(v)}" for k, v in trial.params.items()), *link]

    def say(self, text: str) -> None:
        """One progress line per trial event, on stderr (Hydra's own logging may be switched off)."""
        print(f"[optuna {self.study_name}] {text}", file=sys.stderr, flush=True)

    def run(self) -> dict:
        """Claim, launch and tell until the study has n_trials finished (or held elsewhere) trials."""
        from optuna.trial import TrialState

        study = self.open_study()
        skip: set[int] = set()
        walls: list[float] = []
        while True:
            claims = self.claim(study, skip)
            if not claims:
                break
            for claim in claims:
                if claim.adopted:
                    self.say(f"resuming interrupted trial {claim.trial.number} with {claim.trial.params}")
            returns = self.launcher.launch([self.overrides(c.trial) for c in claims], initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for claim, ret in zip(claims, returns):
                state, value, reason, run_dir = job_outcome(ret)
                if run_dir is not None:
                    claim.trial.set_user_attr("run_dir", os.path.relpath(run_dir, self.sweep_dir))
                where = os.path.relpath(run_dir, self.sweep_dir) if run_dir else "?"
                if state == "RUNNING":
                    skip.add(claim.trial.number)
                    self.say(f"trial {claim.trial.number} is run by another job: {where}")
                elif state == "COMPLETE":
                    study.tell(claim.trial.number, value)
                elif state == "PRUNED":
                    claim.trial.set_user_attr("pruned_reason", reason[:500])
                    study.tell(claim.trial.number, state=TrialState.PRUNED)
                else:
                    claim.trial.set_user_attr("fail_reason", reason[:500])
                    study.tell(claim.trial.number, state=TrialState.FAIL)
                if state != "RUNNING":
                    self.trial_finished(study, claim.trial.number, run_dir, where, reason, walls)
                claim.lock.release()
        return self.summary(study)

    def trial_finished(self, study, number: int, run_dir: str | None, name: str, reason: str, walls: list[float]) -> None:
        """Print the ``[k/N]`` line of a trial just told (see the module docstring)."""
        from optuna.trial import TrialState

        try:
            record = load_record(Path(run_dir) / "result.json").to_dict() if run_dir else None
        except (OSError, ValueError):
            record = None
        record = record or {"status": "failed", "reason": reason, "run_dir": run_dir}
        if isinstance(record.get("wall_time_s"), (int, float)):
            walls.append(float(record["wall_time_s"]))
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED) for t in trials)
        complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
        best = (max if self.direction == "maximize" else min)(complete) if complete else None
        line = trial_line(done, self.n_trials, name, record) + f"  (optuna #{number}" + (f", best {best:.4f})" if best is not None else ")")
        if walls and done < self.n_trials:
            line += f"  ETA {fmt_duration(eta_s(walls, self.n_trials - done, self.n_jobs, []))}"
        print(line, flush=True)

    def summary(self, study) -> dict:
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        out = {"study_name": self.study_name, "storage": self.storage, "direction": self.direction, "n_trials": len(states),
               "states": {s: states.count(s) for s in sorted(set(states))}}
        try:
            best = study.best_trial
            out.update(best_value=best.value, best_params=best.params, best_number=best.number)
        except ValueError:  # no complete trial
            pass
        return out

