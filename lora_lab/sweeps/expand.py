"""Expand a study into its trials without running anything: the ``dry_run=true`` of ``lora-lab sweep``.

The expansion is Hydra's own: the study is loaded through Hydra's config loader in MULTIRUN mode,
``hydra.sweeper.params`` plus the command-line overrides go through Hydra's override parser and
`BasicSweeper.split_arguments` (so the trial list and its order are exactly what ``--multirun``
launches), and every trial's config is what ``load_sweep_config`` would compose for that job.

Speed: Hydra composes every trial from scratch (~0.1-0.5 s each). Trials that share their config-group
choices (``adapter=dora``, ``task=glue_rte``) share one composition here; the remaining value
overrides (``adapter.r=4``, ``seed=2``) are applied to a copy of its job part with Hydra's own
``_apply_overrides_to_config``, in the order Hydra applies them, and each trial is resolved once.
`expand_study(..., exact=True)` takes the slow path (one full Hydra composition per trial, as the
launched job does); the tests check that both agree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from lora_lab.errors import ConfigError
from lora_lab.sweeps.studies import Study


@dataclass
class Trial:
    """One job of a study: its overrides, its resolved config (without ``hydra``) and where it writes."""

    index: int
    overrides: list[str]
    config: dict = field(repr=False)
    sweep_dir: str = ""
    subdir: str = ""

    @property
    def run_dir(self) -> str:
        return str(Path(self.sweep_dir) / self.subdir)


def _loader(study: Study):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    from lora_lab.config import CONF_DIR
    search_path = create_config_search_path(CONF_DIR)
    if study.config_dir is not None:  # like hydra's --config-dir
        search_path.prepend(provider="command-line", path=f"file://{study.config_dir}", anchor=SearchPathQuery(provider="schema"))
    return ConfigLoaderImpl(config_search_path=search_path)


def _compose_error(err: Exception, study: Study) -> ConfigError:
    cause = err.__cause__ or err
    text = " ".join(str(cause).split()) or type(cause).__name__
    text = text.split(" Config search path:")[0]
    return ConfigError(f"study {study.name}", text)


def split_trials(study: Study, overrides: list[str]):
    """``(loader, master config, [[override, ...] per trial])`` exactly as Hydra's BasicSweeper splits them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    loader = _loader(study)
    overrides = study.overrides + list(overrides)
    try:
        master = loader.load_configuration(study.config_name, overrides, run_mode=RunMode.MULTIRUN)
        parser = OverridesParser.create(config_loader=loader)
        cli = parser.parse_overrides(overrides)
        task_overrides = [o.input_line for o in cli if not o.is_hydra_override()]
        params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
        parsed = parser.parse_overrides(params + task_overrides)
        batches = BasicSweeper.split_arguments(parsed, None)[0]
    except Exception as err:  # Hydra's own errors name the bad override or config
        raise _compose_error(err, study) from None
    return loader, master, [list(b) for b in batches]


def _light(full: DictConfig, resolve_sweep: bool = False) -> DictConfig:
    """The job part of a composed config plus the (unresolved) ``hydra.sweep`` node, in struct mode.

    Copying and resolving Hydra's own node (help texts, logging) dominates the cost of a trial and is
    not needed: trial overrides never touch ``hydra.*`` (Hydra forbids sweeping it) and the run dir is
    ``hydra.sweep.dir / hydra.sweep.subdir``.
    """
    light = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
    sweep = {"dir": str(full.hydra.sweep.dir), "subdir": str(full.hydra.sweep.subdir)} if resolve_sweep else OmegaConf.to_container(full.hydra.sweep, resolve=False)
    with open_dict(light):
        light.hydra = {"sweep": sweep}
    OmegaConf.set_struct(light, True)
    return light


def _config_error(err: BaseException) -> ConfigError | None:
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def _resolve(cfg: DictConfig, index: int, overrides: list[str], study: Study) -> Trial:
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # an interpolation that cannot resolve (a resolver's ConfigError is kept)
        inner = _config_error(err)
        where = f"trial {index} ({' '.join(overrides)})"
        if inner is not None:
            raise ConfigError(inner.key, f"{str(inner)[len(inner.key) + 2:]} ({where})") from None
        raise ConfigError(f"study {study.name}", f"{where}: {' '.join(str(err).split())}") from None
    sweep = resolved.pop("hydra")["sweep"]
    return Trial(index, list(overrides), resolved, str(sweep["dir"]), str(sweep["subdir"]))


def expand_study(study: Study, overrides: list[str] = (), exact: bool = False, validate: bool = True, only=None) -> list[Trial]:
    """Every trial of ``study`` with ``overrides`` applied; validated against the schemas by default.

    ``only`` (a set of trial indices) composes just those trials (tests compare paths on samples).
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.defaults_list import Overrides
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader, master, batches = split_trials(study, overrides)
    parser = OverridesParser.create(config_loader=loader)
    # a sweep dir computed from Hydra's own runtime values needs Hydra's full node: slow path
    exact = exact or "hydra" in str(OmegaConf.to_container(master.hydra.sweep, resolve=False))
    bases: dict[tuple[str, ...], DictConfig] = {}
    trials = []
    for index, trial_overrides in enumerate(batches):
        if only is not None and index not in only:
            continue
        try:
            if exact:
                cfg = _light(loader.load_sweep_config(master, trial_overrides), resolve_sweep=True)
            else:
                parsed = parser.parse_overrides(trial_overrides)
                values = Overrides(loader.repository, parsed).config_overrides
                value_lines = {o.input_line for o in values}
                groups = tuple(o.input_line for o in parsed if o.input_line not in value_lines)
                if groups not in bases:
                    bases[groups] = _light(loader.load_sweep_config(master, list(groups)))
                cfg = copy.deepcopy(bases[groups])
                ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except Exception as err:
            raise _compose_error(err, study) from None
        trials.append(_resolve(cfg, index, trial_overrides, study))
    if validate:
        validate_trials(study, trials)
    return trials


def validate_trials(study: Study, trials: list[Trial]) -> None:
    """Schema-check every trial and require distinct run directories (one trial, one directory)."""
    from lora_lab.config import validate

    seen: dict[str, Trial] = {}
    for trial in trials:
        try:
            validate(OmegaConf.create(trial.config))
        except ConfigError as err:
            raise ConfigError(err.key, f"{str(err)[len(err.key) + 2:]} (trial {trial.index}: {' '.join(trial.overrides)})") from None
        run_dir = trial.run_dir
        if run_dir in seen:
            other = seen[run_dir]
            raise ConfigError(
                "run_name",
                f"trials {other.index} ({' '.join(other.overrides)}) and {trial.index} ({' '.join(trial.overrides)}) "
                f"share the run dir {run_dir}; put the differing key into run_suffix",
            )
        seen[run_dir] = trial


def trial_summary(trial: Trial) -> dict:
    """What the plan file records about a trial (paths relative to the sweep dir), with its resolved
    config so the report can place a trial that never wrote a result.json in its row and column."""
    return {"index": trial.index, "subdir": trial.subdir, "overrides": list(trial.overrides), "config": trial.config}
