"""Text-to-SQL: the generation module with SQL answers. A decoded answer is cut down to its first SQL
statement (`extract_sql`) and judged against the example's table (`lora_lab.tasks.text_to_sql.metrics`):
``<split>/exec_acc`` (primary), ``<split>/lf_acc``, ``<split>/invalid_rate``; predictions record the
question, gold and predicted SQL and the verdicts."""

from __future__ import annotations

import re

from torchmetrics import Metric

from lora_lab.tasks.base import task_setting
from lora_lab.tasks.generation.module import GenerationModule
from lora_lab.tasks.text_to_sql.metrics import SqlAccuracy, judge

_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)(?:```|$)", re.DOTALL)


def extract_sql(text: str) -> str:
    """The first SQL statement of a decoded answer: inside the first code fence if there is one,
    up to the first blank line, up to and including the first ``;`` outside quotes, whitespace outside
    quotes collapsed (string literals are kept verbatim, so a value like ``'Smith; Jones'`` survives). Applied
    alike to trained and untrained models; the result is still untrusted (see `metrics.execute`)."""
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


class TextToSqlModule(GenerationModule):
    def __init__(self, backbone, adapter, optim, task, spec: dict, model_kind: str,
                 pad_token_id: int, eos_token_id: int):
        super().__init__(backbone, adapter, optim, task, spec, model_kind, pad_token_id, eos_token_id)
        self.sql_timeout_s = float(task_setting(task, "sql_timeout_s", 1.0))

    def postprocess(self, text: str) -> str:
        return extract_sql(text)

    def make_metric(self) -> Metric:
        return SqlAccuracy()

    def score(self, split: str, predictions: list[str], examples: list) -> list[dict]:
        judgements = [judge(p, e, self.sql_timeout_s) for p, e in zip(predictions, examples, strict=True)]
        self.text_metrics[split].update(judgements)
        return [
            {"question": e.question, "table_id": e.table.id, "gold": e.gold_sql, "predicted": p, "exec_correct": j.exec_correct,
             "lf_correct": j.lf_correct, "error": j.pred_error}
            for p, e, j in zip(predictions, examples, judgements)
        ]
