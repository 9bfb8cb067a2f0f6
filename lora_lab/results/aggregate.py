"""Paper-style aggregation of a trials DataFrame (`lora_lab.results.collect`).

- **Rows** = method + the knobs that vary within a (method, task) pair among finished runs (e.g.
  ``r`` in a rank sweep, ``init`` when PiSSA runs as ``lora`` with ``init=pissa``); ``by=[...]``
  fixes them instead. Bookkeeping keys (paths, run names, the study name, data dirs, logging) are
  never row keys, so two different configs are never averaged as if they were seeds.
- **Columns** = tasks. A task's score is its labelled test split where every run has one (model
  selection stayed on validation), otherwise its validation split (GLUE dev, as the papers report).
- **Nuisance axes** (default: ``optim.lr`` and ``lr_scale``; with ``by``, every other varying knob
  too): inside a cell the runs are grouped per nuisance setting, each setting's *validation* mean
  over seeds is compared, and the cell shows the chosen setting's score mean ± sample std (ddof 1)
  over seeds. Test scores never influence the choice.
- Only ``success`` runs with a validation value are averaged; failed / cancelled / unfinished runs
  are counted per cell (and listed by the report), runs at chance level are counted per cell.
  Two finished runs with the same row, task, setting and seed (e.g. the same study collected
  twice) keep the newest and are listed as duplicates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import pandas as pd

from lora_lab.errors import ConfigError

DEFAULT_NUISANCE = ("cfg.optim.lr", "cfg.lr_scale")
#: config keys that never split rows: bookkeeping, not science
IGNORED = (
    "seed", "study", "run_name", "run_suffix", "force", "save_adapter", "test_after_fit", "run.*", "sweep.*",
    "paths.*", "method_lr.*", "callbacks.*", "logger.*", "task.name", "task.data_dir", "task.hub_*",
    "task.eval_batch_size", "task.num_workers", "backbone.name", "backbone.hub_id", "backbone.tokenizer",
    "backbone.revision", "trainer._target_", "trainer.enable_*", "trainer.log_every_n_steps", "trainer.num_sanity_val_steps",
)
#: GLUE tasks in the papers' column order; other tasks follow alphabetically
TASK_ORDER = ("glue_mnli", "glue_sst2", "glue_mrpc", "glue_cola", "glue_qnli", "glue_qqp", "glue_rte", "glue_stsb", "glue_wnli")
UNFINISHED = ("failed", "cancelled", "running")


@dataclass
class Aggregate:
    cells: pd.DataFrame  # one row per (row keys, task)
    row_keys: list[str]  # columns of `cells` naming a row, "method" first
    tasks: list[str]
    task_info: dict[str, dict]  # task -> {"metric", "split"}
    setting_keys: list[str]  # nuisance columns the best setting was chosen over
    chosen: pd.DataFrame  # the finished runs behind every cell (the chosen setting)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (kept run, dropped run)


def display_name(column: str) -> str:
    """``cfg.adapter.r`` -> ``r``; ``cfg.budget`` -> ``budget``; ``cfg.trainer.max_steps`` -> ``trainer.max_steps``."""
    for prefix in ("cfg.adapter.", "cfg."):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def _ignored(column: str) -> bool:
    key = column[len("cfg."):]
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in IGNORED)


def _resolve_key(name: str, columns) -> str:
    for candidate in (name, f"cfg.{name}", f"cfg.adapter.{name}"):
        if candidate in columns:
            return candidate
    allowed = sorted(display_name(c) for c in columns if c.startswith("cfg.") and not _ignored(c))
    raise ConfigError("--by", f"unknown key {name!r}; allowed: {', '.join(allowed)}")


def _varying(df: pd.DataFrame, columns: list[str]) -> list[str]:
    if not columns or df.empty:
        return []
    counts = df.groupby(["method", "task"], dropna=False)[columns].nunique(dropna=False).max()
    return [c for c in columns if counts[c] > 1]


def _sort_value(v):
    if v is None or (isinstance(v, float) and v != v):
        return (2, 0, "")
    if isinstance(v, bool):
        return (1, 0, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0, str(v))


def task_order(tasks) -> list[str]:
    tasks = [t for t in dict.fromkeys(tasks) if t is not None]
    known = [t for t in TASK_ORDER if t in tasks]
    return known + sorted(t for t in tasks if t not in known)


def aggregate(trials: pd.DataFrame, by: list[str] | None = None, nuisance=DEFAULT_NUISANCE) -> Aggregate:
    """Cells of the paper table from a trials DataFrame (see module doc)."""
    ok = trials[(trials["status"] == "success") & trials["val"].notna() & trials["task"].notna()].copy()
    ok["method"] = ok["method"].fillna("?")
    ok["trial"] = ok.index  # row of `trials` (rank patterns and other per-trial extras are keyed by it)
    cfg_cols = [c for c in ok.columns if c.startswith("cfg.")]
    nuisance = [c for c in nuisance if c in ok.columns]
    candidates = [c for c in cfg_cols if not _ignored(c) and c not in nuisance]
    varying = _varying(ok, candidates)
    if by:
        keys = [_resolve_key(b, ok.columns if not ok.empty else trials.columns) for b in by]
        row_keys = ["method"] + [k for k in keys if k != "method"]
        setting_keys = nuisance + [c for c in varying if c not in row_keys]
    else:
        adapter_first = sorted(varying, key=lambda c: (not c.startswith("cfg.adapter."), cfg_cols.index(c)))
        row_keys = ["method"] + adapter_first
        setting_keys = list(nuisance)
    tasks = task_order(ok["task"])
    task_info = {}
    for task, group in ok.groupby("task"):
        split = "test" if group["test"].notna().all() else "val"
        task_info[task] = {"metric": str(group["metric"].iloc[0]), "split": split}
    ok["score"] = [row.test if task_info[row.task]["split"] == "test" else row.val for row in ok[["task", "test", "val"]].itertuples()]

    # one finished run per (row, task, setting, seed): the newest
    ident = row_keys + ["task"] + setting_keys + ["seed"]
    ok = ok.sort_values("written_at", na_position="first", kind="stable")
    dup_mask = ok.duplicated(ident, keep="last")
    duplicates = []
    if dup_mask.any():
        kept = dict(zip(_keys(ok.loc[~dup_mask, ident]), ok.loc[~dup_mask, "run_dir"]))
        for key, run_dir in zip(_keys(ok.loc[dup_mask, ident]), ok.loc[dup_mask, "run_dir"]):
            duplicates.append((kept.get(key, "?"), run_dir))
        ok = ok[~dup_mask]

    cell_keys = row_keys + ["task"]
    per_setting = (
        ok.groupby(cell_keys + setting_keys, dropna=False)
        .agg(val_mean=("val", "mean"), n=("val", "size"))
        .reset_index()
        .sort_values(["val_mean", "n"], ascending=[False, False], kind="stable")
    )
    settings_tried = per_setting.groupby(cell_keys, dropna=False).size().rename("n_settings")
    best = per_setting.drop_duplicates(cell_keys, keep="first")
    chosen = ok.merge(best[cell_keys + setting_keys], on=cell_keys + setting_keys, how="inner")
    cells = (
        chosen.groupby(cell_keys, dropna=False)
        .agg(
            mean=("score", "mean"), std=("score", "std"), n=("score", "size"), val_mean=("val", "mean"),
            n_chance=("at_chance", "sum"), params=("adapter_params", "median"), trainable=("trainable_params", "median"),
            lr=("lr", "first"),
        )
        .reset_index()
    )
    cells = cells.merge(settings_tried.reset_index(), on=cell_keys, how="left")
    setting_text = best[cell_keys].copy()
    setting_text["setting"] = [
        ", ".join(f"{display_name(k)}={_fmt_value(v)}" for k, v in zip(setting_keys, vals))
        for vals in best[setting_keys].itertuples(index=False, name=None)
    ] if setting_keys else ""
    cells = cells.merge(setting_text, on=cell_keys, how="left")
    cells["n_unfinished"] = _unfinished_counts(trials, row_keys, cells)
    cells = _sorted(cells, row_keys, tasks)
    return Aggregate(cells, row_keys, tasks, task_info, setting_keys, chosen, duplicates)


def _norm(v):
    return None if v is None or (isinstance(v, float) and v != v) else v


def _keys(df: pd.DataFrame) -> list[tuple]:
    """Row tuples with NaN normalised to None, usable as dict keys."""
    return [tuple(_norm(v) for v in row) for row in df.itertuples(index=False, name=None)]


def _fmt_value(v) -> str:
    if isinstance(v, float) and v == v and v.is_integer():
        return str(int(v))
    return str(v)


def _unfinished_counts(trials: pd.DataFrame, row_keys: list[str], cells: pd.DataFrame) -> list[int]:
    bad = trials[trials["status"].isin(UNFINISHED)].copy()
    if bad.empty or cells.empty:
        return [0] * len(cells)
    bad["method"] = bad["method"].fillna("?")
    for key in row_keys:
        if key not in bad:
            bad[key] = None
    lookup: dict[tuple, int] = {}
    for key in _keys(bad[row_keys + ["task"]]):
        lookup[key] = lookup.get(key, 0) + 1
    return [lookup.get(key, 0) for key in _keys(cells[row_keys + ["task"]])]


def _sorted(cells: pd.DataFrame, row_keys: list[str], tasks: list[str]) -> pd.DataFrame:
    if cells.empty:
        return cells
    order = {t: i for i, t in enumerate(tasks)}
    rows = list(cells[row_keys + ["task"]].itertuples(index=False, name=None))
    keyed = sorted(range(len(rows)), key=lambda i: tuple(_sort_value(v) for v in rows[i][:-1]) + (order.get(rows[i][-1], 0),))
    return cells.iloc[keyed].reset_index(drop=True)


def table_rows(agg: Aggregate) -> list[tuple]:
    """Distinct row-key tuples in display order."""
    return list(dict.fromkeys(agg.cells[agg.row_keys].itertuples(index=False, name=None)))
