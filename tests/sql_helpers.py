"""Helpers for generation tests: a tiny byte-level BPE tokenizer (lossless decode, trained in well
under a second on synthetic WikiSQL text) and backbone configs of tiny random LLaMA / T5 using it."""

from __future__ import annotations

import functools
from pathlib import Path

VOCAB = 512


@functools.lru_cache(maxsize=None)
def _trained():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from lora_lab.tasks.text_to_sql.wikisql import render_prompt
    from lora_lab.tasks.text_to_sql.wikisql_synthetic import make_wikisql_synthetic

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 8, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    texts = [render_prompt(e.question, e.table) + " " + e.gold_sql for e in make_wikisql_synthetic(0, 300, 1, 1)["train"]]
    tok.train_from_iterator(texts, trainer)
    return tok.to_str()


def bpe_tokenizer_dir(root: Path) -> str:
    """Save the tiny tokenizer as a ``save_pretrained`` directory under ``root``; returns its path."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    out = Path(root) / "bpe_tokenizer"
    if not (out / "tokenizer.json").is_file():
        fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_trained()), pad_token="<pad>", eos_token="<eos>")
        fast.save_pretrained(str(out))
    return str(out)


def tiny_backbone(kind: str, tokenizer_dir: str) -> dict:
    """Backbone config dict of a tiny random ``llama`` or ``t5`` with the tiny BPE tokenizer."""
    if kind == "llama":
        init = dict(model_type="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    else:
        init = dict(model_type="t5", vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return {"name": f"tiny-{kind}-bpe", "short_name": f"tiny_{kind}", "tokenizer": tokenizer_dir, "random_init": init}
