"""Paper-style aggregation of a trials DataFrame (`lora_lab.results.collect`).

- **Rows** = method + the knobs that vary within a (method, task) pair among the trials with a
  config (finished or not: a planned row whose runs all failed is still a row), e.g. ``r`` in a
  rank sweep, ``init`` when PiSSA runs as ``lora`` with ``init=pissa``; ``by=[...]`` fixes them
  instead. A backbone key (``backbone.short_name``, ``backbone.pooling``, ...) that differs anywhere, and any
  non-task key that differs between the tasks of one method, is always a row key (with ``by``: an error
  naming it), so no row mixes backbones or configurations. Bookkeeping keys (paths, run names, the study name, data dirs, logging),
  run control and a study file's own lookup tables (a per-task step table: only the keys it resolves into
  count; `lora_lab.results.trial_identity`) are never row keys. A knob that one method
  lacks (one method's knob on another method's row) is a missing key value, shown as "–".
- **Columns** = task + primary metric, each with its own split (test where the column's runs have
  test values, else validation): see `lora_lab.results.columns`.
- **Nuisance axes** (default: ``optim.lr`` and ``lr_scale``; with ``by``, every other varying knob
  too): inside a cell the runs are grouped per nuisance setting, each setting's *validation* mean
  over seeds is compared, and the cell shows the chosen setting's score mean ± sample std (ddof 1)
  over seeds. Test scores never influence the choice.
- Only ``success`` runs with the column's score are averaged; failed / cancelled / unfinished runs
  and successful runs without the score are counted per cell (``n_unfinished``; listed by the
  report), and a (row, task) with such trials but no finished run is an empty cell (n = 0), never
  dropped. Runs at chance level are counted per cell. ``params`` is the median
  ``adapter_params_final`` (the adapter as trained), ``params_init`` the recorded count.
  Two finished runs with the same row, task, setting and seed (e.g. the same study collected
  twice) keep the newest (``written_at`` compared in UTC) and are listed as duplicates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import pandas as pd

from lora_lab.errors import ConfigError
from lora_lab.results.names import LABEL_KEYS
from lora_lab.results.columns import NO_TEST, by_time_written, task_columns, task_order  # noqa: F401 (re-exported)
from lora_lab.results.trial_identity import is_result_key

NON_FINITE = "non-finite score"  # why a success whose val or test is Infinity/NaN (`collect.trial_row`) is left out

DEFAULT_NUISANCE = ("cfg.optim.lr", "cfg.lr_scale")
#: keys of the trial (`is_result_key`) that never split rows: bookkeeping, not science
IGNORED = (
    "seed", "study", "run_name", "run_suffix", "save_adapter", "test_after_fit", "callbacks.*", "task.name", "task.data_dir", "task.hub_*",
    "task.eval_batch_size", "task.num_workers", "backbone.name", "backbone.hub_id", "backbone.tokenizer",
    "backbone.revision", "trainer._target_", "trainer.enable_*", "trainer.log_every_n_steps", "trainer.num_sanity_val_steps",
)
UNFINISHED = ("failed", "cancelled", "running", "missing")  # "missing": planned, no result.json (task known from the plan)


@dataclass
class Aggregate:
    cells: pd.DataFrame  # one row per (row keys, task)
    row_keys: list[str]  # columns of `cells` naming a row, "method" first
    tasks: list[str]
    task_info: dict[str, dict]  # task -> {"metric", "split"}
    setting_keys: list[str]  # nuisance columns the best setting was chosen over
    chosen: pd.DataFrame  # the finished runs behind every cell (the chosen setting)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (kept run, dropped run)
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (successful run left out, why)


def display_name(column: str) -> str:
    """``cfg.adapter.r`` -> ``r``; ``cfg.budget`` -> ``budget``; ``cfg.trainer.max_steps`` -> ``trainer.max_steps``."""
    for prefix in ("cfg.adapter.", "cfg."):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def _ignored(column: str) -> bool:
    """Never a row key: bookkeeping (`IGNORED`), or a top-level key that does not make the trial
    (`lora_lab.results.trial_identity.is_result_key`: run control, a study file's own lookup tables)."""
    key = column[len("cfg."):]
    return not is_result_key(key.split(".")[0]) or any(fnmatch.fnmatchcase(key, pattern) for pattern in IGNORED)


AXES = {"task": "the table's column axis", "seed": "what a cell averages over", "study": "where a run was planned"}


def _resolve_key(name: str, columns, option: str = "--by") -> str:
    """The trials column a row key names: ``method``, or a config key (``r`` is ``cfg.adapter.r``,
    ``optim.lr`` is ``cfg.optim.lr``). Never one of the report's own columns (task, seed, scores, status,
    paths): those are not settings a row can be split by."""
    if name == "method":
        return name
    for candidate in (name, f"cfg.{name}", f"cfg.adapter.{name}"):
        if candidate.startswith("cfg.") and candidate in columns and not _ignored(candidate):
            return candidate
    allowed = sorted(display_name(c) for c in columns if c.startswith("cfg.") and not _ignored(c))
    role = "a row key" if option == "--by" else "a setting to choose over"
    what = f"{name!r} is {AXES[name]}, not {role}" if name in AXES else f"unknown key {display_name(name)!r}"
    raise ConfigError(option, f"{what}; allowed: {', '.join(allowed)}")


def _varying(df: pd.DataFrame, columns: list[str]) -> list[str]:
    if not columns or df.empty:
        return []
    counts = df.groupby(["method", "task"], dropna=False)[columns].nunique(dropna=False).max()
    return [c for c in columns if counts[c] > 1]


def _must_split(df: pd.DataFrame, columns: list[str], varying: list[str]) -> list[str]:
    """Keys that must be row keys: a backbone key (``backbone.*``) that differs anywhere in the table (never
    a nuisance to take the best over), and any other key that is constant inside each (method, task) but
    differs between the tasks of one method (``task.*`` excepted: a task's own settings, and so is a key
    that has one value per task across every method, e.g. a study's per-task step budget) -- else a row
    would average them (Avg, #Params) as if they were one configuration."""
    if df.empty:
        return []
    out = [c for c in columns if c.startswith("cfg.backbone.") and df[c].nunique(dropna=False) > 1]
    rest = [c for c in columns if not c.startswith(("cfg.task.", "cfg.backbone.")) and c not in varying]
    if rest:  # a key set per task by the study (each task its own budget), the same for every method of that task: a task's setting too
        per_task = df.groupby("task", dropna=False)[rest].nunique(dropna=False).max()
        rest = [c for c in rest if per_task[c] > 1]
    per_method = df.groupby("method", dropna=False)[rest].nunique(dropna=False).max() if rest else {}
    return out + [c for c, n in dict(per_method).items() if n > 1]


def _sort_value(v):
    if v is None or (isinstance(v, float) and v != v):
        return (2, 0, "")
    if isinstance(v, bool):
        return (1, 0, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0, str(v))


def _pending(df: pd.DataFrame, finished: pd.Series, task_info: dict) -> pd.DataFrame:
    """Trials of the table's rows that are not averaged in, with their reason: failed / cancelled /
    running, successful without a validation value, or (test columns) without a test value."""
    no_test = finished & df["test"].isna() & df["task"].map(lambda t: task_info[t]["split"] == "test")
    pending = df[df["status"].isin(UNFINISHED) | ((df["status"] == "success") & ~finished) | no_test].copy()
    bad = pending["nonfinite"] if "nonfinite" in pending else pd.Series(None, index=pending.index, dtype=object)
    pending["why"] = [f"{NON_FINITE} ({nf}), never averaged" if isinstance(nf, str) and st == "success"
                      else NO_TEST if flag else (st if st != "success" else "no validation value")
                      for st, flag, nf in zip(pending["status"], no_test[pending.index], bad)]
    return pending


def aggregate(trials: pd.DataFrame, by: list[str] | None = None, nuisance=DEFAULT_NUISANCE) -> Aggregate:
    """Cells of the paper table from a trials DataFrame (see module doc)."""
    df = trials[trials["task"].notna()].copy()
    df["method"] = df["method"].fillna("?")
    df["trial"] = df.index  # row of `trials` (rank patterns and other per-trial extras are keyed by it)
    for col in ("adapter_params_final", "git_dirty"):
        if col not in df:
            df[col] = df["adapter_params"] if col == "adapter_params_final" else None
    finished = (df["status"] == "success") & df["val"].notna()
    df["task_name"] = df["task"]
    df["task"], task_info = task_columns(df, finished)
    pending = _pending(df, finished, task_info)
    ok = df[finished & ~df.index.isin(pending.index)].copy()
    pool = pd.concat([ok, pending]) if len(pending) else ok  # planned rows: finished or not
    cfg_cols = [c for c in df.columns if c.startswith("cfg.")]
    # a key asked for is found as --by finds one (``r`` is cfg.adapter.r); one no run has is a typo, one line
    # (the defaults may be absent: runs without lr_scale)
    nuisance = [k if k in DEFAULT_NUISANCE or df.empty else _resolve_key(k.removeprefix("cfg."), df.columns, "--nuisance") for k in nuisance]
    nuisance = [c for c in nuisance if c in df.columns]
    candidates = [c for c in cfg_cols if not _ignored(c) and c not in nuisance]
    varying = _varying(pool, candidates)
    must_split = _must_split(pool, candidates, varying)
    if by:
        keys = [_resolve_key(b, df.columns if not df.empty else trials.columns) for b in by]
        # what names the method (its init: PiSSA is LoRA's init=pissa; rsLoRA) is a row key wherever it varies,
        # whatever --by says: a "LoRA" row must never show PiSSA's numbers because PiSSA did better on dev
        identity = [c for c in LABEL_KEYS[1:] if c in varying or c in must_split]
        row_keys = ["method"] + identity + [k for k in keys if k not in ("method", *identity)]
        unsplit = [c for c in must_split if c not in row_keys]
        if unsplit:
            values = sorted(map(str, pool[unsplit[0]].dropna().unique()))
            raise ConfigError("--by", f"{display_name(unsplit[0])} differs between runs of one row ({', '.join(values)}) and is never averaged over; "
                              f"add it: --by {','.join([*by, display_name(unsplit[0])])}")
        # a nuisance key asked for as a row key (--by optim.lr) is a row key: one row per value, none chosen on dev
        setting_keys = [c for c in nuisance if c not in row_keys] + [c for c in varying if c not in row_keys]
    else:
        adapter_first = sorted(dict.fromkeys([*varying, *must_split]), key=lambda c: (not c.startswith("cfg.adapter."), cfg_cols.index(c)))
        row_keys = ["method"] + adapter_first
        setting_keys = list(nuisance)
    tasks = list(task_info)
    ok["score"] = [row.test if task_info[row.task]["split"] == "test" else row.val for row in ok[["task", "test", "val"]].itertuples()]

    # one finished run per (row, task, setting, seed): the newest
    ident = row_keys + ["task"] + setting_keys + ["seed"]
    ok = by_time_written(ok)
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
            n_chance=("at_chance", "sum"), params=("adapter_params_final", "median"), params_init=("adapter_params", "median"),
            trainable=("trainable_params", "median"), lr=("lr", "first"),
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
    cells = _with_empty_cells(cells, pending, cell_keys)
    cells = _sorted(cells, row_keys, tasks)
    incomplete = [(d, why) for d, why, st in zip(pending["run_dir"], pending["why"], pending["status"])
                  if why == NO_TEST or (st == "success" and why.startswith(NON_FINITE))]
    return Aggregate(cells, row_keys, tasks, task_info, setting_keys, chosen, duplicates, incomplete)


def _with_empty_cells(cells: pd.DataFrame, pending: pd.DataFrame, cell_keys: list[str]) -> pd.DataFrame:
    """Count the pending trials per cell (``n_unfinished``) and add an empty cell (no mean, n = 0) for
    every (row, task) that has pending trials but no finished run, so it is shown, never dropped."""
    counts: dict[tuple, int] = {}
    first: dict[tuple, dict] = {}
    for key, rec in zip(_keys(pending[cell_keys]) if len(pending) else [], pending.to_dict("records")):
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, {k: rec.get(k) for k in cell_keys})
    have = _keys(cells[cell_keys]) if len(cells) else []
    cells = cells.assign(n_unfinished=[counts.get(k, 0) for k in have])
    extra = [{**first[k], "n": 0, "n_chance": 0, "n_settings": 0, "setting": "", "n_unfinished": counts[k]} for k in counts if k not in set(have)]
    if extra:
        cells = pd.concat([cells, pd.DataFrame(extra)], ignore_index=True) if len(cells) else pd.DataFrame(extra)
    for col in ("mean", "std", "val_mean", "params", "params_init", "trainable", "lr"):
        if col not in cells:
            cells[col] = float("nan")
    return cells


