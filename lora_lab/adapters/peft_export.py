"""Export a LoRA-family adapter to HF PEFT's format (``adapter_config.json`` + ``adapter_model.safetensors``).

The export loads with ``peft.PeftModel.from_pretrained(base, OUT_DIR)`` on the *original, unmodified*
base model and reproduces our outputs (peft is not needed to write it). Per adapted module:

    base_model.model.<module>.lora_A.weight          A   [R, in]
    base_model.model.<module>.lora_B.weight          B   [out, R]
    base_model.model.<module>.lora_magnitude_vector  m   [out]      (DoRA only)
    base_model.model.<head>.<param>                  heads, as PEFT ``modules_to_save``

Inits that mutate the base (PiSSA, OLoRA; docs/algorithms/pissa.md) are converted to plain LoRA of rank
``R = 2r`` so that the residual base is not needed (PiSSA paper appendix C; PEFT
``subtract_mutated_init``):

    W_res + s B A = W + s (B A - B0 A0) = W + s' [B, -B0] [A; A0]
    A' = [A; A0],  B' = [B, -B0],  r' = 2r,  alpha' = 2 alpha  (rsLoRA: alpha' = sqrt(2) alpha),  s' = s

For DoRA the same ``V = W_res + s B A`` results, so the magnitude is exported unchanged. The exported
config says ``init_lora_weights: true`` (PEFT refuses to load a converted adapter marked ``pissa``).
Our own format (`lora_lab.adapters.io`) stays the one used to resume and evaluate; provenance of an
export (source, conversion, pooling) goes to ``lora_lab_export.json`` next to the PEFT files.

A classifier trained with ``backbone.pooling`` ``cls`` or ``mean`` (`lora_lab.models.pooling`) has a head
PEFT cannot express: the export holds its classifier as usual, `pooling_note` says in one line what the
loader must do (``lora-lab export`` prints it; the provenance file records it), and the exported adapter
reproduces the scored model on a base given that pooling first.

Exporters are registered per method in `lora_lab.adapters.export_registry`: ``lora``, ``loraplus``
and ``dora`` here; other methods register their own next to their layer (``vera``) or in their export
module (``adalora``: `lora_lab.adapters.adalora_export`). The package ``lora_lab.adapters`` imports
every plug-in, so the registry is complete once the package is imported.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import torch
from safetensors.torch import save_file
from torch import nn

from lora_lab.adapters.export_registry import PEFT_EXPORTERS, PEFT_PREFIX, Exporter, register_peft_exporter, saved_tensor
from lora_lab.adapters.init import init_mutates_base
from lora_lab.adapters.io import CONFIG_NAME, _atomic_write_bytes, adapter_checkpoint_state, adapter_meta, read_adapter, recorded_pooling
from lora_lab.adapters.method import AdapterMethod
from lora_lab.errors import ConfigError
from lora_lab.locations import resolve_path
from lora_lab.strict_read import read_json_file

PEFT_CONFIG_NAME = "adapter_config.json"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
PROVENANCE_NAME = "lora_lab_export.json"
_PREFIX = PEFT_PREFIX
EXPORT_FORMATS = ("peft",)

# our model kind (``model_kind`` in the backbone record of a saved adapter) -> PEFT task_type
_TASK_TYPES = {"classification": "SEQ_CLS", "causal_lm": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}
_CONV1D_MODEL_TYPES = {"gpt2", "openai-gpt"}


@register_peft_exporter("lora", "loraplus", "dora")
def export_lora_family(meta: dict, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """LoRA (LoRA+ too: it differs only in the optimizer) and DoRA, with the rank-2r conversion for
    inits that mutate the base."""
    cfg = meta["adapter"]
    r, alpha, rslora = int(cfg["r"]), float(cfg["alpha"]), bool(cfg.get("rslora", False))
    convert = init_mutates_base(cfg.get("init", "kaiming"))
    out: dict[str, torch.Tensor] = {}
    for module in meta["adapted_modules"]:
        a, b = saved_tensor(tensors, module, "lora_A"), saved_tensor(tensors, module, "lora_B")
        if convert:
            a0, b0 = saved_tensor(tensors, module, "lora_A0"), saved_tensor(tensors, module, "lora_B0")
            a, b = torch.cat([a, a0], dim=0), torch.cat([b, -b0], dim=1)
        out[f"{_PREFIX}{module}.lora_A.weight"] = a
        out[f"{_PREFIX}{module}.lora_B.weight"] = b
        if cfg["method"] == "dora":
            out[f"{_PREFIX}{module}.lora_magnitude_vector"] = saved_tensor(tensors, module, "magnitude")
    if convert:
        r, alpha = 2 * r, (math.sqrt(2.0) * alpha if rslora else 2.0 * alpha)
    fields = {
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": float(cfg.get("dropout", 0.0)),
        "use_rslora": rslora,
        "use_dora": cfg["method"] == "dora",
        "init_lora_weights": True,
        "lora_bias": False,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    return fields, out


def peft_task_type(backbone: dict | None = None, model: nn.Module | None = None) -> str | None:
    """PEFT ``task_type`` from our backbone record (``model_kind``; ``family`` in older adapters) or else the model class."""
    backbone = backbone or {}
    for key in ("model_kind", "family", "task_type", "task_kind", "task", "kind"):
        value = backbone.get(key)
        if isinstance(value, str) and value.lower() in _TASK_TYPES:
            return _TASK_TYPES[value.lower()]
    if model is not None:
        name = type(model).__name__
        if name.endswith("ForSequenceClassification"):
            return "SEQ_CLS"
        if name.endswith("ForTokenClassification"):
            return "TOKEN_CLS"
        if name.endswith(("ForCausalLM", "LMHeadModel")):
            return "CAUSAL_LM"
        if name.endswith("ForConditionalGeneration") and getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            return "SEQ_2_SEQ_LM"
    return None


def base_model_name(backbone: dict) -> str | None:
    """What ``from_pretrained`` can load: the Hub id, else the name (``pypi:<pkg>`` resolved to its directory)."""
    name = backbone.get("hub_id") or backbone.get("name_or_path") or backbone.get("path") or backbone.get("name")
    if isinstance(name, str) and name.startswith("pypi:") and not backbone.get("hub_id"):
        try:
            return resolve_path(name)
        except (ImportError, ValueError):
            return name
    return name


def convert_to_peft(
    meta: dict, tensors: dict[str, torch.Tensor], task_type: str | None = None, exporter: Exporter | None = None
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Our saved ``(meta, tensors)`` -> PEFT ``(adapter_config, state_dict)``; ``exporter`` overrides the
    method's registered one (e.g. AdaLoRA -> plain LoRA)."""
    method = meta["adapter"]["method"]
    if exporter is None and method not in PEFT_EXPORTERS:
        raise ConfigError("export.format", f"no PEFT exporter for method {method!r}; available: {', '.join(sorted(PEFT_EXPORTERS))}")
    fields, state = (exporter or PEFT_EXPORTERS[method])(meta, tensors)
    heads = list(meta.get("head_modules", []))
    for head in heads:
        found = {k: v for k, v in tensors.items() if k.startswith(head + ".")}
        if not found:
            raise KeyError(f"saved adapter has no tensors of head module {head!r}")
        state.update({_PREFIX + k: v for k, v in found.items()})
    backbone = meta.get("backbone") or {}
    config = {
        "peft_type": "LORA",  # an exporter's fields override it (ADALORA, VERA)
        "task_type": task_type or peft_task_type(backbone),
        "base_model_name_or_path": base_model_name(backbone),
        "revision": backbone.get("revision"),
        "target_modules": list(meta["adapted_modules"]),
        "modules_to_save": heads or None,
        "fan_in_fan_out": meta.get("model_type") in _CONV1D_MODEL_TYPES,
        "bias": "none",
        "inference_mode": True,
        **fields,
    }
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return config, state


