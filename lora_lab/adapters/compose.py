"""Multi-adapter composition for inference: weighted task arithmetic of saved LoRA-family adapters.

Ilharco et al. 2023 ("Editing models with task arithmetic", arXiv 2212.04089, section 2): with task
vectors ``dW_i`` of adapters trained on the same base,

    W <- W + sum_i w_i * dW_i,        dW_i = merged_weight_i(W_i0) - W      (fp32, [out, in])

where ``merged_weight_i`` is the layer's own exact merge: ``s B A`` for LoRA; for DoRA the full
non-additive ``g * (W + s B A) - W`` (docs/algorithms/dora.md); for PiSSA/OLoRA the layer's base is the saved
residual ``W_i0 = W_res``, so ``dW_i = s (B A - B0 A0)``, the update relative to the original ``W``.
A single adapter with weight 1 therefore gives exactly the model that loading and merging it gives.

Each adapter is evaluated on private copies of the targeted modules; the model is only written at
the end. All adapters must record the same backbone.

Heads (classifiers, trained and saved whole) are not arithmetic; `choose_heads` decides whose are kept
before anything is written:

- ``head_from="auto"`` (default): one adapter -> its trained heads; several -> their heads if they are
  identical (same modules, equal tensors), else a `ConfigError` asking for an explicit choice;
- ``head_from=i``: adapter ``i``'s heads;
- ``head_from="none"``: the model's own heads are left as they are (for a classification base loaded
  from a checkpoint without a trained head, that is a random head: only ever on request).

Adapters without heads (generation) need no choice. The report says which heads were kept and why.
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
from lora_lab.adapters.io import CONFIG_NAME, WEIGHTS_NAME, is_saved_adapter, read_adapter
from lora_lab.errors import ConfigError


@dataclass
class ComposeReport:
    """What `merge_adapters` wrote: adapters and weights, how many adapters touched each module."""

    adapters: list[str]
    weights: list[float]
    modules: dict[str, int] = field(default_factory=dict)
    heads: "HeadChoice | None" = None

    def to_dict(self) -> dict:
        out = {"adapters": self.adapters, "weights": self.weights, "modules": dict(self.modules)}
        return {**out, **(self.heads or HeadChoice(None, None, [], "no heads")).to_dict()}


#: ``head_from`` values besides an adapter index
HEAD_AUTO, HEAD_NONE = "auto", "none"


@dataclass
class HeadChoice:
    """Whose heads the merged model keeps: adapter ``index`` (``head_dir``), or none (``index`` is
    ``"none"``: the model's own heads) or nothing to choose (``None``: the adapters carry no heads)."""

    index: int | str | None
    head_dir: str | None
    head_modules: list[str]
    reason: str

    def to_dict(self) -> dict:
        return {"head_from": self.index, "head_dir": self.head_dir, "head_modules": list(self.head_modules), "head_reason": self.reason}

    def describe(self) -> str:
        """One line for the command's output."""
        if self.index is None:
            return "heads: none (the adapters carry no trained heads)"
        if self.index == HEAD_NONE:
            return f"heads: the base model's own {', '.join(self.head_modules)}, not the adapters' trained ones ({self.reason})"
        return f"heads: {', '.join(self.head_modules)} from adapter {self.index} ({self.head_dir}): {self.reason}"


def _weight_out_in(module: nn.Module) -> torch.Tensor:
    w = module.weight
    return w if isinstance(module, nn.Linear) else w.T


def _backbone_key(meta: dict) -> tuple:
    b = meta.get("backbone") or {}
    return (b.get("name_or_path") or b.get("path") or b.get("name"), b.get("revision"))


def adapter_deltas(
    model: nn.Module, adapter_dir: str | os.PathLike, saved: tuple[dict, dict[str, torch.Tensor]] | None = None
) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, {module: dW})`` of one saved adapter (``saved``: its already read ``(meta, tensors)``)
    on ``model``'s weights; ``model`` is not modified."""
    meta, tensors = saved or read_adapter(adapter_dir)
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


