"""Pruning of Optuna trials on their validation curve: a Lightning callback, off by default.

A study turns it on with a pruner (``hydra/sweeper/pruner=median|percentile|hyperband|threshold``,
`lora_lab.sweeps.optuna_study`); its sweeper then links each trial to its Optuna trial with the
run-control key ``optuna_trial`` (``storage``, ``study``, ``number``; ignored when results are
matched). After every validation the callback reports the primary validation metric to that trial
(``trial.report(value, step)``, step = optimizer steps done) and asks the study's pruner
(``trial.should_prune()``); a trial to stop is ended like an early stop (``trainer.should_stop``, no
exception through Lightning, so trackers and checkpoints close normally) and recorded by the trial as
status ``pruned`` (neither success nor failure: not scored, not a fault, no test evaluation).

Only evaluations the method calls ``selectable`` are reported (the ``selectable`` flag of the curve
point the module just appended, `lora_lab.models.module`): AdaLoRA's evaluations before its final
budget (step <= T - tfinal) hold more than the target rank and are not comparable with other trials'
evaluations, so they are never reported and a trial is never pruned on them.

Optuna's own ``optuna_integration.PyTorchLightningPruningCallback`` reports every validation
(``selectable`` unknown to it) and needs the ``optuna-integration`` package; this callback is a few
lines on Optuna's public ``Trial`` API instead.
"""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

log = logging.getLogger("lora_lab.pruning")

#: the pruner of a study is kept in its storage as this study user attribute (Optuna stores no pruner)
PRUNER_ATTR = "lora_lab_pruner"


def load_trial(storage: str, study: str, number: int):
    """``optuna.Trial`` number ``number`` of the stored study, with the pruner the study recorded
    (None when the study has no pruner or the trial is no longer running, e.g. a run restarted by hand)."""
    import optuna
    from hydra.utils import instantiate
    from optuna.trial import TrialState

    from lora_lab.optuna_storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handle = open_storage(storage)
    pruner_cfg = optuna.load_study(study_name=study, storage=handle).user_attrs.get(PRUNER_ATTR)
    if not pruner_cfg:
        return None
    loaded = optuna.load_study(study_name=study, storage=handle, pruner=instantiate(pruner_cfg))
    frozen = next((t for t in loaded.get_trials(deepcopy=False) if t.number == int(number)), None)
    if frozen is None or frozen.state != TrialState.RUNNING:
        log.warning("Optuna trial %s of %s is not running: this run is not pruned", number, study)
        return None
    return optuna.trial.Trial(loaded, frozen._trial_id)


class OptunaPruning(Callback):
    """Report each selectable validation evaluation to ``trial`` and stop when its pruner says so."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned: str | None = None  # why, once the pruner stopped the run

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not pl_module.curve:
            return
        point = pl_module.curve[-1]  # appended by the module at this validation's epoch end
        if point["step"] != trainer.global_step or not point["selectable"]:
            return
        value = float(point[self.metric])
        self.trial.report(value, step=int(point["step"]))
        if self.trial.should_prune():
            self.pruned = f"pruned by the Optuna pruner after step {point['step']} ({self.metric} {value:.4f})"
            trainer.should_stop = True


def pruning_callbacks(link: dict | None, metric: str) -> list:
    """``[OptunaPruning]`` for a trial linked to a study with a pruner, else ``[]``."""
    if not link or link.get("number") is None:
        return []
    trial = load_trial(str(link["storage"]), str(link["study"]), int(link["number"]))
    return [] if trial is None else [OptunaPruning(trial, metric)]


def pruned_reason(trainer) -> str | None:
    """Why the pruner stopped this trainer's run, or None when it ran to its end."""
    return next((c.pruned for c in trainer.callbacks if isinstance(c, OptunaPruning) and c.pruned), None)