def write_peft_adapter(out_dir: str | os.PathLike, config: dict, state: dict[str, torch.Tensor], provenance: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(out / PEFT_WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    _atomic_write_bytes(out / PEFT_CONFIG_NAME, lambda p: p.write_text(json.dumps(config, indent=2)))
    _atomic_write_bytes(out / PROVENANCE_NAME, lambda p: p.write_text(json.dumps(provenance, indent=2, default=str)))
    return out


def pooling_note(meta: dict) -> str | None:
    """What a PEFT export cannot express about the pooling, as one line (None: nothing). PEFT's
    ``SEQ_CLS`` model is HF's class, which classifies through its ``cls_pooler``; an adapter trained with
    ``backbone.pooling`` ``cls`` or ``mean`` reproduces the scored model only on a base given that pooling
    first."""
    pooling = recorded_pooling(meta)
    if pooling == "cls_pooler" or (meta.get("backbone") or {}).get("model_kind", "classification") != "classification":
        return None
    return (f"PEFT cannot express backbone.pooling={pooling!r} (its SEQ_CLS model uses HF's pooler): call "
            f"lora_lab.models.pooling.apply_pooling(base, {pooling!r}) before PeftModel.from_pretrained to reproduce the scored model")


def _provenance(meta: dict, config: dict, source: str) -> dict:
    cfg = meta["adapter"]
    return {
        "pooling": recorded_pooling(meta),
        "not_expressed_by_peft": pooling_note(meta),
        "source": source,
        "method": cfg["method"],
        "init": cfg.get("init"),
        "r": cfg.get("r"),
        "alpha": cfg.get("alpha"),
        "exported_r": config.get("r", config.get("init_r")),
        "exported_alpha": config.get("lora_alpha"),
        "rank_2r_conversion": init_mutates_base(cfg.get("init", "kaiming")),
        "backbone": meta.get("backbone") or {},
    }


def export_adapter_to_peft(
    model: nn.Module, method: AdapterMethod, out_dir: str | os.PathLike, base_model_name: str | None = None, backbone: dict | None = None
) -> Path:
    """Export the live adapter of ``model`` (unmerged) to PEFT format in ``out_dir``."""
    if any(layer.merged for layer in method.layers.values()):
        raise RuntimeError("unmerge the adapter before exporting it")
    backbone = dict(backbone or {})
    if base_model_name is not None:
        backbone.setdefault("name", base_model_name)
    meta = adapter_meta(method, backbone)
    config, state = convert_to_peft(meta, adapter_checkpoint_state(model, method), task_type=peft_task_type(backbone, model))
    return write_peft_adapter(out_dir, config, state, _provenance(meta, config, "in-memory model"))


def _adapter_dir_of(run_dir: Path) -> Path:
    for candidate in (run_dir / "adapter", run_dir):
        if (candidate / CONFIG_NAME).is_file():
            meta = read_json_file(candidate / CONFIG_NAME, "export.run_dir")  # a corrupt config: one line, not a traceback
            if isinstance(meta, dict) and meta.get("format") == "lora_lab.adapter":
                return candidate
    raise ConfigError("export.run_dir", f"{str(run_dir)!r} holds no lora_lab adapter (expected {CONFIG_NAME} in it or in its adapter/)")


def export_run(run_dir: str | os.PathLike, fmt: str, out_dir: str | os.PathLike) -> Path:
    """``lora-lab export RUN_DIR --format peft OUT_DIR``: convert a run's saved adapter; returns ``out_dir``."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError("export.format", f"unknown format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    adapter_dir = _adapter_dir_of(Path(run_dir))
    meta, tensors = read_adapter(adapter_dir, "export.run_dir")
    config, state = convert_to_peft(meta, tensors)
    return write_peft_adapter(out_dir, config, state, _provenance(meta, config, str(adapter_dir)))

