"""Hydra sweeper plugin ``hydra/sweeper=optuna`` of lora_lab (resumable, shareable Optuna studies).

Hydra only loads plugins from the ``hydra_plugins`` package, so this thin class lives here; the
work is done by `lora_lab.sweeps.optuna_study.OptunaStudyRun`, on current Optuna (>= 5). The search
space is written in the syntax of Hydra's Optuna sweeper (`lora_lab.sweeps.search_space`), which
this plugin replaces and does not import. Its configs -- ``hydra/sweeper/optuna`` (`SWEEPER_CONFIG`)
the samplers ``hydra/sweeper/sampler=tpe|random|cmaes|gp|qmc`` (`SAMPLERS`: Optuna's own
classes, any of their constructor arguments settable as ``hydra.sweeper.sampler.<arg>=...``) and the
pruners ``hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|threshold`` (`PRUNERS`,
none by default) -- are
stored once Hydra has scanned every plugin, so they win whatever order the plugins were found in.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper

SWEEPER_CONFIG = {
    "_target_": "hydra_plugins.lora_lab_sweeper.optuna_study_sweeper.OptunaStudySweeper",
    "_recursive_": False,  # the sampler is built per trial, seeded with sampler.seed + trial number
    "defaults": [{"sampler": "tpe"}, {"pruner": None}, "_self_"],  # pruning off unless hydra/sweeper/pruner=...
    "sampler": {"seed": 0},
    "direction": "auto",  # from the task's selection metric: accuracy/MCC/Pearson up, a loss down
    "storage": None,  # sqlite:///<sweep dir>/optuna.db; an RDB URL shares one study between jobs
    "study_name": "${study}",
    "n_trials": 20,  # the study's total, over every process and rerun
    "n_jobs": "${oc.select:hydra.launcher.n_jobs,1}",  # trials launched together: the joblib launcher's n_jobs, else 1
    "params": None,
}


#: ``hydra/sweeper/sampler`` options: Optuna's sampler classes, built per trial (``seed`` + trial number)
SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10, "multivariate": False},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None, "n_startup_trials": 1},
    "gp": {"_target_": "optuna.samplers.GPSampler", "seed": None, "n_startup_trials": 10},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None, "qmc_type": "sobol"},
}


#: ``hydra/sweeper/pruner`` options (none by default): Optuna's pruners, asked after every selectable
#: validation of a trial (`lora_lab.pruning`); their constructor arguments settable as ``hydra.sweeper.pruner.<arg>=...``
PRUNERS = {
    "median": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 5, "n_warmup_steps": 0},
    "percentile": {"_target_": "optuna.pruners.PercentilePruner", "percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 0},
    "successive_halving": {"_target_": "optuna.pruners.SuccessiveHalvingPruner", "min_resource": "auto", "reduction_factor": 4},
    "hyperband": {"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 1, "max_resource": "auto", "reduction_factor": 3},
    "threshold": {"_target_": "optuna.pruners.ThresholdPruner", "lower": None, "upper": None, "n_warmup_steps": 0},
}


class OptunaStudySweeper(Sweeper):
    def __init__(self, sampler: Any, direction: str = "auto", storage: Any = None, study_name: str | None = None,
                 n_trials: int = 20, n_jobs: int = 1, params: Any = None, pruner: Any = None) -> None:
        self.options = {"sampler": sampler, "direction": direction, "storage": storage, "study_name": study_name,
                        "n_trials": n_trials, "n_jobs": n_jobs, "pruner": pruner}
        self.params = params
        self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from lora_lab.sweeps.optuna_study import OptunaStudyRun
        from lora_lab.sweeps.search_space import split_space

        params = [f"{k}={v}" for k, v in (self.params or {}).items()]
        space, fixed = split_space(OverridesParser.create().parse_overrides(params + list(arguments)))
        options = {**self.options, "study_name": self.options["study_name"] or str(self.config.get("study", "default"))}
        run = OptunaStudyRun(**options, config=self.config, launcher=self.launcher, space=space, fixed=fixed)
        return run.run()


class OptunaStudyConfig(SearchPathPlugin):
    """Stores `SWEEPER_CONFIG` as ``hydra/sweeper/optuna`` and `SAMPLERS` under ``hydra/sweeper/sampler``;
    Hydra calls this after scanning every plugin and before composing (it adds nothing to the search path)."""

    def manipulate_search_path(self, search_path) -> None:
        store = ConfigStore.instance()
        store.store(group="hydra/sweeper", name="optuna", node=SWEEPER_CONFIG, provider="lora_lab")
        for name, node in SAMPLERS.items():
            store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="lora_lab")
        for name, node in PRUNERS.items():
            store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="lora_lab")
