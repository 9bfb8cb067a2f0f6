"""GLUE (Wang et al. 2019): the nine tasks, from the Hub (``nyu-mll/glue``) or a local directory.

Local layout is the original GLUE distribution (``download_glue_data.py``)::

    <data_dir>/CoLA/{train,dev}.tsv        # no header: source, label, original label, sentence
    <data_dir>/SST-2/{train,dev}.tsv       # sentence, label
    <data_dir>/MRPC/{train,dev}.tsv        # Quality, #1 ID, #2 ID, #1 String, #2 String
    <data_dir>/QQP/{train,dev}.tsv         # id, qid1, qid2, question1, question2, is_duplicate
    <data_dir>/STS-B/{train,dev}.tsv       # ..., sentence1, sentence2, score
    <data_dir>/MNLI/{train,dev_matched,dev_mismatched}.tsv   # ..., sentence1, sentence2, ..., gold_label
    <data_dir>/QNLI/{train,dev}.tsv        # index, question, sentence, label
    <data_dir>/RTE/{train,dev}.tsv         # index, sentence1, sentence2, label
    <data_dir>/WNLI/{train,dev}.tsv        # index, sentence1, sentence2, label

TSVs are read with quoting disabled (a sentence may start with a quote character). Labels follow the
Hub's ``ClassLabel`` order so both sources give identical ids. Test splits carry no labels, so
validation = the official dev split (as the LoRA/AdaLoRA papers report).
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lora_lab.errors import ConfigError
from lora_lab.strict_read import AmbiguousInput, check_header


@dataclass(frozen=True)
class GlueTask:
    key: str  # Hub config name
    folder: str  # local folder name
    text_columns: tuple[str, ...]  # Hub column names
    tsv_columns: tuple[str | int, ...]  # local TSV column names (or indices for headerless CoLA)
    label_tsv_column: str | int
    label_names: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    primary: str
    val_splits: tuple[tuple[str, str, str], ...] = (("val", "validation", "dev"),)  # (alias, hub split, tsv stem)
    headerless: bool = False

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


GLUE_TASKS: dict[str, GlueTask] = {  # in the column order of the GLUE, LoRA and AdaLoRA papers
    t.key: t
    for t in [
        GlueTask(
            "mnli", "MNLI", ("premise", "hypothesis"), ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"),
            ("accuracy",), "accuracy",
            val_splits=(("val", "validation_matched", "dev_matched"), ("val_mm", "validation_mismatched", "dev_mismatched")),
        ),
        GlueTask("sst2", "SST-2", ("sentence",), ("sentence",), "label", ("negative", "positive"), ("accuracy",), "accuracy"),
        GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), ("#1 String", "#2 String"), "Quality", ("not_equivalent", "equivalent"), ("accuracy", "f1"), "accuracy"),
        GlueTask("cola", "CoLA", ("sentence",), (3,), 1, ("unacceptable", "acceptable"), ("mcc", "accuracy"), "mcc", headerless=True),
        GlueTask("qnli", "QNLI", ("question", "sentence"), ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",), "accuracy"),
        GlueTask("qqp", "QQP", ("question1", "question2"), ("question1", "question2"), "is_duplicate", ("not_duplicate", "duplicate"), ("accuracy", "f1"), "accuracy"),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",), "accuracy"),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "score", None, ("pearson", "spearman"), "pearson"),
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "label", ("not_entailment", "entailment"), ("accuracy",), "accuracy"),
    ]
}

# An example: (text_a, text_b or None, label as int or float)
Example = tuple[str, "str | None", "int | float"]


def get_glue_task(key: str) -> GlueTask:
    if key not in GLUE_TASKS:
        raise ConfigError("task.glue_task", f"unknown GLUE task {key!r}; allowed: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]


def _label_id(task: GlueTask, raw: str, path: Path, line: int):
    if task.label_names is None:
        return float(raw)
    if raw.strip().lstrip("-").isdigit():
        value = int(raw)
    elif raw in task.label_names:
        value = task.label_names.index(raw)
    else:
        raise ConfigError("task.data_dir", f"{path}:{line}: label {raw!r} is not one of {list(task.label_names)}")
    if not 0 <= value < task.num_labels:
        raise ConfigError("task.data_dir", f"{path}:{line}: label {value} out of range for {task.key}")
    return value


def read_glue_tsv(task: GlueTask, path: Path) -> list[Example]:
    """Read one split of the original GLUE TSV layout (quoting disabled)."""
    if not path.is_file():
        raise ConfigError("task.data_dir", f"missing GLUE file {path} (expected the original GLUE layout: {task.folder}/train.tsv, dev.tsv)")
    csv.field_size_limit(sys.maxsize)
    # utf-8-sig: the original MRPC train/dev files start with a byte-order mark before "Quality"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.headerless:
        header, body, first_line = None, rows, 1
        index = {c: c for c in task.tsv_columns + (task.label_tsv_column,)}
    else:
        if not rows:
            raise ConfigError("task.data_dir", f"{path} is empty")
        header, body, first_line = rows[0], rows[1:], 2
        try:
            check_header(header)
        except AmbiguousInput as err:
            raise ConfigError("task.data_dir", f"{path}:1: {err}") from None
        needed = list(task.tsv_columns) + [task.label_tsv_column]
        missing = [c for c in needed if c not in header]
        if missing:
            raise ConfigError("task.data_dir", f"{path} lacks column(s) {missing}; header has {header}")
        index = {c: header.index(c) for c in needed}
    examples: list[Example] = []
    for offset, row in enumerate(body):
        if not row or all(not cell for cell in row):
            continue
        line = first_line + offset
        width = max(index.values()) + 1
        if len(row) < width:
            raise ConfigError("task.data_dir", f"{path}:{line}: expected at least {width} tab-separated fields, got {len(row)}")
        texts = [row[index[c]] for c in task.tsv_columns]
        label = _label_id(task, row[index[task.label_tsv_column]], path, line)
        examples.append((texts[0], texts[1] if len(texts) > 1 else None, label))
    return examples


def load_glue_local(task: GlueTask, data_dir: str | os.PathLike) -> dict[str, list[Example]]:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError("task.data_dir", f"{root} is not a directory")
    folder = root / task.folder
    splits = {"train": read_glue_tsv(task, folder / "train.tsv")}
    for alias, _, stem in task.val_splits:
        splits[alias] = read_glue_tsv(task, folder / f"{stem}.tsv")
    return splits


def load_glue_hub(task: GlueTask, dataset: str = "nyu-mll/glue", revision: str | None = None) -> dict[str, list[Example]]:
    """Load through `datasets` (network or a warm HF cache; ``HF_DATASETS_OFFLINE=1`` for cache-only)."""
    from datasets import load_dataset

    ds = load_dataset(dataset, task.key, revision=revision)
    wanted = {"train": "train", **{alias: hub for alias, hub, _ in task.val_splits}}
    out: dict[str, list[Example]] = {}
    for alias, split in wanted.items():
        part = ds[split]
        cols = [part[c] for c in task.text_columns]
        labels = part["label"]
        out[alias] = [
            (cols[0][i], cols[1][i] if len(cols) > 1 else None, float(labels[i]) if task.label_names is None else int(labels[i]))
            for i in range(len(part))
        ]
    return out
