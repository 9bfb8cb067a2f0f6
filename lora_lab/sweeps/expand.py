"""The planner of ``lora-lab sweep``: a study's trials (grid) or search space (Optuna), composed and
schema-checked without running anything.

Both kinds go through the same steps, on Hydra's public API only (compose API and
``hydra.core.override_parser``):

1. compose the study's master config (``hydra.compose``, with ``sweeps/`` searched like
   ``--config-dir``) and parse ``hydra.sweeper.params`` plus the command-line overrides;
2. grid studies (Hydra's basic sweeper): the cartesian product of the sweeps, in the order Hydra's
   ``--multirun`` launches them (a later override of a key replaces an earlier one at its first
   position); Optuna studies (``hydra/sweeper=optuna``): the search space
   (`lora_lab.sweeps.search_space`), represented for checking by a few corner points;
3. compose every trial (or corner point) and validate it against the schemas; run directories must
   be distinct (one trial, one directory; a sampled value missing from the run name shows up here).

Speed: composing costs ~0.1-0.5 s. Trials that share their config-group choices (``adapter=dora``)
share one composition; value overrides (``adapter.r=4``) are applied to a copy with Hydra's own
override semantics (`lora_lab.sweeps.hydra_private`, the one private call). ``exact=True`` composes
every trial from scratch; the tests check that both agree.
"""

from __future__ import annotations

import copy
import itertools
from contextlib import contextmanager
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


@dataclass
class Plan:
    """What a study will run: ``kind`` grid (``trials`` are all of them) or optuna (``trials`` are
    corner points of ``space``; ``sweeper`` is the resolved ``hydra.sweeper`` node)."""

    study: Study
    kind: str
    trials: list[Trial]
    space: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    sweeper: dict = field(default_factory=dict)
    launcher: dict = field(default_factory=dict)
    sweep_dir: str = ""
    params: list[str] | None = None  # a grid study's sweep as Hydra overrides (`study_params`); None for Optuna


def _conf_dir() -> str:
    from lora_lab.config.compose import CONF_DIR

    return CONF_DIR


@contextmanager
def _composer(study: Study):
    """``compose(overrides)`` for the study's primary config: `lora_lab.config.compose.compose` (Hydra's
    compose API, errors as one line), with ``sweeps/`` searched first like ``--config-dir``."""
    from lora_lab.config.compose import compose

    conf = _conf_dir()
    search = [] if study.config_dir is None else [f"hydra.searchpath=[file://{conf}]"]
    yield lambda overrides: compose(search + list(overrides), study.config_name, str(study.config_dir or conf))


def settable_overrides(study: Study, overrides: list[str]) -> list[str]:
    """``overrides`` of ``lora-lab sweep`` with schema keys the study's group options lack written
    ``++group.key=value`` (`lora_lab.config.compose.schema_settable`), composed as the study composes."""
    from lora_lab.config.compose import schema_settable

    conf = _conf_dir()
    head = ([] if study.config_dir is None else [f"hydra.searchpath=[file://{conf}]"]) + list(study.overrides)
    return schema_settable(head + list(overrides), study.config_name, str(study.config_dir or conf))[len(head):]


def study_params(study: Study, master: DictConfig, kind: str) -> list[str]:
    """The study's ``hydra.sweeper.params`` as overrides. In a grid study a schema key its group's YAML
    lacks (``adapter.init_batches: 2,4``) is written ``++key=...`` as on the command line
    (`settable_overrides`), so a study sweeps every documented knob without a ``+``; the same list is
    what `lora_lab.sweeps.launch.run_multirun` hands to Hydra's sweeper. (An Optuna study's search
    space is read by its own sweeper.)"""
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
    return settable_overrides(study, params) if kind == "grid" and params else params


def _compose_error(err: Exception, study: Study) -> ConfigError:
    if isinstance(err, ConfigError):
        return err
    cause = err.__cause__ or err
    text = " ".join(str(cause).split()) or type(cause).__name__
    text = text.split(" Config search path:")[0]
    return ConfigError(f"study {study.name}", text)


def _is_group(override, master: DictConfig, study: Study) -> bool:
    """A config-group choice (``adapter=dora``, ``+matched=lora``) rather than a value."""
    key = override.key_or_group
    if override.package is not None or key in (master.hydra.runtime.choices or {}):
        return True
    return any((Path(root) / key).is_dir() for root in (_conf_dir(), study.config_dir) if root is not None)


def is_optuna(master: DictConfig) -> bool:
    return "optuna" in str(master.hydra.sweeper.get("_target_", "")).lower()


def grid(parsed: list) -> list[list[str]]:
    """Hydra's basic-sweeper expansion: the cartesian product of every key's values, keys in order of
    first appearance, a later override of a key replacing the earlier one."""
    values: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
        else:
            raise ConfigError(key, f"{override.input_line}: a grid study sweeps lists (a,b,c, choice(...), range(...)); "
                                   "interval(...) and tag(log, ...) need hydra/sweeper=optuna")
    return [list(combo) for combo in itertools.product(*values.values())]


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


