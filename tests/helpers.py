"""Shared builders for tests: tiny random backbones (2 layers, hidden 32), no downloads."""

from __future__ import annotations

import torch


def tiny_bert(num_labels: int = 2, seed: int = 0):
    """``BertForSequenceClassification`` with vocab 100, hidden 32, 2 layers, 2 heads, FFN 64."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def tiny_gpt2(num_labels: int = 2, seed: int = 0):
    """``GPT2ForSequenceClassification`` (Conv1D layers) with vocab 100, n_embd 32, 2 layers, 2 heads."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, num_labels=num_labels, pad_token_id=0)
    return GPT2ForSequenceClassification(cfg).eval()
