"""Adapter config schemas: one dataclass per method, validated before anything is built.

One knob has one name across methods: ``r``, ``alpha``, ``dropout``, ``targets``, ``exclude``,
``init``, ``rslora``. A method's own knobs (AdaLoRA's ``target_r``, ``tinit``, ...) live only in that
method's dataclass; setting a knob the chosen method does not have is an error, not a warning.

``targets`` takes three forms (see `lora_lab.adapters.targets`): a preset name (``qv``, ``attn``,
``attn_mlp``, ``all_linear`` ...), a list of module names matched as dotted suffixes, or any other
string, read as a regular expression that must match the whole dotted module name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lora_lab.errors import ConfigError, did_you_mean


@dataclass
class AdapterConfig:
    """Knobs shared by every method of the LoRA family. ``s = alpha / r`` (``alpha / sqrt(r)`` with
    ``rslora``); ``dropout`` applies to the adapter branch's input only."""

    method: str = "lora"
    r: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    targets: Any = "qv"
    exclude: list = field(default_factory=list)
    init: str = "kaiming"
    rslora: bool = False

    #: inits this method accepts (names or ``prefix*`` patterns); checked against the init registry.
    allowed_inits: ClassVar[tuple[str, ...] | None] = None

    def validate(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ConfigError("adapter.r", f"must be a positive integer, got {self.r!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError("adapter.alpha", f"must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("adapter.dropout", f"must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.rslora, bool):
            raise ConfigError("adapter.rslora", f"must be true or false, got {self.rslora!r}")
        if not (isinstance(self.targets, str) and self.targets) and not (
            isinstance(self.targets, (list, tuple)) and self.targets and all(isinstance(t, str) for t in self.targets)
        ):
            raise ConfigError("adapter.targets", f"must be a preset name, a regex or a non-empty list of names, got {self.targets!r}")
        if not isinstance(self.exclude, (list, tuple)) or not all(isinstance(t, str) for t in self.exclude):
            raise ConfigError("adapter.exclude", f"must be a list of module names, got {self.exclude!r}")
        self.validate_init()

    def validate_init(self) -> None:
        """Check ``init`` against the init registry; methods with their own fixed init override this."""
        from lora_lab.adapters.init import check_init_name

        check_init_name(self.init, self.method, self.allowed_inits)

    @property
    def scaling(self) -> float:
        return self.alpha / (self.r**0.5) if self.rslora else self.alpha / self.r

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d["targets"], tuple):
            d["targets"] = list(d["targets"])
        return d


def knob_names(config_cls: type[AdapterConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


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
