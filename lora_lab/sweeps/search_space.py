"""Optuna search spaces written as Hydra sweep overrides (the syntax of Hydra's Optuna sweeper), as
current Optuna's distributions (``FloatDistribution`` / ``IntDistribution`` with ``log``, Optuna >= 3):

- ``choice(a, b, c)`` (or ``a,b,c``) -> ``CategoricalDistribution`` over the listed values;
- ``interval(lo, hi)`` -> ``FloatDistribution(lo, hi)``, uniform on [lo, hi] (Hydra makes both ends
  floats; ``int(interval(lo, hi))`` -> ``IntDistribution``);
- ``tag(log, interval(lo, hi))`` -> ``log=True``: log-uniform, ``log p ~ U(log lo, log hi)``;
- ``range(start, stop, step)`` -> categorical over the values of the range;
- a plain value -> fixed for every trial.

`corner_points` gives a few concrete trials spanning the space (every choice at least once, both
ends of every interval), which the dry run composes and schema-checks like grid trials.
"""

from __future__ import annotations

from lora_lab.errors import ConfigError


def distribution(override):
    """The Optuna distribution of one parsed sweep override, or None for a fixed value."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return None
    key, value = override.get_key_element(), override.value()
    if override.is_choice_sweep() or override.is_range_sweep():
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_interval_sweep():
        lo, hi = value.start, value.end
        ints = isinstance(lo, int) and isinstance(hi, int)
        if "log" in value.tags and lo <= 0:
            raise ConfigError(key, f"tag(log, interval({lo}, {hi})) needs a positive lower end")
        return (IntDistribution if ints else FloatDistribution)(lo, hi, log="log" in value.tags)
    raise ConfigError(key, f"{override.input_line}: not a search space; allowed: choice(...), interval(lo, hi), tag(log, interval(lo, hi)), range(...)")


def split_space(parsed: list) -> tuple[dict, dict]:
    """``({key: distribution}, {key: fixed value string})``; a later override of a key replaces an earlier one."""
    space, fixed = {}, {}
    for override in parsed:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        dist = distribution(override)
        if dist is None:
            fixed[key] = override.get_value_element_as_str()
        else:
            space[key] = dist
    return space, fixed


def corner_values(dist) -> list:
    """The values `corner_points` takes for one parameter: every choice, or both ends of an interval."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def corner_points(space: dict) -> list[dict]:
    """max(2, largest choice count) points: point i takes each parameter's i-th end/choice (cycling)."""
    ends = {key: corner_values(dist) for key, dist in space.items()}
    n = max([2, *(len(v) for v in ends.values())]) if ends else 1
    return [{key: values[i % len(values)] for key, values in ends.items()} for i in range(n)]


def describe(dist) -> str:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return "choice(" + ", ".join(map(str, dist.choices)) + ")"
    kind = "log-uniform" if getattr(dist, "log", False) else "uniform"
    step = getattr(dist, "step", None)
    return f"{kind}[{dist.low}, {dist.high}]" + (f" step {step}" if step not in (None, 1) else "")


def metric_direction(metric: str) -> str:
    """Optuna direction of a selection metric: a loss (or error) goes down, any score up."""
    name = metric.rsplit("/", 1)[-1].lower()
    return "minimize" if "loss" in name or "error" in name else "maximize"


def format_value(value) -> str:
    """A sampled value as a Hydra override value (floats in full precision, so the run name is exact)."""
    return repr(value) if isinstance(value, float) else str(value)