def _head_tensors(saved: tuple[dict, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    meta, tensors = saved
    return {k: v for k, v in tensors.items() if any(k.startswith(h + ".") for h in meta["head_modules"])}


def _same_heads(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
    ha, hb = _head_tensors(a), _head_tensors(b)
    return a[0]["head_modules"] == b[0]["head_modules"] and ha.keys() == hb.keys() and all(torch.equal(ha[k], hb[k]) for k in ha)


def choose_heads(adapter_dirs: list[str], saved: list[tuple[dict, dict]], head_from: int | str = HEAD_AUTO) -> HeadChoice:
    """Resolve ``head_from`` (see the module docstring) for the saved ``(meta, tensors)`` of each adapter."""
    allowed = f"an adapter index 0..{len(saved) - 1}, {HEAD_AUTO!r} or {HEAD_NONE!r}"
    if isinstance(head_from, bool) or not (head_from in (HEAD_AUTO, HEAD_NONE) or isinstance(head_from, int)):
        raise ConfigError("compose.head_from", f"{head_from!r}; allowed: {allowed}")
    if isinstance(head_from, int) and not 0 <= head_from < len(saved):
        raise ConfigError("compose.head_from", f"{head_from} does not index one of the {len(saved)} adapters; allowed: {allowed}")
    with_heads = [i for i, (meta, _) in enumerate(saved) if meta["head_modules"]]
    if not with_heads:
        if isinstance(head_from, int):
            raise ConfigError("compose.head_from", f"{head_from}: the adapters carry no trained heads; allowed: {HEAD_AUTO!r}")
        return HeadChoice(None, None, [], "the adapters carry no trained heads")
    if head_from == HEAD_NONE:
        return HeadChoice(HEAD_NONE, None, list(saved[with_heads[0]][0]["head_modules"]), "asked for with head_from=none")
    if isinstance(head_from, int):
        chosen, reason = head_from, "chosen with head_from"
    elif len(saved) == 1:
        chosen, reason = 0, "the only adapter's trained heads"
    else:
        different = [i for i in range(1, len(saved)) if not _same_heads(saved[0], saved[i])]
        if different:
            raise ConfigError(
                "compose.head_from", f"missing: adapters 0 and {different[0]} have different trained heads; "
                f"choose whose to keep with --head-from INDEX (0..{len(saved) - 1}), or --head-from none for the base model's untrained heads",
            )
        chosen, reason = 0, f"identical in all {len(saved)} adapters"
    return HeadChoice(chosen, adapter_dirs[chosen], list(saved[chosen][0]["head_modules"]), reason)


def refuse_reference_rows(saved: list[tuple[dict, dict]]) -> None:
    """Full fine-tuning and BitFit carry no adapter to add: one `ConfigError` line (their method's own)."""
    for meta, _ in saved:
        method = build_method(parse_config(meta["adapter"]))
        if method.reference_row:
            method.merge()  # raises the method's one-line refusal


def check_adapter_dirs(adapter_dirs: list[str | os.PathLike]) -> None:
    """Each path is a saved lora_lab adapter (its ``adapter_config.json`` readable, of this format, and
    its weights file present), else one `ConfigError` naming the path: checked before any model loads."""
    for path in map(Path, adapter_dirs):
        if not is_saved_adapter(path):
            hint = next((f"; did you mean {str(path / sub)!r}?" for sub in ("adapter", "adapter_last") if (path / sub / CONFIG_NAME).is_file()), "")
            raise ConfigError("compose.adapters", f"{str(path)!r} is not a saved lora_lab adapter (expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                              f"in it; allowed: a run's adapter/ or adapter_last/ directory){hint}")


def plan_heads(adapter_dirs: list[str | os.PathLike], head_from: int | str = HEAD_AUTO) -> HeadChoice:
    """`choose_heads` from the adapter directories alone (a command checks it before loading a model)."""
    saved = [read_adapter(d, "compose.adapters") for d in adapter_dirs]
    refuse_reference_rows(saved)
    return choose_heads([str(d) for d in adapter_dirs], saved, head_from)


@torch.no_grad()
def merge_adapters(
    model: nn.Module, adapters: list[tuple[str | os.PathLike, float]], head_from: int | str = HEAD_AUTO
) -> ComposeReport:
    """Add ``sum_i w_i dW_i`` of the saved adapters ``[(dir, w_i), ...]`` into ``model``'s base weights
    and load the heads `choose_heads` picks; nothing is written before every check has passed."""
    if not adapters:
        raise ConfigError("compose.adapters", "needs at least one (adapter_dir, weight) pair")
    for path, weight in adapters:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError("compose.weights", f"weight of {str(path)!r} must be a finite number, got {weight!r}")
    check_adapter_dirs([path for path, _ in adapters])
    saved = [read_adapter(path, "compose.adapters") for path, _ in adapters]
    refuse_reference_rows(saved)
    keys = {_backbone_key(meta) for meta, _ in saved}
    if len(keys) > 1:
        raise ConfigError("compose.adapters", f"adapters were trained on different backbones: {sorted(map(str, keys))}")
    heads = choose_heads([str(p) for p, _ in adapters], saved, head_from)
    total: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for (path, weight), one in zip(adapters, saved):
        _, deltas = adapter_deltas(model, path, one)
        for name, delta in deltas.items():
            total[name] = total.get(name, 0.0) + float(weight) * delta
            counts[name] = counts.get(name, 0) + 1
    for name, delta in total.items():
        module = model.get_submodule(name)
        w = _weight_out_in(module)
        w.copy_((w.float() + delta).to(w.dtype))
    if isinstance(heads.index, int):
        _, tensors = saved[heads.index]
        for head in heads.head_modules:
            prefix = head + "."
            model.get_submodule(head).load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    return ComposeReport([str(p) for p, _ in adapters], [float(w) for _, w in adapters], counts, heads)
