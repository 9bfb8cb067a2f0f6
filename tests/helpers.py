"""Shared tiny backbones for the tests: 2 layers, hidden 32, built from transformers configs (no downloads)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification


def tiny_bert(num_labels: int = 2) -> BertForSequenceClassification:
    """Tiny BERT classifier (``nn.Linear`` projections with biases); ``model_type == "bert"``."""
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=num_labels
    )
    return BertForSequenceClassification(config)


def tiny_gpt2(num_labels: int = 2) -> GPT2ForSequenceClassification:
    """Tiny GPT-2 classifier (``Conv1D`` projections, weight ``[in, out]``); ``model_type == "gpt2"``."""
    config = GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, pad_token_id=0, bos_token_id=1, eos_token_id=1, num_labels=num_labels
    )
    return GPT2ForSequenceClassification(config)


def token_batch(batch: int = 3, length: int = 7, vocab: int = 100, seed: int = 0) -> torch.Tensor:
    """Token ids in ``[1, vocab)`` (no padding id 0, so GPT-2 pools the last token)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (batch, length), generator=g)
