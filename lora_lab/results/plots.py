"""Report plots (matplotlib, Agg backend), drawn from the aggregated cells, never from raw runs.

- ``score_vs_rank.png`` -- when ``r`` is a row key: one panel per task, one line per method (and
  other row knobs), mean ± std over seeds at the best nuisance setting;
- ``score_vs_params.png`` -- one panel per task, score against adapter parameters (log x) per method;
- ``rank_heatmap_<row>_<task>.png`` -- for runs that report a final rank pattern (AdaLoRA's
  ``method_summary.rank_pattern``): the pattern averaged over the cell's seeds, layers x module kind
  (`lora_lab.adapters.rank_heatmap`).
"""

from __future__ import annotations

import re
from pathlib import Path

from lora_lab.results.aggregate import Aggregate, display_name
from lora_lab.results.tables import fmt_key

RANK_KEYS = ("cfg.adapter.r", "cfg.adapter.target_r", "cfg.budget")
MAX_HEATMAPS = 24


def _figure(n_panels: int):
    """A bare Agg figure (no pyplot: faster to import, nothing global) with ``n_panels`` axes in a row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * n_panels, 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    width = 4.2 * n_panels  # inches: fixed margins of 0.75 in (y label) and 0.15 in
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.16, top=0.9, wspace=0.35)
    return fig, axes


def _series_label(keys: list[str], values: tuple) -> str:
    parts = [fmt_key(values[0])] + [f"{display_name(k)}={fmt_key(v)}" for k, v in zip(keys[1:], values[1:])]
    return " ".join(parts)


def _panels(agg: Aggregate, x: str, exclude: tuple[str, ...], xlabel: str, log_x: bool, path: Path) -> Path | None:
    cells = agg.cells.dropna(subset=[x, "mean"])
    if cells.empty or cells[x].nunique() < 2:
        return None
    tasks = [t for t in agg.tasks if t in set(cells["task"])]
    fig, axes = _figure(len(tasks))
    series_keys = [k for k in agg.row_keys if k not in exclude]
    for ax, task in zip(axes, tasks):
        sub = cells[cells["task"] == task]
        for values, group in sub.groupby(series_keys, dropna=False, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            group = group.sort_values(x)
            std = group["std"].fillna(0.0) * 100
            ax.errorbar(group[x].astype(float), group["mean"] * 100, yerr=std, marker="o", capsize=3, label=_series_label(series_keys, values))
        if log_x:
            ax.set_xscale("log", base=2 if x == "cfg.adapter.r" else 10)
        info = agg.task_info[task]
        ax.set_title(task, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{info['split']} {info['metric']} x100")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def score_vs_rank(agg: Aggregate, out_dir: Path) -> Path | None:
    if "cfg.adapter.r" not in agg.row_keys:
        return None
    return _panels(agg, "cfg.adapter.r", RANK_KEYS, "rank r", True, Path(out_dir) / "score_vs_rank.png")


def score_vs_params(agg: Aggregate, out_dir: Path) -> Path | None:
    return _panels(agg, "params", RANK_KEYS + ("cfg.adapter.alpha",), "adapter parameters", True, Path(out_dir) / "score_vs_params.png")


def rank_heatmaps(agg: Aggregate, rank_patterns: dict[int, dict], out_dir: Path) -> list[Path]:
    """One heatmap per cell whose chosen runs report a rank pattern (averaged over seeds)."""
    if not rank_patterns or agg.chosen.empty:
        return []
    try:
        from lora_lab.adapters.rank_heatmap import plot_rank_heatmap
    except ImportError:  # the AdaLoRA branch provides it
        return []
    paths = []
    cell_keys = agg.row_keys + ["task"]
    for values, group in agg.chosen.groupby(cell_keys, dropna=False, sort=True):
        summaries = [rank_patterns[t] for t in group["trial"] if t in rank_patterns]
        if not summaries:
            continue
        names = list(dict.fromkeys(n for s in summaries for n in s["rank_pattern"]))
        mean = {n: round(sum(s["rank_pattern"].get(n, 0) for s in summaries) / len(summaries)) for n in names}
        label = "_".join(fmt_key(v) for v in values)
        path = Path(out_dir) / f"rank_heatmap_{re.sub(r'[^A-Za-z0-9_.+-]', '-', label)}.png"
        title = f"{values[0]} | {values[-1]} | n={len(summaries)}"
        paths.append(plot_rank_heatmap(mean, summaries[0].get("model_type"), path, r_init=summaries[0].get("r_init"), title=title))
        if len(paths) >= MAX_HEATMAPS:
            break
    return paths


def all_plots(agg: Aggregate, rank_patterns: dict[int, dict], out_dir: Path) -> list[Path]:
    out = [score_vs_rank(agg, out_dir), score_vs_params(agg, out_dir)]
    return [p for p in out if p is not None] + rank_heatmaps(agg, rank_patterns, out_dir)

