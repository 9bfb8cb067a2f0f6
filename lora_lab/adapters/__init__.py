"""The adapter interface (layer level in `base`, method level in `method`) and its methods.

Importing this package registers every method, init and PEFT exporter: the plug-ins are listed here
once, each registering itself on import (`register_method`, `register_init`,
`lora_lab.adapters.export_registry.register_peft_exporter`). `build_method` / `parse_config` are the
entry points.
"""

from lora_lab.adapters import pissa  # noqa: F401  (registers the inits "pissa", "pissa_niter_*", "olora")
from lora_lab.adapters import loftq  # noqa: F401  (registers the init "loftq_*", for quantised bases)
from lora_lab.adapters import orthogonal  # noqa: F401  (registers the init "orthogonal")
from lora_lab.adapters import milora  # noqa: F401  (registers the init "milora")
from lora_lab.adapters import eva  # noqa: F401  (registers the data-driven init "eva")
from lora_lab.adapters import corda  # noqa: F401  (registers the data-driven inits "corda", "corda_kpm")
from lora_lab.adapters import lora_ga  # noqa: F401  (registers the data-driven init "lora_ga")
from lora_lab.adapters import lora  # noqa: F401  (registers "lora")
from lora_lab.adapters import loraplus  # noqa: F401  (registers "loraplus")
from lora_lab.adapters import dora  # noqa: F401  (registers "dora")
from lora_lab.adapters import adalora  # noqa: F401  (registers "adalora")
from lora_lab.adapters import vera  # noqa: F401  (registers "vera" and its PEFT exporter)
from lora_lab.adapters import peft_export  # noqa: F401  (registers the "lora", "loraplus", "dora" exporters)
from lora_lab.adapters import adalora_export  # noqa: F401  (registers the "adalora" exporter)
from lora_lab.adapters.base import AdapterLayer, adapters_disabled
from lora_lab.adapters.config import AdapterConfig
from lora_lab.adapters.method import METHODS, AdapterMethod, AttachReport, build_method, config_registry, parse_config

__all__ = [
    "AdapterConfig",
    "AdapterLayer",
    "AdapterMethod",
    "AttachReport",
    "METHODS",
    "adapters_disabled",
    "build_method",
    "config_registry",
    "parse_config",
]
