"""Adapter config schemas: one dataclass per method, validated before anything is built.

The base `AdapterConfig` holds only what every method has: ``method``, ``dropout`` (on the adapter
branch's input), ``targets``, ``exclude`` and ``init``. Everything else is a method's own knob and
lives only in that method's dataclass: LoRA's ``r``, ``alpha``, ``rslora`` (`lora_lab.adapters.lora`),
AdaLoRA's ``target_r``, ``tinit`` ..., VeRA's ``d_initial`` ... A method without ``alpha`` does not
carry one, and setting a knob the chosen method does not have is an error naming the methods that do.

The inits a method accepts are computed from the init registry (`lora_lab.adapters.registry`): those
registered for the method's ``init_family`` (default: the method's name; LoRA, LoRA+ and DoRA share
``lora``). An init not registered there is a one-line error listing the allowed ones. The field default
of ``init`` is the method's default init.

``targets`` takes three forms (see `lora_lab.adapters.targets`): a preset name (``qv``, ``attn``,
``attn_mlp``, ``all_linear`` ...), a list of module names matched as dotted suffixes, or any other
string, read as a regular expression that must match the whole dotted module name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lora_lab.adapters.registry import init_matches, inits_for
from lora_lab.errors import ConfigError, did_you_mean


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(key: str, value) -> None:
    if not is_int(value) or value <= 0:
        raise ConfigError(f"adapter.{key}", f"must be a positive integer, got {value!r}")


def check_positive_number(key: str, value) -> None:
    if not is_number(value) or value <= 0:
        raise ConfigError(f"adapter.{key}", f"must be a positive number, got {value!r}")


def check_bool(key: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"adapter.{key}", f"must be true or false, got {value!r}")


@dataclass
class AdapterConfig:
    """Knobs every method has. Subclasses set ``method`` and ``init`` defaults, may name their
    ``init_family`` and extend `validate` for their own knobs."""

    method: str = ""
    dropout: float = 0.0
    targets: Any = "qv"
    exclude: list = field(default_factory=list)
    init: str = ""

    #: the family whose registered inits this method accepts (empty: the method's own name)
    init_family: ClassVar[str] = ""

    @classmethod
    def family(cls) -> str:
        return cls.init_family or knob_defaults(cls)["method"]

    @classmethod
    def allowed_inits(cls) -> tuple[str, ...]:
        """The inits (names or ``prefix*`` patterns) registered for this method's family."""
        return inits_for(cls.family())

    def validate(self) -> None:
        if not is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("adapter.dropout", f"must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.targets, str) and self.targets) and not (
            isinstance(self.targets, (list, tuple)) and self.targets and all(isinstance(t, str) for t in self.targets)
        ):
            raise ConfigError("adapter.targets", f"must be a preset name, a regex or a non-empty list of names, got {self.targets!r}")
        if not isinstance(self.exclude, (list, tuple)) or not all(isinstance(t, str) for t in self.exclude):
            raise ConfigError("adapter.exclude", f"must be a list of module names, got {self.exclude!r}")
        allowed = self.allowed_inits()
        if not isinstance(self.init, str) or not any(init_matches(self.init, p) for p in allowed):
            raise ConfigError("adapter.init", f"{self.init!r} is not an init of method {self.method!r}; allowed: {', '.join(allowed)}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d["targets"], tuple):
            d["targets"] = list(d["targets"])
        return d


def knob_names(config_cls: type[AdapterConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def knob_defaults(config_cls: type[AdapterConfig]) -> dict[str, Any]:
    """``{knob: default}`` of a method's schema."""
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        for f in dataclasses.fields(config_cls)
    }


def check_schema(config_cls: type[AdapterConfig], method: str) -> None:
    """The contract a method's schema must meet to be registered: its ``method`` default is its name
    and it names a default init."""
    defaults = knob_defaults(config_cls)
    if defaults["method"] != method:
        raise TypeError(f"{config_cls.__name__}.method defaults to {defaults['method']!r}, not {method!r}")
    if not isinstance(defaults["init"], str) or not defaults["init"]:
        raise TypeError(f"{config_cls.__name__} names no default init")


def check_default_init(config_cls: type[AdapterConfig]) -> None:
    """After discovery: the schema's default init is registered for its family (else every run of
    the method would fail its own config check)."""
    default, allowed = knob_defaults(config_cls)["init"], config_cls.allowed_inits()
    if not any(init_matches(default, p) for p in allowed):
        raise TypeError(f"{config_cls.__name__}: default init {default!r} is not registered for family {config_cls.family()!r} (registered: {allowed})")


def parse_adapter_config(raw: dict, registry: dict[str, type[AdapterConfig]]) -> AdapterConfig:
    """Build and validate the config of ``raw['method']``; every error names the bad key."""
    raw = dict(raw)
    method = raw.get("method")
    if method not in registry:
        raise ConfigError("adapter.method", f"unknown method {method!r}; allowed: {', '.join(sorted(registry))}")
    config_cls = registry[method]
    allowed = knob_names(config_cls)
    for key in raw:
        if key not in allowed:
            owners = sorted(m for m, c in registry.items() if key in knob_names(c))
            hint = f" (a knob of {', '.join(owners)} only)" if owners else ""
            raise ConfigError(f"adapter.{key}", f"is not a knob of method {method!r}{hint}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    if isinstance(raw.get("targets"), tuple):
        raw["targets"] = list(raw["targets"])
    config = config_cls(**raw)
    config.validate()
    return config
