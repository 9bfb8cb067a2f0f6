"""The init registry and plug-in discovery: the one list of inits, and how every list gets filled.

Three registries own the lists the suite offers; nothing else keeps one:

- methods: `lora_lab.adapters.method.METHODS`, filled by ``@register_method`` on an `AdapterMethod`;
- inits: `INITS` here, filled by ``@register_init(name, families=...)``;
- task families: `lora_lab.tasks.registry.FAMILIES`, one per package under `lora_lab.tasks`.

**Inits and families.** An init is a function ``fn(layer, name) -> None`` that fills a freshly built
adapter layer (e.g. ``layer.lora_A`` / ``layer.lora_B``). It is registered for the *init families* it
applies to -- the layer types it knows how to fill: ``lora`` (`LoraLayer` and its subclasses, i.e. the
methods ``lora``, ``loraplus``, ``dora``), ``adalora``, ``vera``. A method's config names its family
(``init_family``, default: the method's own name) and the inits it accepts are *computed* here
(`inits_for`), so the config check (the gate) and the registry cannot disagree: an init is allowed
exactly when it is registered for the method's family.

A name ending in ``*`` is a prefix pattern taking a decimal suffix (``pissa_niter_*`` takes
``pissa_niter_4``); give such an init an ``example`` (a concrete name, used by the contract table).

**Discovery.** `discover` imports every module of `lora_lab.adapters` (``pkgutil``), so a method or
init in a new file there registers itself with no import line anywhere, then loads every plug-in
(`lora_lab.plugins`: the entry points of the group ``lora_lab.plugins``), which adds its methods, inits
and task families by being imported. Writing a new init::

    from lora_lab.adapters.registry import register_init

    @register_init("my_init", families=("lora",), display="MyInit")
    @torch.no_grad()
    def my_init(layer, name):
        ...  # fill layer.lora_A [r, in] and layer.lora_B [out, r]

``mutates_base=True`` for an init that writes a residual into the base weight (PiSSA-like: the layer
then keeps ``(A0, B0)`` as buffers and exports as rank-2r LoRA).

This module imports only the standard library, `lora_lab.errors` and `lora_lab.plugins`, so every
layer may import it.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from lora_lab.errors import ConfigError
from lora_lab.plugins import load_plugins

#: packages whose every module `discover` imports (each registers what it defines)
DISCOVERED_PACKAGES = ("lora_lab.adapters",)

InitFn = Callable[..., None]


def init_matches(name: str, pattern: str) -> bool:
    """``name`` is ``pattern``, or ``pattern`` ends in ``*`` and ``name`` is its prefix plus digits."""
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return name.startswith(prefix) and name[len(prefix) :].isdigit()
    return name == pattern


@dataclass(frozen=True)
class InitSpec:
    """One registered init of one family."""

    name: str  # a name or a ``prefix*`` pattern
    family: str
    fn: InitFn
    mutates_base: bool = False
    display: str = ""  # how tables print it (default: the name)
    example: str = ""  # a concrete name (patterns only; the contract table builds rows from it)

    def matches(self, name: str) -> bool:
        return init_matches(name, self.name)

    @property
    def example_name(self) -> str:
        return self.example or self.name


#: ``(family, name or pattern)`` -> its spec, in registration order
INITS: dict[tuple[str, str], InitSpec] = {}


def register_init(
    name: str, *, families: tuple[str, ...] = ("lora",), mutates_base: bool = False, display: str | None = None, example: str | None = None
) -> Callable[[InitFn], InitFn]:
    """Decorator: register ``fn`` as the init ``name`` of each family in ``families``."""
    if name.endswith("*") and not (example and init_matches(example, name)):
        raise TypeError(f"init pattern {name!r} needs an example name it matches (e.g. {name[:-1]}2)")
    if isinstance(families, str) or not families:
        raise TypeError(f"init {name!r}: families must be a non-empty tuple of family names, got {families!r}")

    def wrap(fn: InitFn) -> InitFn:
        for family in families:
            previous = INITS.get((family, name))
            if previous is not None and previous.fn is not fn:
                raise ValueError(f"init {name!r} of family {family!r} is registered twice ({previous.fn.__module__} and {fn.__module__})")
            INITS[(family, name)] = InitSpec(name, family, fn, mutates_base, display or "", example or "")
        return fn

    return wrap


def inits_for(family: str) -> tuple[str, ...]:
    """The inits (names and patterns) registered for ``family``, in registration order."""
    return tuple(spec.name for spec in INITS.values() if spec.family == family)


def init_families() -> tuple[str, ...]:
    """Every family some init is registered for."""
    return tuple(dict.fromkeys(spec.family for spec in INITS.values()))


def find_init(name: str, family: str) -> InitSpec | None:
    """The spec of the init ``name`` (a concrete name) in ``family``; None when it is not registered there."""
    return next((spec for spec in INITS.values() if spec.family == family and spec.matches(name)), None)


def find_any_init(name: str) -> InitSpec | None:
    """The first spec registered under ``name`` in any family (for display names)."""
    return next((spec for spec in INITS.values() if spec.matches(name)), None)


def get_init(name: str, family: str) -> InitSpec:
    """`find_init`, or a one-line `ConfigError` naming the allowed inits of ``family``."""
    spec = find_init(name, family)
    if spec is None:
        raise ConfigError("adapter.init", f"unknown init {name!r} for the {family} family; allowed: {', '.join(inits_for(family))}")
    return spec


def _import_package_modules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__, package_name + "."):
        importlib.import_module(info.name)


def discover() -> None:
    """Import every module of `DISCOVERED_PACKAGES` and every plug-in (idempotent: imports are cached)."""
    for package_name in DISCOVERED_PACKAGES:
        _import_package_modules(package_name)
    load_plugins()
