"""The adapter interface (layer level in `base`, method level in `method`) and its methods.

Importing this package registers every method, init and PEFT exporter: `registry.discover` imports
every module of this package and every ``lora_lab.plugins`` entry point, each registering itself on
import (`register_method`, `lora_lab.adapters.registry.register_init`,
`lora_lab.adapters.export_registry.register_peft_exporter`); there is no list of them to edit.
`build_method` / `parse_config` are the entry points.
"""

from lora_lab.adapters.base import AdapterLayer, adapters_disabled
from lora_lab.adapters.config import AdapterConfig
from lora_lab.adapters.method import (
    METHODS,
    AdapterMethod,
    AttachReport,
    allowed_inits,
    build_method,
    check_methods,
    config_registry,
    parse_config,
)
from lora_lab.adapters.registry import discover

discover()
check_methods()

__all__ = [
    "AdapterConfig",
    "AdapterLayer",
    "AdapterMethod",
    "AttachReport",
    "METHODS",
    "adapters_disabled",
    "allowed_inits",
    "build_method",
    "config_registry",
    "parse_config",
]
