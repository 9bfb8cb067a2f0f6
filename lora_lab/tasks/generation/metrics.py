"""Scores of generated text against the target, per example, averaged over a split.

- ``exact_match``: 1 when prediction and target are equal after stripping and collapsing runs of
  whitespace, else 0;
- ``rouge_l``: ROUGE-L F-measure (Lin 2004, section 3: the longest common subsequence ``LCS`` of the
  token sequences, ``P = LCS / len(prediction)``, ``R = LCS / len(target)``, ``F = 2PR / (P + R)``)
  computed by Google's `rouge-score` package with its default tokenizer (lower-cased, only ASCII
  letters and digits kept, so it suits English text; no stemming);
- ``task.metric_fn``: your own ``fn(prediction: str, target: str) -> float`` by dotted path
  (``mypackage.metrics.bleu``), reported under the function's name.

`TextScores` sums per-example scores and counts across DDP ranks (torchmetrics).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from absl import logging as absl_logging
from rouge_score import rouge_scorer, tokenizers
from torchmetrics import Metric

from lora_lab.tasks.generation.metric_names import BUILTIN_METRIC_NAMES, load_metric_fn

# rouge-score imports absl, whose logging handler binds the sys.stderr of the moment it is imported and,
# when closed, closes that stream unless it is the current sys.stderr. Every Hydra job reconfigures
# logging (logging.config.dictConfig closes every handler ever made, attached or not), so where
# sys.stderr was swapped after the import (pytest's capture, a redirect_stderr block, a notebook's
# stream) the next trial closed a live stream. sys.__stderr__ is a stream absl never closes.
absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__

# the tokenizer passed explicitly (the package logs a line when it picks its default itself)
_ROUGE = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizers.DefaultTokenizer(use_stemmer=False))


def exact_match(prediction: str, target: str) -> float:
    return float(" ".join(prediction.split()) == " ".join(target.split()))


def rouge_l(prediction: str, target: str) -> float:
    return float(_ROUGE.score(target, prediction)["rougeL"].fmeasure)


BUILTIN_METRICS: dict[str, Callable[[str, str], float]] = dict(zip(BUILTIN_METRIC_NAMES, (exact_match, rouge_l)))


def metric_functions(names: tuple[str, ...], metric_fn: str | None) -> dict[str, Callable[[str, str], float]]:
    """Name -> scoring function for the split's metrics (built-ins first, then ``metric_fn``)."""
    fns = {n: BUILTIN_METRICS[n] for n in names if n in BUILTIN_METRICS}
    if metric_fn:
        name, fn = load_metric_fn(metric_fn)
        fns[name] = fn
    return fns


class TextScores(Metric):
    """Mean of each named per-example score over a split, plus the count ``n``; sums are DDP-reduced."""

    full_state_update = False

    def __init__(self, names: tuple[str, ...]):
        super().__init__()
        self.names = tuple(names)
        for name in self.names:
            self.add_state(f"sum_{name}", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: list[dict[str, float]]) -> None:
        """Add the scores of a batch of examples (one dict of name -> score per example)."""
        for row in scores:
            for name in self.names:
                setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + float(row[name]))
            self.total += 1

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        return {**{name: getattr(self, f"sum_{name}") / total for name in self.names}, "n": self.total.double()}
