"""Adapter-only save and load: ``adapter_config.json`` + ``adapter_model.safetensors``.

The JSON records the method config, the exact adapted module names, the head modules saved whole,
the backbone (name, revision, model_type, quantisation, classification pooling) and the format version; the safetensors file holds every
layer's adapter state (`AdapterLayer.adapter_state`), the head parameters and method-level state
under ``__method__.``. Loading rebuilds the method on a fresh backbone from the recorded names
(no target matching, no re-initialisation) and copies the tensors in, strictly; a classifier must pool
as the adapter's was trained to (``backbone.pooling``, `lora_lab.models.pooling`), else loading is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lora_lab.adapters.config import knob_names
from lora_lab.adapters.method import METHODS, AdapterMethod, build_method, parse_config
from lora_lab.adapters.quant import QuantConfig, check_quant_config
from lora_lab.adapters.quant_model import quantize_base
from lora_lab.atomic import atomic_write_via_path
from lora_lab.errors import ConfigError
from lora_lab.strict_read import read_json_file

_atomic_write_bytes = atomic_write_via_path  # the name peft_export imports

FORMAT_VERSION = 2
#: version 1 gave every method LoRA's shared knobs; knobs a method does not have, at their old default,
#: are dropped when a version-1 adapter is read (AdaLoRA's ``rslora: false``)
_V1_SHARED_DEFAULTS = {"rslora": False}
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
METHOD_STATE_PREFIX = "__method__."


def head_state_dict(model: nn.Module, head_modules: list[str]) -> dict[str, torch.Tensor]:
    return {f"{h}.{k}": v for h in head_modules for k, v in model.get_submodule(h).state_dict().items()}


def adapter_checkpoint_state(model: nn.Module, method: AdapterMethod) -> dict[str, torch.Tensor]:
    """Everything that differs from the pretrained backbone: adapters, heads, method state."""
    state = dict(method.adapter_state_dict())
    state.update(head_state_dict(model, method.head_modules))
    state.update({METHOD_STATE_PREFIX + k: v for k, v in method.state_dict().items()})
    return state


def load_checkpoint_state(model: nn.Module, method: AdapterMethod, state: dict[str, torch.Tensor]) -> None:
    method_state = {k[len(METHOD_STATE_PREFIX) :]: v for k, v in state.items() if k.startswith(METHOD_STATE_PREFIX)}
    method.load_state_dict(method_state)
    method.load_adapter_state_dict(state)
    for head in method.head_modules:
        prefix = head + "."
        model.get_submodule(head).load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


def adapter_meta(method: AdapterMethod, backbone: dict | None = None) -> dict:
    """The JSON half of a saved adapter (see the module docstring)."""
    return {
        "format": "lora_lab.adapter",
        "format_version": FORMAT_VERSION,
        "adapter": method.config.to_dict(),
        "adapted_modules": method.adapted_module_names(),
        "head_modules": list(method.head_modules),
        "model_type": method.model_type,
        "backbone": backbone or {},
        "summary": method.summary(),
    }


def save_adapter(out_dir: str | os.PathLike, model: nn.Module, method: AdapterMethod, backbone: dict | None = None) -> Path:
    """Write the adapter of ``model`` into ``out_dir`` (created); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in adapter_checkpoint_state(model, method).items()}
    meta = adapter_meta(method, backbone)
    atomic_write_via_path(out / WEIGHTS_NAME, lambda p: save_file(tensors, str(p)))
    atomic_write_via_path(out / CONFIG_NAME, lambda p: p.write_text(json.dumps(meta, indent=2, default=str)))
    return out


def upgrade_meta(meta: dict) -> dict:
    """Metadata of any earlier format version in the current shape."""
    if meta.get("format_version", 1) < 2:
        adapter = dict(meta.get("adapter", {}))
        known = set(knob_names(METHODS[adapter["method"]].config_cls)) if adapter.get("method") in METHODS else set(adapter)
        for key, default in _V1_SHARED_DEFAULTS.items():
            if key not in known and adapter.get(key, default) == default:
                adapter.pop(key, None)
        meta = {**meta, "adapter": adapter, "format_version": FORMAT_VERSION}
    return meta