def plan_study(study: Study, overrides: list[str] = (), exact: bool = False, validate: bool = True, only=None) -> Plan:
    """The study's plan with ``overrides`` applied; every trial (grid) or corner point (Optuna) is
    composed, resolved and, by default, validated. ``only`` (trial indices) composes just those."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lora_lab.sweeps.search_space import corner_points, format_value, split_space

    parser = OverridesParser.create()
    try:
        cli = parser.parse_overrides(study.overrides + list(overrides))
        hydra_overrides = [o.input_line for o in cli if o.is_hydra_override()]
        task_overrides = [o.input_line for o in cli if not o.is_hydra_override()]
        fixed_task = [o.input_line for o in cli if not o.is_hydra_override() and not o.is_sweep_override()]
        with _composer(study) as compose:
            master = compose(hydra_overrides + fixed_task)
            kind = "optuna" if is_optuna(master) else "grid"
            params = study_params(study, master, kind)
            parsed = parser.parse_overrides(params + task_overrides)
            space, fixed = split_space(parsed) if kind == "optuna" else ({}, {})
            if kind == "optuna":
                points = corner_points(space)
                batches = [[f"{k}={v}" for k, v in fixed.items()] + [f"{k}={format_value(v)}" for k, v in p.items()] for p in points]
            else:
                batches = grid(parsed)
            trials = _compose_trials(study, compose, master, hydra_overrides, batches, parser, exact, only)
            sweeper = OmegaConf.to_container(master.hydra.sweeper, resolve=True)
            launcher = OmegaConf.to_container(master.hydra.launcher, resolve=False)
            sweep_dir = str(master.hydra.sweep.dir)
            if kind == "optuna" and validate:
                check_optuna_plan(study, compose, master, hydra_overrides, parser, space, fixed, points[0], sweeper, sweep_dir)
    except ConfigError:
        raise
    except Exception as err:  # Hydra's own errors name the bad override or config
        raise _compose_error(err, study) from None
    if validate:
        validate_trials(study, trials)
    return Plan(study, kind, trials, space, fixed, sweeper, launcher, sweep_dir, params if kind == "grid" else None)


def check_optuna_plan(study, compose, master, hydra_overrides, parser, space, fixed, base, sweeper, sweep_dir) -> None:
    """The settings of an Optuna study and that every searched key shows in the run dir
    (`lora_lab.sweeps.optuna_checks`): the base corner point against one probe per searched key with
    only that key moved to its other end."""
    from lora_lab.sweeps.optuna_checks import check_storage, check_sweeper_numbers, search_key_collision
    from lora_lab.sweeps.optuna_study import storage_url
    from lora_lab.sweeps.search_space import corner_values, format_value

    check_sweeper_numbers(sweeper)
    check_storage(storage_url(sweeper.get("storage"), sweep_dir), write=False)
    fixed_part = [f"{k}={v}" for k, v in fixed.items()]
    moved = [(key, next((v for v in corner_values(dist) if v != base[key]), None)) for key, dist in space.items()]
    moved = [(key, other) for key, other in moved if other is not None]
    points = [base] + [{**base, key: other} for key, other in moved]
    batches = [fixed_part + [f"{k}={format_value(v)}" for k, v in point.items()] for point in points]
    probes = _compose_trials(study, compose, master, hydra_overrides, batches, parser, False, None)
    err = search_key_collision(probes[0].run_dir, [(key, base[key], other, trial.run_dir) for (key, other), trial in zip(moved, probes[1:])])
    if err is not None:
        raise err


def _compose_trials(study, compose, master, hydra_overrides, batches, parser, exact, only) -> list[Trial]:
    from lora_lab.sweeps.hydra_private import apply_value_overrides

    # a sweep dir computed from Hydra's own runtime values needs Hydra's full node: slow path
    exact = exact or "hydra" in str(OmegaConf.to_container(master.hydra.sweep, resolve=False))
    bases: dict[tuple[str, ...], DictConfig] = {}
    trials = []
    for index, trial_overrides in enumerate(batches):
        if only is not None and index not in only:
            continue
        if exact:
            cfg = _light(compose(hydra_overrides + trial_overrides), resolve_sweep=True)
        else:
            parsed = parser.parse_overrides(trial_overrides)
            groups = tuple(o.input_line for o in parsed if _is_group(o, master, study))
            if groups not in bases:
                bases[groups] = _light(compose(hydra_overrides + list(groups)))
            cfg = copy.deepcopy(bases[groups])
            apply_value_overrides([o for o in parsed if not _is_group(o, master, study)], cfg)
        trials.append(_resolve(cfg, index, trial_overrides, study))
    return trials


def expand_study(study: Study, overrides: list[str] = (), exact: bool = False, validate: bool = True, only=None) -> list[Trial]:
    """Every trial of a grid study with ``overrides`` applied (an Optuna study: its corner points)."""
    return plan_study(study, overrides, exact, validate, only).trials


def validate_trials(study: Study, trials: list[Trial]) -> None:
    """Schema-check every trial and require distinct run directories (one trial, one directory)."""
    from lora_lab.config.trial_config import validate

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
