"""Generation (prompt -> target text) on top of `AdapterModule`: causal LMs (LLaMA-style, GPT-2) and seq2seq (T5, BART).

Training loss: token cross-entropy on the answer tokens only (the data module sets every prompt and
padding label to -100; for seq2seq the whole decoder side is the answer), computed by the HF model,
plus the adapter method's regulariser through the shared `AdapterModule.training_step`.

Evaluation decodes every prompt of the split in batches (greedy, or beam search with
``task.num_beams``; at most ``task.max_new_tokens`` new tokens; ``do_sample`` is never on), turns
the text into a prediction (`postprocess`) and scores it (`score`: here exact match, ROUGE-L and
``task.metric_fn``, `lora_lab.tasks.generation.metrics`), plus the teacher-forced ``<split>/loss``.
A specialisation (text-to-SQL) overrides `postprocess`, `make_metric` and `score`. Like the
classification module it keeps a curve (one point per validation) and the adapter state at the best
primary validation metric among the evaluations the method calls selectable; `evaluate_untrained`
(before ``fit``) is stored as `untrained` (the baseline), outside the curve.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, Metric

from lora_lab.models.backbones import load_tokenizer
from lora_lab.tasks.eval_shards import gather_in_order
from lora_lab.models.module import AdapterModule
from lora_lab.tasks.base import TaskSpec, task_setting
from lora_lab.tasks.generation.data import MODEL_KINDS
from lora_lab.tasks.generation.metrics import TextScores, metric_functions


class GenerationModule(AdapterModule):
    model_kind = "causal_lm"

    def __init__(self, backbone, adapter, optim, task, spec: dict, model_kind: str,
                 pad_token_id: int, eos_token_id: int):
        super().__init__(backbone, adapter, optim, task, num_labels=None, pad_token_id=pad_token_id)
        if model_kind not in MODEL_KINDS:
            raise ValueError(f"model kind {model_kind!r}; allowed: {', '.join(MODEL_KINDS)}")
        self.model_kind = model_kind
        self.spec = TaskSpec(**spec)
        self.max_new_tokens = int(task_setting(task, "max_new_tokens", 64))
        self.num_beams = int(task_setting(task, "num_beams", 1))
        self.eos_token_id = int(eos_token_id)
        self.tokenizer = None  # loaded in configure_model from the backbone config (not an hparam)
        self.score_fns = metric_functions(self.spec.metrics, task_setting(task, "metric_fn", None))
        splits = (*self.spec.eval_splits, "test")
        self.text_metrics = torch.nn.ModuleDict({s: self.make_metric() for s in splits})
        self.loss_metrics = torch.nn.ModuleDict({s: MeanMetric() for s in splits})
        self.untrained: dict | None = None
        self.predictions: dict[str, list[dict]] = {}  # latest evaluation of each split (all ranks' rows after it ends)
        self._baseline_pass = False

    def configure_model(self) -> None:
        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(self.backbone_cfg)
        super().configure_model()

    # ----- training ---------------------------------------------------------------------------
    def task_loss(self, batch: dict) -> torch.Tensor:
        """Mean token cross-entropy over the answer tokens (labels != -100).

        Causal LMs get left-padded batches, so every answer ends at the last column: only the last
        ``keep`` positions (from just before the earliest answer token) go through the LM head, which
        skips most of the vocabulary projection and its softmax for prompt tokens. Position ids come
        from the attention mask, so padding does not shift positions."""
        if self.model_kind == "seq2seq":
            return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"], use_cache=False).loss
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        width = labels.shape[1]
        keep = min(width, batch["answer_width"] + 1)  # from just before the earliest answer column (a host int: no sync)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False, logits_to_keep=keep).logits
        targets = labels[:, width - keep + 1 :]  # logits at column j predict the token at j + 1
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    # ----- decoding ---------------------------------------------------------------------------
    def generation_config(self):
        from transformers import GenerationConfig

        kwargs = dict(
            max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False, eos_token_id=self.eos_token_id,
            pad_token_id=self.hparams.pad_token_id,
        )
        if self.model_kind == "seq2seq":
            start = getattr(self.model.config, "decoder_start_token_id", None)
            kwargs["decoder_start_token_id"] = self.hparams.pad_token_id if start is None else start
        return GenerationConfig(**kwargs)

    def postprocess(self, text: str) -> str:
        """The prediction in a decoded answer: the text without surrounding whitespace."""
        return text.strip()

    @torch.no_grad()
    def generate_text(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[str]:
        """Decode a batch of prompts (left-padded for causal LMs) into predictions (`postprocess`)."""
        out = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=self.generation_config())
        if self.model_kind == "causal_lm":
            out = out[:, prompt_ids.shape[1] :]
        return [self.postprocess(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    # ----- evaluation -------------------------------------------------------------------------
    def make_metric(self) -> Metric:
        """The metric object of one evaluation split."""
        return TextScores(tuple(self.score_fns))

    def score(self, split: str, predictions: list[str], examples: list) -> list[dict]:
        """Update the split's metric with a batch; returns one prediction record per example."""
        scores = [{name: fn(p, e.target) for name, fn in self.score_fns.items()} for p, e in zip(predictions, examples, strict=True)]
        self.text_metrics[split].update(scores)
        return [{"prompt": e.prompt, "target": e.target, "predicted": p, **s} for p, e, s in zip(predictions, examples, scores)]

    def _eval_step(self, batch: dict, split: str) -> None:
        loss = self.task_loss(batch)
        self.loss_metrics[split].update(loss.detach().float(), weight=int((batch["labels"] != -100).sum()))
        predictions = self.generate_text(batch["prompt_ids"], batch["prompt_mask"])
        self.predictions.setdefault(split, []).extend(self.score(split, predictions, batch["examples"]))

    def on_validation_epoch_start(self) -> None:
        for split in self.spec.eval_splits:
            self.predictions[split] = []

    def on_test_epoch_start(self) -> None:
        self.predictions["test"] = []

    def split_values(self, split: str) -> dict[str, float]:
        # every rank holds its shard's rows; all of them, in dataset order, on every rank
        self.predictions[split] = gather_in_order(self.predictions.get(split, []))
        values = {f"{split}/{k}": float(v) for k, v in self.text_metrics[split].compute().items()}
        values[f"{split}/loss"] = float(self.loss_metrics[split].compute())
        return values

    def split_metrics(self, split: str) -> list:
        return [self.text_metrics[split], self.loss_metrics[split]]

    def baselines(self, datamodule) -> dict:
        """What training must improve on: the untrained model's validation (None when skipped)."""
        return {"untrained_val": self.untrained}

    def on_evaluation(self, values: dict[str, float]) -> None:
        if not self._baseline_pass:
            super().on_evaluation(values)
            return
        self.untrained = {"step": int(self.trainer.global_step), "epoch": int(self.current_epoch), **values}
        for split in self.spec.eval_splits:  # keep the baseline's predictions next to the trained ones
            self.predictions[f"untrained_{split}"] = self.predictions.pop(split, [])

    def evaluate_untrained(self, trainer, datamodule) -> dict | None:
        """Validate before any training step (LoRA-family adapters are exact no-ops at init, so this
        is the pretrained model) and keep the result as `untrained`, outside the curve."""
        self._baseline_pass = True
        try:
            trainer.validate(self, datamodule=datamodule, verbose=False)
        finally:
            self._baseline_pass = False
        return self.untrained

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lora_lab_eval"]["untrained"] = self.untrained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.untrained = checkpoint.get("lora_lab_eval", {}).get("untrained", self.untrained)
