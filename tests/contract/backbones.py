"""The four tiny backbones of the contract table: BERT (Linear), GPT-2 (Conv1D), LLaMA (causal LM), T5 (seq2seq).

Each is built once per session (random weights, fixed seed, output layer at unit scale so logits are
O(1) and tolerances mean something) and deep-copied for every test, so a test starts from the same
pristine weights as the "fresh backbone" a saved adapter is loaded onto.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from lora_lab.models.backbones import head_modules_for

from tests.helpers import tiny_bert, tiny_gpt2, tiny_llama, tiny_t5, token_batch


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[[], nn.Module]
    model_type: str
    family: str  # our task family: classification, causal_lm, seq2seq
    output_layer: str  # made unit-scale so logits are O(1)
    peft_task_type: str

    def fresh(self) -> nn.Module:
        """A deep copy of the pristine backbone (identical weights every call)."""
        return copy.deepcopy(_pristine(self.name))

    def heads(self, model: nn.Module) -> list[str]:
        return head_modules_for(model, self.family)

    def inputs(self) -> dict[str, torch.Tensor]:
        ids = token_batch(batch=2, length=6)
        if self.family == "seq2seq":
            return {"input_ids": ids, "decoder_input_ids": token_batch(batch=2, length=4, seed=2)}
        return {"input_ids": ids}

    def logits(self, model: nn.Module) -> torch.Tensor:
        return model(**self.inputs()).logits


BACKBONES = {
    b.name: b
    for b in (
        Backbone("bert", tiny_bert, "bert", "classification", "classifier", "SEQ_CLS"),
        Backbone("gpt2", tiny_gpt2, "gpt2", "classification", "score", "SEQ_CLS"),
        Backbone("llama", tiny_llama, "llama", "causal_lm", "lm_head", "CAUSAL_LM"),
        Backbone("t5", tiny_t5, "t5", "seq2seq", "lm_head", "SEQ_2_SEQ_LM"),
    )
}


@lru_cache(maxsize=None)
def _pristine(name: str) -> nn.Module:
    backbone = BACKBONES[name]
    model = backbone.build()
    with torch.no_grad():
        model.get_submodule(backbone.output_layer).weight.normal_(generator=torch.Generator().manual_seed(7))
    return model
