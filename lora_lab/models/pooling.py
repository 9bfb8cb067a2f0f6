"""Sequence-classification pooling: which vector of the encoder's output the classifier reads.

``backbone.pooling`` (each backbone config declares its native one):

- ``cls_pooler`` -- what `transformers`' ``AutoModelForSequenceClassification`` does, unchanged (bit for
  bit): BERT ``tanh(W_p h_[CLS] + b_p)`` through its pretrained pooler, RoBERTa's classification head on
  ``h_<s>``, DeBERTa's ``ContextPooler``, decoders' last non-padding token. The HF default for
  BERT/RoBERTa/DeBERTa checkpoints, whose pooler (or head input) was pretrained.
- ``cls`` -- the raw first-token state ``h_[CLS]`` (no pooler dense/tanh);
- ``mean`` -- the mean over non-padding tokens, ``sum_t m_t h_t / sum_t m_t`` (``m`` the attention mask),
  the pooling sentence-transformers models are trained with (Reimers & Gurevych, 2019, Sentence-BERT,
  section 3): the embedded all-MiniLM-L6-v2, whose BERT pooler was never trained (zero bias, Gaussian
  weight spectrum).

``cls`` and ``mean`` replace the BERT-family base model's ``pooler`` module by a parameter-free
`TokenPooling`; dropout and the classifier of the HF class run on its output as before. They add no
parameters (the classifier stays the only new, trained head; the unused pretrained pooler weights leave
the model), so what is counted and saved is the classifier as for ``cls_pooler``; the pooling itself is
recorded in ``result.json`` (``config.backbone.pooling``) and in a saved adapter's ``backbone`` record,
from which `lora_lab.adapters.io.load_adapter` re-applies it. Backbones whose classification path has no
such pooler (RoBERTa, DeBERTa, decoders) take only ``cls_pooler``: any other value is a `ConfigError`.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.errors import ConfigError

POOLINGS = ("cls_pooler", "cls", "mean")
#: the attribute a model carries once `apply_pooling` changed it (absent: ``cls_pooler``)
POOLING_ATTR = "_lora_lab_pooling"


class TokenPooling(nn.Module):
    """``cls``: ``h[:, 0]``; ``mean``: ``sum_t m_t h_t / max(1, sum_t m_t)``. The attention mask of the
    current forward is set by a pre-hook on the base model (`_remember_mask`); None means no padding."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in ("cls", "mean"):
            raise ValueError(mode)
        self.mode = mode
        self.attention_mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mode == "cls":
            return hidden_states[:, 0]
        mask = self.attention_mask
        if mask is None:
            return hidden_states.mean(dim=1)
        m = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _remember_mask(pooler: TokenPooling):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        pooler.attention_mask = mask

    return hook


def check_pooling(value: str) -> str:
    if value not in POOLINGS:
        raise ConfigError("backbone.pooling", f"{value!r}; allowed: {', '.join(POOLINGS)}")
    return value


def pooling_of(model: nn.Module) -> str:
    """The pooling `model` classifies with."""
    return getattr(model, POOLING_ATTR, "cls_pooler")


def _bert_pooler_owner(model: nn.Module) -> nn.Module | None:
    """The base model whose ``pooler`` (BERT's dense + tanh on the first token) feeds the classifier."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    pooler = getattr(base, "pooler", None)
    if isinstance(pooler, TokenPooling) or (pooler is not None and hasattr(pooler, "dense") and hasattr(pooler, "activation")
                                            and hasattr(model, "classifier") and not hasattr(model, "pooler")):
        return base
    return None


def apply_pooling(model: nn.Module, pooling: str) -> nn.Module:
    """Make the sequence classifier ``model`` pool with ``pooling`` (in place; returns ``model``).
    ``cls_pooler`` leaves an unchanged model unchanged; changing an already changed model is refused."""
    check_pooling(pooling)
    current = pooling_of(model)
    if pooling == current:
        return model
    if current != "cls_pooler":
        raise ValueError(f"model already pools with {current!r}; build a fresh model for {pooling!r}")
    base = _bert_pooler_owner(model)
    if base is None:
        raise ConfigError(
            "backbone.pooling", f"{pooling!r} is not available for {type(model).__name__} (model_type "
            f"{getattr(model.config, 'model_type', None)!r}: its head has no BERT-style pooler to replace); allowed: cls_pooler",
        )
    pooler = TokenPooling(pooling)
    base.pooler = pooler
    base.register_forward_pre_hook(_remember_mask(pooler), with_kwargs=True)
    setattr(model, POOLING_ATTR, pooling)
    return model
