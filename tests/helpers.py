"""Tiny random backbones built from `transformers` configs (2 layers, hidden 32) and small utilities."""

from __future__ import annotations

import torch


def tiny_bert(num_labels: int = 2, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def tiny_gpt2(num_labels: int = 2, seed: int = 0):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, num_labels=num_labels, pad_token_id=0)
    return GPT2ForSequenceClassification(cfg).eval()


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def tiny_t5(seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0)
    return T5ForConditionalGeneration(cfg).eval()


def token_batch(batch: int = 3, length: int = 7, vocab: int = 100, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (batch, length), generator=g)


def attach(model, model_type: str, heads=None, **adapter):
    """Attach a validated adapter config to ``model`` (heads found as in training); returns (method, report)."""
    from lora_lab.adapters import build_method, parse_config
    from lora_lab.models.backbones import head_modules_for

    if heads is None:
        heads = head_modules_for(model, "classification")

    method = build_method(parse_config({"method": "lora", **adapter}))
    report = method.attach(model, model_type, list(heads))
    return method, report


@torch.no_grad()
def perturb_adapters(method, std: float = 0.1, seed: int = 3) -> None:
    """Give every adapter parameter random values so merge tests see a non-trivial update."""
    g = torch.Generator().manual_seed(seed)
    for layer in method.layers.values():
        for _, p in layer.adapter_parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def train_classifier(model, steps: int, lr: float, seed: int) -> None:
    """A few AdamW steps of cross entropy on a 3-example token batch, on the trainable parameters only."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    x, y = token_batch(seed=seed), torch.tensor([0, 1, 1])
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(input_ids=x).logits, y).backward()
        opt.step()
        opt.zero_grad()