def _norm(v):
    return None if v is None or (isinstance(v, float) and v != v) else v


def _keys(df: pd.DataFrame) -> list[tuple]:
    """Row tuples with NaN normalised to None, usable as dict keys."""
    return [tuple(_norm(v) for v in row) for row in df.itertuples(index=False, name=None)]


def _fmt_value(v) -> str:
    if isinstance(v, float) and v == v and v.is_integer():
        return str(int(v))
    return str(v)


def _sorted(cells: pd.DataFrame, row_keys: list[str], tasks: list[str]) -> pd.DataFrame:
    if cells.empty:
        return cells
    order = {t: i for i, t in enumerate(tasks)}
    rows = list(cells[row_keys + ["task"]].itertuples(index=False, name=None))
    keyed = sorted(range(len(rows)), key=lambda i: tuple(_sort_value(v) for v in rows[i][:-1]) + (order.get(rows[i][-1], 0),))
    return cells.iloc[keyed].reset_index(drop=True)


def table_rows(agg: Aggregate) -> list[tuple]:
    """Distinct row-key tuples in display order, a missing key value (NaN: the knob does not exist for
    that method, e.g. a rank schedule knob on a row of a method without one) normalised to None so each row occurs once."""
    return list(dict.fromkeys(_keys(agg.cells[agg.row_keys])))


def cell_index(agg: Aggregate) -> dict[tuple, dict]:
    """{(row keys..., task): cell record} with the keys normalised like `table_rows`."""
    records = agg.cells.to_dict("records")
    return dict(zip(_keys(agg.cells[agg.row_keys + ["task"]]), records)) if records else {}
