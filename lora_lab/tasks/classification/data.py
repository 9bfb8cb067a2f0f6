"""Lightning data module for (pair) sentence classification and regression.

One batch format for the whole family: ``input_ids``, ``attention_mask`` (and ``token_type_ids``
when the tokenizer makes them), ``labels`` (long for classification, float for regression).
Examples are tokenised once in `setup`; batches are padded dynamically. Evaluation splits come in
the order of `TaskSpec.eval_splits` (e.g. MNLI matched, then mismatched).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from lora_lab.tasks.base import TaskConfig, TaskSpec, split_subset
from lora_lab.tasks.loaders import TokenizedDataset, resumable_train_loader
from lora_lab.tasks.eval_shards import EvalShardSampler


class NumberedDataset(TokenizedDataset):
    """An evaluation split whose items carry ``example_id`` (the position in the split, the same for
    every run: evaluation subsets do not depend on the seed), so saved predictions can be paired."""

    def __getitem__(self, i: int) -> dict:
        return {**self.features[i], "example_id": i}


def tokenize_examples(tokenizer, examples: list, max_length: int, regression: bool) -> list[dict]:
    text_a = [e[0] for e in examples]
    text_b = [e[1] for e in examples] if examples and examples[0][1] is not None else None
    enc = tokenizer(text_a, text_b, truncation=True, max_length=max_length)
    features = []
    for i, example in enumerate(examples):
        item = {k: enc[k][i] for k in enc.keys()}
        item["labels"] = float(example[2]) if regression else int(example[2])
        features.append(item)
    return features


class ClassificationDataModule(L.LightningDataModule):
    def __init__(self, task: TaskConfig, spec: TaskSpec, tokenizer, seed: int = 0):
        super().__init__()
        self.task, self.spec, self.tokenizer, self.seed = task, spec, tokenizer, seed
        self.splits: dict[str, TokenizedDataset] = {}
        self.label_counts: dict[str, list[int]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.task.load_examples()
        regression = self.spec.num_labels == 1
        for i, (name, examples) in enumerate(raw.items()):
            examples = split_subset(self.task, name, examples, self.seed, i)
            self.splits[name] = TokenizedDataset(tokenize_examples(self.tokenizer, examples, self.task.max_length, regression))
            if not regression:
                counts = [0] * self.spec.num_labels
                for e in examples:
                    counts[int(e[2])] += 1
                self.label_counts[name] = counts

    def majority_baseline(self, split: str) -> float | None:
        """Accuracy of always predicting the most frequent label of ``split`` (None for regression)."""
        counts = self.label_counts.get(split)
        return max(counts) / sum(counts) if counts else None

    def _collate(self, features: list[dict]) -> dict:
        labels = [f["labels"] for f in features]
        inputs = [{k: v for k, v in f.items() if k not in ("labels", "example_id")} for f in features]
        batch = self.tokenizer.pad(inputs, return_tensors="pt")
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if self.spec.num_labels == 1 else torch.long)
        if features and "example_id" in features[0]:
            batch["example_id"] = torch.tensor([f["example_id"] for f in features], dtype=torch.long)
        return dict(batch)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        numbered = NumberedDataset(self.splits[split].features)
        sampler = EvalShardSampler.for_trainer(numbered, self.trainer)  # each example once under DDP
        return DataLoader(numbered, batch_size=batch_size, sampler=sampler, collate_fn=self._collate, num_workers=self.task.num_workers)

    def train_dataloader(self) -> DataLoader:
        return resumable_train_loader(self, self.splits["train"], self.task.batch_size, self._collate, self.task.num_workers)

    def val_dataloader(self):
        loaders = [self._loader(s, self.task.eval_batch_size) for s in self.spec.eval_splits]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.task.eval_batch_size)
