"""Does the adapter fit the backbone? Checked from the backbone's `transformers` config, before any
weight loads (`lora_lab.config.trial_config.parse`):

- the task's family names the model it builds on the backbone (`lora_lab.tasks.base.TaskFamily.model_kind`):
  a generation task (the ``generation`` and ``text_to_sql`` families) needs a decoder or an
  encoder-decoder backbone, and an encoder-only one (BERT, RoBERTa, MiniLM: ``is_decoder`` false) is
  refused (`lora_lab.models.backbones.generation_model_kind`);
- a ``random_init`` backbone is built on the meta device, so transformers' own checks (an unknown
  ``model_type``, a hidden size the attention heads do not divide, a negative size) are one line;
- an init that factorises the base weight (PiSSA and OLoRA take the top-``r`` singular vectors of
  ``W`` in R^{out x in}, LoftQ a rank-``r`` fit of its quantisation residual; PiSSA paper, Sec. 3)
  needs ``r <= min(in, out)`` for every targeted layer (MiLoRA and CorDA likewise; LoRA-GA takes
  ``2r`` singular directions of the gradient, so ``2r <= min(in, out)``: `lora_lab.adapters.init.factorised_rank`). The layers and their shapes come from the
  model built on PyTorch's ``meta`` device (shapes only, no memory, no weights) and the adapter's
  own target resolution (`lora_lab.adapters.targets.resolve_targets`), so the check sees exactly
  the layers the trial would adapt.

- the method itself is attached (without initialisation) to that meta-device model, so what its
  ``attach`` refuses -- targets that match no module, BitFit on a backbone without bias terms -- is
  one line before any run dir exists.

A backbone whose config cannot be read here (a Hub id while offline, a GGUF file that would first
have to be dequantised) is left to the trial, which reports the same errors when it loads.
"""

from __future__ import annotations

from lora_lab.adapters import AdapterConfig
from lora_lab.errors import ConfigError
from lora_lab.models.backbones import BackboneConfig, backbone_config
from lora_lab.tasks.base import TaskConfig
from lora_lab.tasks.registry import family_of


def _readable(backbone: BackboneConfig) -> bool:
    return not backbone.gguf_file


def model_kind_of(task: TaskConfig, backbone: BackboneConfig) -> str:
    """``classification``, or the generation kind (``causal_lm`` / ``seq2seq``; `ConfigError` for an encoder), as the task's family builds it."""
    return family_of(task).model_kind(backbone)


_SHAPES: dict[str, tuple] = {}  # one meta model per distinct (backbone, targets) in a process (a sweep plan checks many trials)


def _target_shapes(backbone: BackboneConfig, kind: str, num_labels: int, adapter: AdapterConfig) -> tuple:
    """``((name, out, in), ...)`` of the layers the adapter targets, from the meta-device model, on which
    the method has also been attached (`_attach_on_meta`)."""
    key = repr((backbone, kind, num_labels, adapter))
    if key not in _SHAPES:
        _SHAPES[key] = _meta_shapes(backbone, kind, num_labels, adapter)
    return _SHAPES[key]


def _attach_on_meta(model, adapter: AdapterConfig, model_type: str | None, heads: list[str]) -> None:
    """The method's own ``attach`` (without initialisation) on the shapes-only model: what it refuses
    there (targets matching no module, BitFit on a backbone without bias terms, ...) is the user's input,
    raised as its `ConfigError` before any run dir exists. Any other exception is left to the trial,
    which attaches to the real model and reports it."""
    import torch

    from lora_lab.adapters import build_method

    try:
        with torch.device("meta"):
            build_method(adapter).attach(model, model_type, heads, initialize=False)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 -- e.g. a method whose attach needs real values: the trial decides
        return


def _meta_shapes(backbone: BackboneConfig, kind: str, num_labels: int, adapter: AdapterConfig) -> tuple:
    import torch
    import transformers

    from lora_lab.adapters.targets import resolve_targets
    from lora_lab.models.backbones import _AUTO, head_modules_for

    config = backbone_config(backbone)
    if kind == "classification":
        config.num_labels = num_labels
    with torch.device("meta"):
        model = getattr(transformers, _AUTO[kind]).from_config(config)
    heads = head_modules_for(model, kind)
    names = resolve_targets(model, adapter.targets, list(adapter.exclude), getattr(config, "model_type", None), heads)
    modules = dict(model.named_modules())
    shapes = []
    for name in names:
        weight = getattr(modules[name], "weight", None)
        if weight is not None and weight.dim() == 2:
            shapes.append((name, *weight.shape))
    _attach_on_meta(model, adapter, getattr(config, "model_type", None), heads)
    return tuple(shapes)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:400]


def check_backbone_fits(task: TaskConfig, backbone: BackboneConfig, adapter: AdapterConfig) -> None:
    """Raise `ConfigError` for a task the backbone cannot run, a ``random_init`` config transformers
    cannot build (an unknown ``model_type``, a hidden size the heads do not divide), or a rank a
    targeted layer cannot hold."""
    from lora_lab.adapters.init import factorised_rank, init_mutates_base

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
    num_labels = task.spec().num_labels if kind == "classification" else 0
    try:
        shapes = _target_shapes(backbone, kind, max(int(num_labels), 1), adapter)
    except ConfigError:
        raise
    except OSError:
        return
    except Exception as err:  # noqa: BLE001 -- transformers' own check of the architecture's numbers
        if built_here:
            raise ConfigError("backbone.random_init", _one_line(err)) from None
        return  # e.g. remote code the meta device cannot build: the trial builds it for real
    directions = factorised_rank(adapter.init, rank) if factorises else 0  # r, or 2r for LoRA-GA
    factor = directions // rank if factorises else 1
    for name, out_features, in_features in shapes if factorises else ():
        limit = min(out_features, in_features)
        if directions > limit:
            needed = f"{rank}" if factor == 1 else f"{rank} ({factor}r = {directions})"
            raise ConfigError("adapter.r", f"{needed} exceeds min(in, out) = {limit} of {name} ({out_features}x{in_features}), which init {adapter.init!r} factorises; allowed: 1 to {min(min(s[1:]) for s in shapes) // factor}")