def is_saved_adapter(adapter_dir: str | os.PathLike) -> bool:
    """Whether ``adapter_dir`` holds a lora_lab adapter: its config (this format) and its weights file."""
    config, weights = Path(adapter_dir) / CONFIG_NAME, Path(adapter_dir) / WEIGHTS_NAME
    if not (config.is_file() and weights.is_file()):
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == "lora_lab.adapter"
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        return False


def read_adapter_meta(adapter_dir: str | os.PathLike, key: str = "adapter") -> dict:
    """The adapter's metadata in the current shape; an unreadable config is one `ConfigError` for ``key``."""
    meta = read_json_file(Path(adapter_dir) / CONFIG_NAME, key)
    if not isinstance(meta, dict) or meta.get("format") != "lora_lab.adapter":
        raise ConfigError(key, f"{Path(adapter_dir) / CONFIG_NAME} is not a lora_lab adapter config (no \"format\": \"lora_lab.adapter\")")
    return upgrade_meta(meta)


def read_adapter(adapter_dir: str | os.PathLike, key: str = "adapter") -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a saved adapter, without building anything; unreadable files are one
    `ConfigError` for ``key``."""
    meta, weights = read_adapter_meta(adapter_dir, key), Path(adapter_dir) / WEIGHTS_NAME
    try:
        return meta, load_file(str(weights))
    except (OSError, SafetensorError) as err:
        raise ConfigError(key, f"{weights} is not a readable safetensors file ({err})") from None


def load_adapter(adapter_dir: str | os.PathLike, model: nn.Module, quantize: bool = True) -> AdapterMethod:
    """Attach the saved adapter to ``model`` (a freshly loaded, full-precision backbone) and restore its
    state; an adapter trained on a quantised base gets its base quantised the same way (``quantize``)."""
    meta = read_adapter_meta(adapter_dir)
    check_recorded_pooling(meta, model)
    method = build_method(parse_config(meta["adapter"]))
    method.attach(
        model,
        model_type=meta.get("model_type"),
        head_modules=meta["head_modules"],
        module_names=meta["adapted_modules"],
        initialize=False,
    )
    quant = recorded_quant_config(meta) if quantize else None
    if quant is not None:  # the base it was trained on was quantised: quantise this one the same way, then a
        # residual base (QPiSSA) is restored from its saved stored form, bit for bit
        quantize_base(model, method, quant, skip=meta["head_modules"], initialize=False)
    load_checkpoint_state(model, method, load_file(str(Path(adapter_dir) / WEIGHTS_NAME)))
    return method


def recorded_pooling(meta: dict) -> str:
    """The sequence-classification pooling a saved adapter was trained with (``backbone.pooling``;
    adapters saved before it existed: ``cls_pooler``, HF's class)."""
    return (meta.get("backbone") or {}).get("pooling") or "cls_pooler"


def check_recorded_pooling(meta: dict, model: nn.Module) -> None:
    """Refuse to load an adapter onto a classifier that pools differently from the one it was trained
    on (the attribute `lora_lab.models.pooling.apply_pooling` sets; absent: HF's ``cls_pooler``): its
    head would read another vector and score differently, silently."""
    if (meta.get("backbone") or {}).get("model_kind", "classification") != "classification":
        return
    want, have = recorded_pooling(meta), getattr(model, "_lora_lab_pooling", "cls_pooler")
    if want != have:
        raise ConfigError(
            "backbone.pooling", f"the adapter was trained with pooling {want!r} but the model pools with {have!r}; build the "
            f"model with lora_lab.models.backbones.build_backbone or call lora_lab.models.pooling.apply_pooling(model, {want!r}) first",
        )


def recorded_quant_config(meta: dict) -> QuantConfig | None:
    """The quantisation of the base a saved adapter was trained on (``backbone.quantize``), or None."""
    b = meta.get("backbone") or {}
    return check_quant_config(b.get("quantize"), b.get("double_quant", True), b.get("compute_dtype", "float32"))
