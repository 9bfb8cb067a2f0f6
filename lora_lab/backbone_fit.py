"""Does the adapter fit the backbone? Checked from the backbone's `transformers` config, before any
weight loads (`lora_lab.config.parse`):

- a generation task (``generation``, ``text_to_sql`` families) needs a decoder or an encoder-decoder
  backbone: an encoder-only one (BERT, RoBERTa, MiniLM: ``is_decoder`` false) is refused
  (`lora_lab.models.backbones.generation_model_kind`);
- an init that factorises the base weight (PiSSA and OLoRA take the top-``r`` singular vectors of
  ``W`` in R^{out x in}, LoftQ a rank-``r`` fit of its quantisation residual; PiSSA paper, Sec. 3)
  needs ``r <= min(in, out)`` for every targeted layer. The layers and their shapes come from the
  model built on PyTorch's ``meta`` device (shapes only, no memory, no weights) and the adapter's
  own target resolution (`lora_lab.adapters.targets.resolve_targets`), so the check sees exactly
  the layers the trial would adapt.

A backbone whose config cannot be read here (a Hub id while offline, a GGUF file that would first
have to be dequantised) is left to the trial, which reports the same errors when it loads.
"""

from __future__ import annotations

from lora_lab.adapters import AdapterConfig
from lora_lab.errors import ConfigError
from lora_lab.models.backbones import BackboneConfig, backbone_config, generation_model_kind
from lora_lab.tasks.base import TaskConfig

GENERATION_FAMILIES = ("generation", "text_to_sql")


def _readable(backbone: BackboneConfig) -> bool:
    return not backbone.gguf_file


def model_kind_of(task: TaskConfig, backbone: BackboneConfig) -> str:
    """``classification``, or the generation kind (``causal_lm`` / ``seq2seq``; `ConfigError` for an encoder)."""
    return generation_model_kind(backbone) if task.family in GENERATION_FAMILIES else "classification"


_SHAPES: dict[str, tuple] = {}  # one meta model per distinct (backbone, targets) in a process (a sweep plan checks many trials)


def _target_shapes(backbone: BackboneConfig, kind: str, num_labels: int, targets, exclude) -> tuple:
    """``((name, out, in), ...)`` of the layers the adapter targets, from the meta-device model."""
    key = repr((backbone, kind, num_labels, targets, exclude))
    if key not in _SHAPES:
        _SHAPES[key] = _meta_shapes(backbone, kind, num_labels, targets, exclude)
    return _SHAPES[key]


def _meta_shapes(backbone: BackboneConfig, kind: str, num_labels: int, targets, exclude) -> tuple:
    import torch
    import transformers

    from lora_lab.adapters.targets import resolve_targets
    from lora_lab.models.backbones import _AUTO, head_modules_for

    config = backbone_config(backbone)
    if kind == "classification":
        config.num_labels = num_labels
    with torch.device("meta"):
        model = getattr(transformers, _AUTO[kind]).from_config(config)
    names = resolve_targets(model, targets, exclude, getattr(config, "model_type", None), head_modules_for(model, kind))
    modules = dict(model.named_modules())
    shapes = []
    for name in names:
        weight = getattr(modules[name], "weight", None)
        if weight is not None and weight.dim() == 2:
            shapes.append((name, *weight.shape))
    return tuple(shapes)


def check_backbone_fits(task: TaskConfig, backbone: BackboneConfig, adapter: AdapterConfig) -> None:
    """Raise `ConfigError` for a task the backbone cannot run or a rank no targeted layer can hold."""
    from lora_lab.adapters.init import init_mutates_base

    if not _readable(backbone):
        return
    try:
        kind = model_kind_of(task, backbone)
    except OSError:
        return  # the config is not readable here (offline Hub id): the trial reports it
    rank = getattr(adapter, "r", None)
    if not isinstance(rank, int) or not init_mutates_base(adapter.init):
        return
    num_labels = task.spec().num_labels if kind == "classification" else 0
    try:
        shapes = _target_shapes(backbone, kind, max(int(num_labels), 1), adapter.targets, list(adapter.exclude))
    except OSError:
        return
    for name, out_features, in_features in shapes:
        limit = min(out_features, in_features)
        if rank > limit:
            raise ConfigError("adapter.r", f"{rank} exceeds min(in, out) = {limit} of {name} ({out_features}x{in_features}), which init {adapter.init!r} factorises; allowed: 1 to {min(min(s[1:]) for s in shapes)}")
