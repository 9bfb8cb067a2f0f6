"""Multi-adapter composition for inference: weighted task arithmetic of saved LoRA-family adapters.

Ilharco et al. 2023 ("Editing models with task arithmetic", arXiv 2212.04089, section 2): with task
vectors ``dW_i`` of adapters trained on the same base,

    W <- W + sum_i w_i * dW_i,        dW_i = merged_weight_i(W_i0) - W      (fp32, [out, in])

where ``merged_weight_i`` is the layer's own exact merge: ``s B A`` for LoRA; for DoRA the full
non-additive ``g * (W + s B A) - W`` (ALGORITHMS.md 2a); for PiSSA/OLoRA the layer's base is the saved
residual ``W_i0 = W_res``, so ``dW_i = s (B A - B0 A0)``, the update relative to the original ``W``.
A single adapter with weight 1 therefore gives exactly the model that loading and merging it gives.

Each adapter is evaluated on private copies of the targeted modules; the model is only written at
the end. Heads (classifiers) are not arithmetic: ``head_from=i`` loads adapter ``i``'s heads, and by
default the model's heads are left as they are. All adapters must record the same backbone.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.base import AdapterLayer, is_adaptable
from lora_lab.adapters.io import read_adapter
from lora_lab.errors import ConfigError


@dataclass
class ComposeReport:
    """What `merge_adapters` wrote: adapters and weights, how many adapters touched each module."""

    adapters: list[str]
    weights: list[float]
    modules: dict[str, int] = field(default_factory=dict)
    head_from: str | None = None

    def to_dict(self) -> dict:
        return {"adapters": self.adapters, "weights": self.weights, "modules": dict(self.modules), "head_from": self.head_from}


def _weight_out_in(module: nn.Module) -> torch.Tensor:
    w = module.weight
    return w if isinstance(module, nn.Linear) else w.T


def _backbone_key(meta: dict) -> tuple:
    b = meta.get("backbone") or {}
    return (b.get("name_or_path") or b.get("path") or b.get("name"), b.get("revision"))


def adapter_deltas(model: nn.Module, adapter_dir: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, {module: dW})`` of one saved adapter on ``model``'s weights; ``model`` is not modified."""
    meta, tensors = read_adapter(adapter_dir)
    method = build_method(parse_config(meta["adapter"]))
    deltas: dict[str, torch.Tensor] = {}
    for name in meta["adapted_modules"]:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ConfigError("compose.adapters", f"{str(adapter_dir)!r} adapts {name!r}, which this model does not have") from None
        if isinstance(module, AdapterLayer) or not is_adaptable(module):
            raise ConfigError("compose.model", f"{name!r} is {type(module).__name__}; merge adapters into a bare base model")
        layer = method.make_layer(copy.deepcopy(module), name)
        prefix = name + "."
        layer.load_adapter_state({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        with torch.no_grad():
            deltas[name] = layer.merged_weight(layer.base_weight().float()) - _weight_out_in(module).float()
    return meta, deltas


@torch.no_grad()
def merge_adapters(
    model: nn.Module, adapters: list[tuple[str | os.PathLike, float]], head_from: int | None = None
) -> ComposeReport:
    """Add ``sum_i w_i dW_i`` of the saved adapters ``[(dir, w_i), ...]`` into ``model``'s base weights."""
    if not adapters:
        raise ConfigError("compose.adapters", "needs at least one (adapter_dir, weight) pair")
    for path, weight in adapters:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError("compose.weights", f"weight of {str(path)!r} must be a finite number, got {weight!r}")
        if not Path(path).is_dir():
            raise ConfigError("compose.adapters", f"{str(path)!r} is not a directory")
    if head_from is not None and not 0 <= head_from < len(adapters):
        raise ConfigError("compose.head_from", f"must index one of the {len(adapters)} adapters, got {head_from}")
    total: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    metas = []
    for path, weight in adapters:
        meta, deltas = adapter_deltas(model, path)
        metas.append(meta)
        for name, delta in deltas.items():
            total[name] = total.get(name, 0.0) + float(weight) * delta
            counts[name] = counts.get(name, 0) + 1
    keys = {_backbone_key(m) for m in metas}
    if len(keys) > 1:
        raise ConfigError("compose.adapters", f"adapters were trained on different backbones: {sorted(map(str, keys))}")
    for name, delta in total.items():
        module = model.get_submodule(name)
        w = _weight_out_in(module)
        w.copy_((w.float() + delta).to(w.dtype))
    head_dir = None
    if head_from is not None:
        head_dir = str(adapters[head_from][0])
        meta, tensors = read_adapter(head_dir)
        for head in meta["head_modules"]:
            prefix = head + "."
            model.get_submodule(head).load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    return ComposeReport([str(p) for p, _ in adapters], [float(w) for _, w in adapters], counts, head_dir)


def load_recorded_base(adapter_dir: str | os.PathLike) -> nn.Module:
    """The original backbone an adapter was trained on, from the ``backbone`` record it was saved with."""
    from lora_lab.adapters.io import read_adapter_meta
    from lora_lab.models.backbones import BackboneConfig, build_backbone, parse_backbone_config

    record = dict(read_adapter_meta(adapter_dir).get("backbone") or {})
    # "family" is the key adapters saved before it was renamed model_kind
    model_kind = record.pop("model_kind", None) or record.pop("family", "classification")
    record.pop("family", None)
    num_labels = record.pop("num_labels", None)
    if not record.get("name"):
        raise ConfigError("compose.adapters", f"{str(adapter_dir)!r} records no backbone name; use merge_adapters() on the model")
    if record.get("random_init"):
        raise ConfigError("compose.adapters", f"{str(adapter_dir)!r} was trained on a randomly initialised backbone, which cannot be rebuilt")
    known = set(BackboneConfig.__dataclass_fields__)
    return build_backbone(parse_backbone_config({k: v for k, v in record.items() if k in known}), model_kind, num_labels).eval()
