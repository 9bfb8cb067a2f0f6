"""Task columns of the paper table, and the split each column reports.

- **A column is a task and its primary metric.** Runs of one task whose primary metric differs (e.g.
  two code versions, one reporting MRPC accuracy, one F1) get one column per metric, labelled
  ``task:metric``, so two metrics are never averaged together. Runs without a metric (failed or
  unfinished, which never wrote one) are counted in the column of the metric of the task's newest
  finished run.
- **The split is chosen per column, never switched silently:** ``test`` when any finished run of the
  column has a test value (model selection stays on validation), otherwise ``val`` (GLUE dev, as
  the papers report). In a ``test`` column a finished run without a test value is *incomplete*
  (reason `NO_TEST`): it is excluded from its cell, counted with the cell's unfinished trials and
  listed by the report; it does not move the column (or any other method) to validation.
"""

from __future__ import annotations

import pandas as pd

from lora_lab.tasks.registry import task_position

NO_TEST = "no test metric (the column reports the test split)"


def task_order(columns) -> list[str]:
    """The tasks the families name, in their declared order (GLUE in its papers' order: MNLI, SST-2, MRPC,
    CoLA, QNLI, QQP, RTE, STS-B, WNLI), then the others alphabetically (``task:metric`` by task)."""
    columns = [c for c in dict.fromkeys(columns) if c is not None]

    def key(label: str):
        position = task_position(label.split(":", 1)[0])
        return (0, position, label) if position is not None else (1, 0, label)

    return sorted(columns, key=key)


def by_time_written(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` oldest first by ``written_at`` compared as instants (the runner writes local time with
    its UTC offset, so two machines' strings do not sort as text); unknown times first."""
    when = pd.to_datetime(df["written_at"], utc=True, errors="coerce", format="ISO8601")
    order = when.reset_index(drop=True).sort_values(na_position="first", kind="stable").index
    return df.iloc[order]


def _newest_metric(group: pd.DataFrame) -> str:
    return str(by_time_written(group)["metric"].iloc[-1])


def task_columns(df: pd.DataFrame, finished: pd.Series) -> tuple[list[str], dict[str, dict]]:
    """(column label per row of ``df``, {label: {"task", "metric", "split"}}) for the trials in ``df``
    (every one with a task); ``finished`` marks the successful runs with a validation value."""
    metrics, newest = {}, {}
    for task, group in df[finished].groupby("task"):
        metrics[task] = set(group["metric"].dropna().astype(str))
        newest[task] = _newest_metric(group)
    labels = []
    for task, metric in zip(df["task"], df["metric"]):
        if len(metrics.get(task, ())) > 1:
            labels.append(f"{task}:{metric if metric in metrics[task] else newest[task]}")
        else:
            labels.append(task)
    labels_s = pd.Series(labels, index=df.index)
    info = {}
    for label in task_order(labels):
        in_col = labels_s == label
        done = df[in_col & finished]
        task = label.split(":", 1)[0] if label not in set(df["task"]) else label
        if done.empty:
            known = df.loc[in_col, "metric"].dropna()
            info[label] = {"task": task, "metric": str(known.iloc[0]) if len(known) else "?", "split": None}
        else:
            info[label] = {"task": task, "metric": _newest_metric(done), "split": "test" if done["test"].notna().any() else "val"}
    return labels, info
