"""Lightning data module for generation (prompt -> target text), for causal-LM and seq2seq backbones.

Each example becomes a prompt and a target text (`GenerationDataModule.render`: a `lora_lab.tasks.generation.example.TextExample`'s
own fields; the text-to-SQL module renders a table and question instead). Prompt and target (+ EOS)
are tokenised separately and concatenated as ids, so the prompt the model is trained on is
token-for-token the prompt it decodes from at evaluation.

Batch format (one per model kind):

- ``causal_lm`` training: ``input_ids`` = prompt + target, *left*-padded so that every answer ends
  at the last column (the module then computes logits for the answer span only), ``attention_mask``,
  ``labels`` = target ids with every prompt and padding position set to -100, so the loss covers the
  answer tokens only; position ids are derived from the attention mask in the module;
- ``seq2seq`` training: ``input_ids``/``attention_mask`` = prompt (encoder), ``labels`` = target
  (decoder, padding -100);
- evaluation batches add ``prompt_ids``/``prompt_mask`` (left-padded for causal LMs, as batched
  decoding needs) and ``examples`` (the example objects the metrics score against).

A training sequence longer than ``task.max_length`` is skipped (counted in `skipped`); evaluation
examples are never dropped or cut, so scores always cover the whole (sub-sampled) split.
"""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import DataLoader

from lora_lab.errors import ConfigError
from lora_lab.tasks.base import TaskConfig, TaskSpec, split_subset
from lora_lab.tasks.loaders import TokenizedDataset, resumable_train_loader
from lora_lab.tasks.eval_shards import EvalShardSampler

MODEL_KINDS = ("causal_lm", "seq2seq")


def eos_id(tokenizer) -> int:
    """End-of-answer token: EOS, else SEP (BERT-style vocabularies used by tiny test models)."""
    for tid in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has neither an EOS nor a SEP token to end answers with")


def encode_example(tokenizer, prompt_text: str, target_text: str, model_kind: str, example) -> dict:
    """Token ids of one example: ``prompt`` (model input at decoding time) and ``target`` (+ EOS; a
    causal LM's target starts with a space, as it continues the prompt)."""
    prompt = tokenizer(prompt_text)["input_ids"]
    answer = target_text if model_kind == "seq2seq" else " " + target_text
    target = tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos_id(tokenizer)]
    return {"prompt": list(prompt), "target": list(target), "example": example}


def training_ids(item: dict, model_kind: str) -> tuple[list[int], list[int]]:
    """(input ids, labels) of the teacher-forced sequence."""
    if model_kind == "seq2seq":
        return item["prompt"], item["target"]
    return item["prompt"] + item["target"], [-100] * len(item["prompt"]) + item["target"]


def pad(seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    rows = [([value] * (width - len(s)) + s) if left else (s + [value] * (width - len(s))) for s in seqs]
    return torch.tensor(rows, dtype=torch.long)


def collate(items: list[dict], model_kind: str, pad_id: int, evaluation: bool = False) -> dict:
    left = model_kind == "causal_lm"
    inputs, labels = zip(*(training_ids(it, model_kind) for it in items))
    batch = {
        "input_ids": pad(list(inputs), pad_id, left=left),
        "attention_mask": pad([[1] * len(s) for s in inputs], 0, left=left),
        "labels": pad(list(labels), -100, left=left),
        # the longest answer, counted here on the host: left-padded causal-LM answers all end at the
        # last column, so the loss needs only the last answer_width + 1 positions (read with no sync)
        "answer_width": max(len(it["target"]) for it in items),
    }
    if evaluation:
        prompts = [it["prompt"] for it in items]
        batch["prompt_ids"] = pad(prompts, pad_id, left=left)
        batch["prompt_mask"] = pad([[1] * len(p) for p in prompts], 0, left=left)
        batch["examples"] = [it["example"] for it in items]
    return batch


class GenerationDataModule(L.LightningDataModule):
    def __init__(self, task: TaskConfig, spec: TaskSpec, tokenizer, model_kind: str, seed: int = 0):
        super().__init__()
        if model_kind not in MODEL_KINDS:
            raise ValueError(f"model kind {model_kind!r}; allowed: {', '.join(MODEL_KINDS)}")
        self.task, self.spec, self.tokenizer, self.model_kind, self.seed = task, spec, tokenizer, model_kind, seed
        self.splits: dict[str, TokenizedDataset] = {}
        self.skipped: dict[str, int] = {}

    @property
    def eos_token_id(self) -> int:
        """The token that ends an answer (`eos_id`)."""
        return eos_id(self.tokenizer)

    def render(self, example) -> tuple[str, str]:
        """(prompt text, target text) of one example."""
        return example.prompt, example.target

    def encode(self, example) -> dict:
        return encode_example(self.tokenizer, *self.render(example), self.model_kind, example)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for i, (name, examples) in enumerate(self.task.load_examples().items()):
            items = [self.encode(e) for e in split_subset(self.task, name, examples, self.seed, i)]
            if name == "train":
                kept = [it for it in items if max(map(len, training_ids(it, self.model_kind))) <= self.task.max_length]
                self.skipped[name] = len(items) - len(kept)
                if not kept:
                    raise ConfigError("task.max_length", f"{self.task.max_length} tokens is shorter than every training example")
                items = kept
            self.splits[name] = TokenizedDataset(items)

    def _collate_fn(self, evaluation: bool):
        return functools.partial(collate, model_kind=self.model_kind, pad_id=self.tokenizer.pad_token_id, evaluation=evaluation)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        sampler = EvalShardSampler.for_trainer(self.splits[split], self.trainer)  # each example once under DDP
        return DataLoader(self.splits[split], batch_size=batch_size, sampler=sampler, num_workers=self.task.num_workers, collate_fn=self._collate_fn(True))

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        """Move the tensors; the example objects (frozen dataclasses, which Lightning's collection
        walker refuses) ride along untouched."""
        examples = batch.pop("examples", None) if isinstance(batch, dict) else None
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if examples is not None:
            batch["examples"] = examples
        return batch

    def train_dataloader(self) -> DataLoader:
        return resumable_train_loader(self, self.splits["train"], self.task.batch_size, self._collate_fn(False), self.task.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.task.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.task.eval_batch_size)
