"""Which modules an adapter wraps.

``targets`` (and ``exclude``) in the adapter config takes one of three forms:

1. a **preset** name, resolved per architecture (``config.model_type``) through module *kinds*:
   ``q, k, v, o`` (attention projections), ``ffn_gate, ffn_in, ffn_out`` (MLP). Presets:
   ``q``, ``k``, ``v``, ``o``, ``qv``, ``qkv``, ``attn`` (q,k,v,o), ``mlp``, ``attn_mlp`` (all of
   them) and ``all_linear`` (every ``nn.Linear``/``Conv1D`` outside the heads, any architecture).
   GPT-2 fuses q, k and v into ``c_attn``: ``qv`` there adapts the whole fused projection (as PEFT
   does; the LoRA paper's GPT-2 code adapts only the q and v slices);
2. a **list** of names, each matching a module whose dotted name equals it or ends with ``"." + name``
   (PEFT semantics: ``query`` matches ``...attention.self.query`` but not ``...query_proj``);
3. any other **string**: a regular expression that must match the whole dotted name (``re.fullmatch``).

Head modules (the classifier, DeBERTa's pooler, an LM head) are never adapted; they are trained and
saved whole. A selection that leaves nothing to adapt is an error that lists the candidates.
"""

from __future__ import annotations

import re

from torch import nn

from lora_lab.adapters.base import is_adaptable
from lora_lab.errors import ConfigError

# module kind -> regex (full match on the dotted name) per model_type family
_BERT_LIKE = {
    "q": r"(.*\.)?attention\.self\.query",
    "k": r"(.*\.)?attention\.self\.key",
    "v": r"(.*\.)?attention\.self\.value",
    "o": r"(.*\.)?attention\.output\.dense",
    "ffn_in": r"(.*\.)?intermediate\.dense",
    "ffn_out": r"(.*\.)?layer\.\d+\.output\.dense",
}
_DEBERTA_V2 = dict(
    _BERT_LIKE,
    q=r"(.*\.)?attention\.self\.query_proj",
    k=r"(.*\.)?attention\.self\.key_proj",
    v=r"(.*\.)?attention\.self\.value_proj",
)
_GPT2 = {
    "q": r"(.*\.)?attn\.c_attn",
    "k": r"(.*\.)?attn\.c_attn",
    "v": r"(.*\.)?attn\.c_attn",
    "o": r"(.*\.)?attn\.c_proj",
    "ffn_in": r"(.*\.)?mlp\.c_fc",
    "ffn_out": r"(.*\.)?mlp\.c_proj",
}
_LLAMA = {
    "q": r"(.*\.)?q_proj",
    "k": r"(.*\.)?k_proj",
    "v": r"(.*\.)?v_proj",
    "o": r"(.*\.)?o_proj",
    "ffn_gate": r"(.*\.)?gate_proj",
    "ffn_in": r"(.*\.)?up_proj",
    "ffn_out": r"(.*\.)?down_proj",
}
_T5 = {
    "q": r"(.*\.)?(SelfAttention|EncDecAttention)\.q",
    "k": r"(.*\.)?(SelfAttention|EncDecAttention)\.k",
    "v": r"(.*\.)?(SelfAttention|EncDecAttention)\.v",
    "o": r"(.*\.)?(SelfAttention|EncDecAttention)\.o",
    "ffn_gate": r"(.*\.)?DenseReluDense\.wi_0",
    "ffn_in": r"(.*\.)?DenseReluDense\.wi(_1)?",
    "ffn_out": r"(.*\.)?DenseReluDense\.wo",
}
_BART = {
    "q": r"(.*\.)?q_proj",
    "k": r"(.*\.)?k_proj",
    "v": r"(.*\.)?v_proj",
    "o": r"(.*\.)?out_proj",
    "ffn_in": r"(.*\.)?fc1",
    "ffn_out": r"(.*\.)?fc2",
}
MODULE_KINDS: dict[str, dict[str, str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "deberta-v2": _DEBERTA_V2,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "t5": _T5,
    "mt5": _T5,
    "bart": _BART,
}
PRESETS: dict[str, tuple[str, ...]] = {
    "q": ("q",),
    "k": ("k",),
    "v": ("v",),
    "o": ("o",),
    "qv": ("q", "v"),
    "qkv": ("q", "k", "v"),
    "attn": ("q", "k", "v", "o"),
    "mlp": ("ffn_gate", "ffn_in", "ffn_out"),
    "attn_mlp": ("q", "k", "v", "o", "ffn_gate", "ffn_in", "ffn_out"),
    "all_linear": (),
}


def module_kind(name: str, model_type: str | None) -> str:
    """The kind (q, k, v, o, ffn_*) of a module name, or its last name component if unknown."""
    for kind, pattern in MODULE_KINDS.get(model_type or "", {}).items():
        if re.fullmatch(pattern, name):
            return kind
    return name.rsplit(".", 1)[-1]


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _matches_any(name: str, spec, model_type: str | None, key: str) -> bool:
    """Does ``name`` match a target spec (preset, list of suffixes, or full-match regex)?"""
    if isinstance(spec, str) and spec in PRESETS:
        kinds = PRESETS[spec]
        if not kinds:  # all_linear
            return True
        if model_type not in MODULE_KINDS:
            raise ConfigError(
                key,
                f"preset {spec!r} is not defined for model_type {model_type!r} (known: "
                f"{', '.join(sorted(MODULE_KINDS))}); use 'all_linear', a list of names or a regex",
            )
        table = MODULE_KINDS[model_type]
        return any(re.fullmatch(table[k], name) for k in kinds if k in table)
    if isinstance(spec, str):
        try:
            return re.fullmatch(spec, name) is not None
        except re.error as err:
            raise ConfigError(key, f"{spec!r} is neither a preset ({', '.join(PRESETS)}) nor a valid regex: {err}") from None
    return any(name == item or name.endswith("." + item) for item in spec)


def candidate_names(model: nn.Module, head_modules: list[str]) -> list[str]:
    """Dotted names of every adaptable module outside the heads and the LM output projection."""
    get_out = getattr(model, "get_output_embeddings", None)
    lm_head = get_out() if callable(get_out) else None
    return [
        n for n, m in model.named_modules()
        if n and is_adaptable(m) and m is not lm_head and not _under(n, head_modules)
    ]


def _summarise(names: list[str]) -> str:
    """Short list of distinct module names with layer indices folded to ``N``."""
    seen: list[str] = []
    for n in names:
        folded = re.sub(r"\.\d+\.", ".N.", n)
        if folded not in seen:
            seen.append(folded)
    return ", ".join(seen[:24]) + (" ..." if len(seen) > 24 else "")


def resolve_targets(
    model: nn.Module, targets, exclude=(), model_type: str | None = None, head_modules: list[str] = ()
) -> list[str]:
    """Dotted names of the modules to adapt, in model order; raises `ConfigError` on zero matches."""
    head_modules = list(head_modules)
    candidates = candidate_names(model, head_modules)
    chosen = [n for n in candidates if _matches_any(n, targets, model_type, "adapter.targets")]
    if exclude:
        chosen = [n for n in chosen if not _matches_any(n, list(exclude), model_type, "adapter.exclude")]
    if not chosen:
        raise ConfigError(
            "adapter.targets",
            f"{targets!r} matches no adaptable module of this {model_type or 'model'} "
            f"(excluding heads {head_modules}); candidates: {_summarise(candidates)}",
        )
    return chosen
