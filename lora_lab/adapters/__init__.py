"""The adapter interface (layer level in `base`, method level in `method`) and its methods.

Importing this package registers every method; `get_method` / `parse_config` are the entry points.
"""

from lora_lab.adapters import pissa  # noqa: F401  (registers the inits "pissa", "pissa_niter_*", "olora")
from lora_lab.adapters import loftq  # noqa: F401  (registers the init "loftq_*", for quantised bases)
from lora_lab.adapters import lora  # noqa: F401  (registers "lora")
from lora_lab.adapters import dora  # noqa: F401  (registers "dora")
from lora_lab.adapters import adalora  # noqa: F401  (registers "adalora")
from lora_lab.adapters.base import AdapterLayer, adapters_disabled
from lora_lab.adapters.config import AdapterConfig
from lora_lab.adapters.method import METHODS, AdapterMethod, AttachReport, build_method, config_registry


def parse_config(raw: dict) -> AdapterConfig:
    """Validate a raw adapter config (e.g. ``cfg.adapter``) against its method's schema."""
    from lora_lab.adapters.config import parse_adapter_config

    return parse_adapter_config(raw, config_registry())


__all__ = [
    "AdapterConfig",
    "AdapterLayer",
    "AdapterMethod",
    "AttachReport",
    "METHODS",
    "adapters_disabled",
    "build_method",
    "parse_config",
]
