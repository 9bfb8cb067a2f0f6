"""Text-to-SQL generation on top of `AdapterModule`: causal LMs (LLaMA-style, GPT-2) and seq2seq (T5, BART).

Training loss: token cross-entropy on the answer tokens only (the data module sets every prompt and
padding label to -100; for seq2seq the whole decoder side is the answer), computed by the HF model,
plus the adapter method's regulariser through the shared `AdapterModule.training_step`.

Evaluation decodes every prompt of the split in batches (greedy, or beam search with
``task.num_beams``; at most ``task.max_new_tokens`` new tokens; ``do_sample`` is never on), cuts the
first SQL statement out of the text (`extract_sql`) and scores it with `lora_lab.models.sql_eval`:
``<split>/exec_acc`` (primary), ``<split>/lf_acc``, ``<split>/invalid_rate`` and the teacher-forced
``<split>/loss``. Like the classification module it keeps a curve (one point per validation) and the
adapter state at the best ``val/exec_acc`` among the evaluations the method calls selectable;
`evaluate_untrained` (before ``fit``) is stored as `untrained` (the baseline), outside the curve.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from lora_lab.data.eval_shards import gather_in_order
from lora_lab.data.tasks import TaskSpec
from lora_lab.models.module import AdapterModule
from lora_lab.models.sql_eval import SqlAccuracy, judge

_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)(?:```|$)", re.DOTALL)


def extract_sql(text: str) -> str:
    """The first SQL statement of a decoded answer: inside the first code fence if there is one,
    up to the first blank line, up to and including the first ``;`` outside quotes, whitespace outside
    quotes collapsed (string literals are kept verbatim, so a value like ``'Smith; Jones'`` survives). Applied
    alike to trained and untrained models; the result is still untrusted (see `sql_eval.execute`)."""
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1)
    text = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    out, quote = [], None
    for ch in text:  # outside quotes: stop after the first ';', collapse whitespace; inside: keep as is
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
            continue
        out.append(ch)
        if ch == ";" and not quote:
            break
    return "".join(out).strip()


class GenerationModule(AdapterModule):
    family = "causal_lm"

    def __init__(self, backbone: dict, adapter: dict, optim: dict, task: dict, spec: dict, family: str,
                 pad_token_id: int, eos_token_id: int):
        super().__init__(backbone, adapter, optim, task, num_labels=None, pad_token_id=pad_token_id)
        if family not in ("causal_lm", "seq2seq"):
            raise ValueError(f"family {family!r}; allowed: causal_lm, seq2seq")
        self.family = family
        self.spec = TaskSpec(**spec)
        self.max_new_tokens = int(task.get("max_new_tokens", 64))
        self.num_beams = int(task.get("num_beams", 1))
        self.sql_timeout_s = float(task.get("sql_timeout_s", 1.0))
        self.eos_token_id = int(eos_token_id)
        self.tokenizer = None  # loaded in configure_model from the backbone config (not an hparam)
        splits = (*self.spec.eval_splits, "test")
        self.sql_metrics = torch.nn.ModuleDict({s: SqlAccuracy() for s in splits})
        self.loss_metrics = torch.nn.ModuleDict({s: MeanMetric() for s in splits})
        self.untrained: dict | None = None
        self.predictions: dict[str, list[dict]] = {}  # latest evaluation of each split (all ranks' rows after it ends)
        self._baseline_pass = False

    def configure_model(self) -> None:
        if self.tokenizer is None:
            from lora_lab.models.backbones import load_tokenizer

            self.tokenizer = load_tokenizer(self.backbone_cfg)
        super().configure_model()

    # ----- training ---------------------------------------------------------------------------
    def task_loss(self, batch: dict) -> torch.Tensor:
        """Mean token cross-entropy over the answer tokens (labels != -100).

        Causal LMs get left-padded batches, so every answer ends at the last column: only the last
        ``keep`` positions (from just before the earliest answer token) go through the LM head, which
        skips most of the vocabulary projection and its softmax for prompt tokens. Position ids come
        from the attention mask, so padding does not shift positions."""
        if self.family == "seq2seq":
            return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"], use_cache=False).loss
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        width = labels.shape[1]
        first = int((labels != -100).float().argmax(dim=1).min())  # earliest answer column in the batch
        keep = min(width, width - first + 1)
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
        if self.family == "seq2seq":
            start = getattr(self.model.config, "decoder_start_token_id", None)
            kwargs["decoder_start_token_id"] = self.hparams.pad_token_id if start is None else start
        return GenerationConfig(**kwargs)

    @torch.no_grad()
    def generate_sql(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[str]:
        """Decode a batch of prompts (left-padded for causal LMs) into extracted SQL strings."""
        out = self.model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=self.generation_config())
        if self.family == "causal_lm":
            out = out[:, prompt_ids.shape[1] :]
        return [extract_sql(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    # ----- evaluation -------------------------------------------------------------------------
    def _eval_step(self, batch: dict, split: str) -> None:
        loss = self.task_loss(batch)
        self.loss_metrics[split].update(loss.detach().float(), weight=int((batch["labels"] != -100).sum()))
        predictions = self.generate_sql(batch["prompt_ids"], batch["prompt_mask"])
        judgements = [judge(p, e, self.sql_timeout_s) for p, e in zip(predictions, batch["examples"], strict=True)]
        self.sql_metrics[split].update(judgements)
        self.predictions.setdefault(split, []).extend(
            {"question": e.question, "table_id": e.table.id, "gold": e.gold_sql, "predicted": p, "exec_correct": j.exec_correct,
             "lf_correct": j.lf_correct, "error": j.pred_error}
            for p, e, j in zip(predictions, batch["examples"], judgements)
        )

    def on_validation_epoch_start(self) -> None:
        for split in self.spec.eval_splits:
            self.predictions[split] = []

    def on_test_epoch_start(self) -> None:
        self.predictions["test"] = []

    def split_values(self, split: str) -> dict[str, float]:
        # every rank holds its shard's rows; all of them, in dataset order, on every rank
        self.predictions[split] = gather_in_order(self.predictions.get(split, []))
        values = {f"{split}/{k}": float(v) for k, v in self.sql_metrics[split].compute().items()}
        values[f"{split}/loss"] = float(self.loss_metrics[split].compute())
        return values

    def split_metrics(self, split: str) -> list:
        return [self.sql_metrics[split], self.loss_metrics[split]]

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
