"""Lightning data module for text-to-SQL generation, for causal-LM and seq2seq backbones.

Each `SqlExample` becomes a prompt (`render_prompt`) and a target (its gold SQL + EOS). Prompt and
target are tokenised separately and concatenated as ids, so the prompt the model is trained on is
token-for-token the prompt it decodes from at evaluation.

Batch format (one per family):

- ``causal_lm`` training: ``input_ids`` = prompt + target, *left*-padded so that every answer ends
  at the last column (the module then computes logits for the answer span only), ``attention_mask``,
  ``labels`` = target ids with every prompt and padding position set to -100, so the loss covers the
  answer tokens only; position ids are derived from the attention mask in the module;
- ``seq2seq`` training: ``input_ids``/``attention_mask`` = prompt (encoder), ``labels`` = target
  (decoder, padding -100);
- evaluation batches add ``prompt_ids``/``prompt_mask`` (left-padded for causal LMs, as batched
  decoding needs) and ``examples`` (the `SqlExample` objects the metrics execute against).

A training sequence longer than ``task.max_length`` is skipped (counted in `skipped`); evaluation
examples are never dropped or cut, so scores always cover the whole (sub-sampled) split.
"""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import DataLoader

from lora_lab.data.classification import TokenizedDataset
from lora_lab.data.eval_shards import EvalShardSampler
from lora_lab.data.tasks import GenerationTaskConfig, TaskSpec, load_examples, split_subset
from lora_lab.data.wikisql import SqlExample, render_prompt
from lora_lab.resume.sampler import ResumableDataLoader, ResumableSampler

FAMILIES = ("causal_lm", "seq2seq")


def eos_id(tokenizer) -> int:
    """End-of-answer token: EOS, else SEP (BERT-style vocabularies used by tiny test models)."""
    for tid in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has neither an EOS nor a SEP token to end answers with")


def encode_example(tokenizer, example: SqlExample, family: str, prompt_rows: int = 0) -> dict:
    """Token ids of one example: ``prompt`` (model input at decoding time) and ``target`` (+ EOS)."""
    prompt = tokenizer(render_prompt(example.question, example.table, prompt_rows))["input_ids"]
    answer = example.gold_sql if family == "seq2seq" else " " + example.gold_sql
    target = tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos_id(tokenizer)]
    return {"prompt": list(prompt), "target": list(target), "example": example}


def training_ids(item: dict, family: str) -> tuple[list[int], list[int]]:
    """(input ids, labels) of the teacher-forced sequence."""
    if family == "seq2seq":
        return item["prompt"], item["target"]
    return item["prompt"] + item["target"], [-100] * len(item["prompt"]) + item["target"]


def pad(seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    rows = [([value] * (width - len(s)) + s) if left else (s + [value] * (width - len(s))) for s in seqs]
    return torch.tensor(rows, dtype=torch.long)


def collate(items: list[dict], family: str, pad_id: int, evaluation: bool = False) -> dict:
    left = family == "causal_lm"
    inputs, labels = zip(*(training_ids(it, family) for it in items))
    batch = {
        "input_ids": pad(list(inputs), pad_id, left=left),
        "attention_mask": pad([[1] * len(s) for s in inputs], 0, left=left),
        "labels": pad(list(labels), -100, left=left),
    }
    if evaluation:
        prompts = [it["prompt"] for it in items]
        batch["prompt_ids"] = pad(prompts, pad_id, left=left)
        batch["prompt_mask"] = pad([[1] * len(p) for p in prompts], 0, left=left)
        batch["examples"] = [it["example"] for it in items]
    return batch


class GenerationDataModule(L.LightningDataModule):
    def __init__(self, task: GenerationTaskConfig, spec: TaskSpec, tokenizer, family: str, seed: int = 0):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"family {family!r}; allowed: {', '.join(FAMILIES)}")
        self.task, self.spec, self.tokenizer, self.family, self.seed = task, spec, tokenizer, family, seed
        self.splits: dict[str, TokenizedDataset] = {}
        self.skipped: dict[str, int] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for i, (name, examples) in enumerate(load_examples(self.task).items()):
            items = [encode_example(self.tokenizer, e, self.family, self.task.prompt_rows) for e in split_subset(self.task, name, examples, self.seed, i)]
            if name == "train":
                kept = [it for it in items if max(map(len, training_ids(it, self.family))) <= self.task.max_length]
                self.skipped[name] = len(items) - len(kept)
                if not kept:
                    from lora_lab.errors import ConfigError

                    raise ConfigError("task.max_length", f"{self.task.max_length} tokens is shorter than every training example")
                items = kept
            self.splits[name] = TokenizedDataset(items)

    def _collate_fn(self, evaluation: bool):
        return functools.partial(collate, family=self.family, pad_id=self.tokenizer.pad_token_id, evaluation=evaluation)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        sampler = EvalShardSampler.for_trainer(self.splits[split], self.trainer)  # each example once under DDP
        return DataLoader(self.splits[split], batch_size=batch_size, sampler=sampler, num_workers=self.task.num_workers, collate_fn=self._collate_fn(True))

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        """Move the tensors; the `SqlExample` objects (frozen dataclasses, which Lightning's
        collection walker refuses) ride along untouched."""
        examples = batch.pop("examples", None) if isinstance(batch, dict) else None
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if examples is not None:
            batch["examples"] = examples
        return batch

    def train_dataloader(self) -> DataLoader:
        """Shuffled by ``(seed, epoch)``, sharded over DDP ranks, resumable mid-epoch (`lora_lab.resume.sampler`)."""
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableSampler(self.splits["train"], seed=self.seed, num_replicas=replicas, rank=rank, shuffle=True)
        return ResumableDataLoader(
            self.splits["train"], sampler=sampler, batch_size=self.task.batch_size, num_workers=self.task.num_workers,
            collate_fn=self._collate_fn(False),
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.task.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.task.eval_batch_size)
