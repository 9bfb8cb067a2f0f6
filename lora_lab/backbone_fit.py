"""Does the adapter fit the backbone? Checked from the backbone's `transformers` config, before any
weight loads (`lora_lab.config.parse`):

- a generation task (``generation``, ``text_to_sql`` families) needs a decoder or an encoder-decoder
  backbone: an encoder-only one (BERT, RoBERTa, MiniLM: ``is_decoder`` false) is refused
  (`lora_lab.models.backbones.generation_model_kind`);
- a ``random_init`` backbone is built on the meta device, so transformers' own checks (an unknown
  ``model_type``, a hidden size the attention heads do not divide, a negative size) are one line;
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


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:400]


def check_backbone_fits(task: TaskConfig, backbone: BackboneConfig, adapter: AdapterConfig) -> None:
    """Raise `ConfigError` for a task the backbone cannot run, a ``random_init`` config transformers
    cannot build (an unknown ``model_type``, a hidden size the heads do not divide), or a rank a
    targeted layer cannot hold."""
    from lora_lab.adapters.init import init_mutates_base

    if not _readable(backbone):
        return
    built_here = backbone.random_init is not None  # its errors are the user's input, not a download's
    try:
        kind = model_kind_of(task, backbone)
    except ConfigError:
        raise  # an encoder-only backbone for a generation task
    except OSError:
        return  # the config is not readable here (offline Hub id): the trial reports it
    except (ValueError, KeyError, TypeError) as err:
        if built_here:
            raise ConfigError("backbone.random_init", _one_line(err)) from None
        return
    rank = getattr(adapter, "r", None)
    factorises = isinstance(rank, int) and init_mutates_base(adapter.init, adapter.family())
    if not (factorises or built_here):
        return
    num_labels = task.spec().num_labels if kind == "classification" else 0
    try:
        shapes = _target_shapes(backbone, kind, max(int(num_labels), 1), adapter.targets, list(adapter.exclude))
    except ConfigError:
        raise
    except OSError:
        return
    except Exception as err:  # noqa: BLE001 -- transformers' own check of the architecture's numbers
        if built_here:
            raise ConfigError("backbone.random_init", _one_line(err)) from None
        return  # e.g. remote code the meta device cannot build: the trial builds it for real
    for name, out_features, in_features in shapes if factorises else ():
        limit = min(out_features, in_features)
        if rank > limit:
            raise ConfigError("adapter.r", f"{rank} exceeds min(in, out) = {limit} of {name} ({out_features}x{in_features}), which init {adapter.init!r} factorises; allowed: 1 to {min(min(s[1:]) for s in shapes)}")
