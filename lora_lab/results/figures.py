"""Report figures (matplotlib, Agg), drawn from the table's cells, each saved as PNG (150 dpi) and
PDF (vector) side by side, with its caption in ``captions.json`` (the study page shows them).

- ``score_vs_params`` -- one panel per task: score against adapter parameters, one marker and colour
  per method (display names), a line through a method's points (e.g. its ranks);
- ``score_vs_rank`` -- when ``r`` is a row key: score against r (log2 axis, ticks at the ranks run);
- ``pareto`` -- cost / quality: score against wall time per 1k steps and against peak memory, one row
  of panels per task, the Pareto front (no other point is cheaper *and* better) dashed; the x values are
  the table's cost columns (`lora_lab.results.costs.cell_costs`), drawn only with ``--cost`` (timings
  the study declares comparable);
- ``rank_heatmap_<row>_<task>`` -- the final rank per matrix (layers x module) of a method whose summary reports a ``rank_pattern``, mean over seeds
  (`lora_lab.adapters.rank_heatmap`).

Readability: ticks come from the data's range: a log axis with labels at 1-2-5 steps when the values
span more than a factor 10, otherwise ticks at the values run (``73.7K``, ``78.3K``), labels thinned
so they never overlap (`set_axis`);
points whose x positions would overlap (equal parameter counts: LoRA and PiSSA at the same r) are
spread horizontally by a few percent of the axis, said in the caption; error bars are the table's
``±`` (sample std over seeds, or the 95 % t-interval clipped to the metric's range; none below 3 seeds);
a panel with nothing to show (no point, every run at chance, every point at one value) is left out and
named in the caption; a hollow marker with ``†`` marks a cell where
some runs never left chance level. Figures are sized for a paper (7 in wide at most, 8 pt text).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from lora_lab.adapters.rank_heatmap import plot_rank_heatmap
from lora_lab.figure_files import figure_stem, save_figure
from lora_lab.results.aggregate import Aggregate
from lora_lab.results.costs import cell_costs, fmt_params
from lora_lab.results.names import metric_name, row_label, task_name
from lora_lab.results.table_model import DAGGER, MIN_SEEDS, Table, fmt_key

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
RANK_KEY = "cfg.adapter.r"
MAX_HEATMAPS = 24
DODGE = 0.025  # fraction of the axis span between overlapping points
MIN_LABEL_GAP = 0.22  # fraction of the data span between two tick labels
PANEL_W, PANEL_H = 2.3, 1.9  # inches


def _figure(n_panels: int, n_cols: int | None = None):
    """A bare Agg figure (no pyplot state) with a grid of panels at paper size, 8 pt text; margins
    fixed in inches (room for tick labels, titles and the legend below), no layout engine (fast)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = n_cols or min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    width, height = PANEL_W * cols + 0.5, PANEL_H * rows + 0.7
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.55 / width, right=1 - 0.12 / width, bottom=0.85 / height, top=1 - 0.25 / height,
                        wspace=0.38, hspace=0.65)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    for ax in axes:
        ax.tick_params(labelsize=7)
    return fig, list(axes[:n_panels])


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    save_figure(fig, paths[0], dpi=150)
    save_figure(fig, paths[1])
    return paths


def styles(table: Table) -> dict[str, tuple[str, str]]:
    """Display label -> (marker, colour), fixed by the table's row order so every figure agrees."""
    labels = list(dict.fromkeys(r["label"] for r in table.rows if not r["reference"]))
    return {label: (MARKERS[i % len(MARKERS)], COLORS[i % len(COLORS)]) for i, label in enumerate(labels)}


def short_number(v: float) -> str:
    """A tick label of at most 4-5 characters: 4370, 95.3, 0.52."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2g}"


def tick_params(v: float) -> str:
    """Parameter count as a tick label: ``20K``, ``73.7K``, ``1.5M``."""
    return fmt_params(v).replace(".0K", "K").replace(".00M", "M")


def set_axis(ax, values, log_base: int | None = None, formatter=None, which: str = "x") -> bool:
    """Scale and ticks for ``values`` on one axis; returns True for a log axis.

    Values spanning more than a factor 10: log axis, ticks at 1-2-5 steps. Otherwise (or
    ``log_base=2``, a log2 axis) ticks sit at the distinct values themselves, so a label never
    names a value no run has (points spread apart by `dodge` keep their true tick). A label closer
    than `MIN_LABEL_GAP` of the span to the previous one is left out (its tick stays), so labels
    never overlap, however narrow or wide the range."""
    from matplotlib import ticker

    axis = ax.xaxis if which == "x" else ax.yaxis
    values = sorted({float(v) for v in values if v and v > 0})
    wide = bool(values) and values[-1] / values[0] > 10 and log_base is None
    fmt = formatter or (lambda v: f"{v:g}")
    if log_base == 2 or wide:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=log_base or 10)
    if wide:  # 1-2-5 steps inside the data's range (padded by half a step)
        lo, hi = math.floor(math.log10(values[0])), math.ceil(math.log10(values[-1]))
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5) if values[0] / 2 <= m * 10.0**e <= values[-1] * 2]
        t = np.log10(ticks)
    else:
        ticks = values
        t = np.log2(values) if log_base == 2 else np.asarray(values)
    span = (t[-1] - t[0]) if len(t) > 1 else 1.0
    labelled, last = [], None
    for v, tv in zip(ticks, t):
        keep = last is None or (tv - last) >= MIN_LABEL_GAP * span
        labelled.append(fmt(v) if keep else "")
        last = tv if keep else last
    axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FixedFormatter(labelled))
    axis.set_minor_locator(ticker.NullLocator())
    return wide or log_base == 2


def dodge(xs: list[float], log: bool) -> list[float]:
    """Spread x positions closer than `DODGE` of the span (in axis units) symmetrically apart."""
    if len(xs) < 2:
        return list(xs)
    t = np.log10(xs) if log else np.asarray(xs, dtype=float)
    span = (t.max() - t.min()) or (abs(t.max()) * 0.1 if not log else 0.1) or 1.0
    step = DODGE * max(span, 1e-12) * 1.5
    out = t.copy()
    order = np.argsort(t, kind="stable")
    groups, current = [], [order[0]]
    for i in order[1:]:
        if abs(t[i] - t[current[0]]) < step:
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)
    for group in groups:
        for k, i in enumerate(group):
            out[i] = t[group[0]] + (k - (len(group) - 1) / 2) * step
    return list(10**out if log else out)


def _error(cell, spread: str) -> tuple[float, float]:
    """(below, above) the mean, x100: the table's spread -- none below `MIN_SEEDS` seeds; the interval
    clipped to the metric's range, so possibly asymmetric."""
    if cell.n < MIN_SEEDS:
        return 0.0, 0.0
    if spread == "ci" and cell.ci:
        return 100 * (cell.mean - cell.ci[0]), 100 * (cell.ci[1] - cell.mean)
    std = 100 * cell.std if cell.std is not None and cell.std == cell.std else 0.0
    return std, std


def _points(table: Table, task: str, x_of) -> list[dict]:
    out = []
    for row in table.rows:
        cell = row["cells"].get(task)
        x = x_of(row)
        if row["reference"] or cell is None or cell.mean is None or x is None or not (x > 0):
            continue
        out.append({"label": row["label"], "x": float(x), "y": 100 * cell.mean, "err": _error(cell, table.spread), "chance": cell.n_chance > 0})
    return out


def _draw(ax, points: list[dict], style: dict, log: bool, connect: bool = True) -> None:
    """One errorbar call per method (a line through its points when ``connect``); cells at chance
    drawn again hollow, with a dagger."""
    xs = dodge([p["x"] for p in points], log)
    for p, x in zip(points, xs):
        p["shown_x"] = x
    for label in dict.fromkeys(p["label"] for p in points):
        mine = sorted((p for p in points if p["label"] == label), key=lambda p: p["x"])
        marker, color = style[label]
        ax.errorbar([p["shown_x"] for p in mine], [p["y"] for p in mine], yerr=[[p["err"][0] for p in mine], [p["err"][1] for p in mine]], marker=marker, ms=5, color=color,
                    capsize=2, lw=0.9, ls="-" if connect and len(mine) > 1 else "none", alpha=1.0)
        chance = [p for p in mine if p["chance"]]
        if chance:
            ax.scatter([p["shown_x"] for p in chance], [p["y"] for p in chance], marker=marker, s=25, facecolors="white", edgecolors=color, zorder=3)
            for p in chance:
                ax.annotate(DAGGER, (p["shown_x"], p["y"]), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)


def _legend(fig, style: dict, labels) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=style[l][0], color=style[l][1], ls="none", label=l) for l in labels]
    per_row = max(1, int(fig.get_figwidth() / 1.1))  # about 1.1 in per entry at 7 pt
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncols=min(len(handles), per_row), fontsize=7, frameon=False)


def _ylabel(table: Table, task: str) -> str:
    info = table.task_info.get(task, {})
    split = {"val": "dev"}.get(info.get("split"), info.get("split") or "")
    return f"{split} {metric_name(info.get('metric'))} ×100"


def _bars(table: Table) -> str:
    methods = ", ".join(dict.fromkeys(r["label"] for r in table.rows if not r["reference"]))
    n = f"n={table.usual_n} seeds per point unless the table marks fewer; methods: {methods}"
    what = "95 % Student-t confidence interval of the mean, clipped to the metric's range" if table.spread == "ci" else "±1 sample standard deviation"
    return f"Points: mean over seeds ({n}); error bars: {what} (none for points of fewer than {MIN_SEEDS} seeds)."


def degenerate(table: Table, task: str, points: list[dict]) -> str | None:
    """Why a panel of ``task`` would show nothing (None: it shows something): no point, every run of the
    column at chance, or two or more points all at one value with no spread (markers on a line at one height)."""
    if not points:
        return "no finished cell"
    if task in table.chance_columns:
        return "every run at chance"
    if len(points) > 1 and len({round(p["y"], 6) for p in points}) == 1 and all(p["err"] == (0.0, 0.0) for p in points):
        return f"every point at {points[0]['y']:.2f}"
    return None


def skipped_text(skipped: dict[str, str]) -> str:
    return (" Not drawn (nothing to show): " + "; ".join(f"{task_name(t)} ({why})" for t, why in skipped.items()) + ".") if skipped else ""


def _panel_figure(table: Table, x_of, xlabel: str, formatter, log_base, out_dir: Path, name: str) -> tuple[list[Path], bool, dict[str, str]]:
    skipped = {t: why for t in table.tasks if (why := degenerate(table, t, _points(table, t, x_of)))}
    tasks = [t for t in table.tasks if t not in skipped]
    if not tasks:
        return [], False, skipped
    style = styles(table)
    fig, axes = _figure(len(tasks))
    dodged, labels = False, []
    for ax, task in zip(axes, tasks):
        points = _points(table, task, x_of)
        log = set_axis(ax, [p["x"] for p in points], log_base, formatter)
        _draw(ax, points, style, log)
        dodged |= any(abs(p["shown_x"] - p["x"]) > 1e-9 * p["x"] for p in points)
        labels += [p["label"] for p in points]
        ax.set_title(task_name(task), fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel(_ylabel(table, task), fontsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        ax.margins(x=0.12)
    _legend(fig, style, [l for l in style if l in set(labels)])
    return _save(fig, out_dir, name), dodged, skipped


def score_vs_params(table: Table, out_dir: Path) -> tuple[list[Path], str]:
    paths, dodged, skipped = _panel_figure(table, lambda r: r["params_n"] if r["params_n"] is not None else r["params_init"], "adapter parameters",
                                           tick_params, None, out_dir, "score_vs_params")
    text = ("Score against adapter parameters (heads excluded; the adapter as trained), one panel per task. " + _bars(table)
            + (" Points with (nearly) equal parameter counts are offset horizontally so none hides another; exact counts in table.csv." if dodged else "")
            + skipped_text(skipped))
    return paths, text


def score_vs_rank(table: Table, agg: Aggregate, out_dir: Path) -> tuple[list[Path], str]:
    if RANK_KEY not in agg.row_keys:
        return [], ""
    i = agg.row_keys.index(RANK_KEY)
    paths, dodged, skipped = _panel_figure(table, lambda r: r["keys"][i] if isinstance(r["keys"][i], (int, float)) else None, "rank r",
                                           lambda v: f"{v:g}", 2, out_dir, "score_vs_rank")
    text = "Score against the adapter rank r (log2 axis), one line per method. " + _bars(table) + skipped_text(skipped)
    return paths, text + (" Methods at the same r are offset horizontally." if dodged else "")


def pareto_front(points: list[dict]) -> list[dict]:
    """Points no other point beats on both axes (lower x and higher y), by increasing x."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["x"], -p["y"])):
        if p["y"] > best:
            front.append(p)
            best = p["y"]
    return front


def pareto_points(table: Table, agg: Aggregate) -> tuple[list[tuple[str, str]], dict[str, dict[str, list[dict]]]]:
    """(the cost axes drawn, {task: {cost kind: points}}) of the Pareto figure: each point's x is the
    cell's `cell_costs` value, the number the table's cost column shows."""
    costs = cell_costs(agg)
    ours = [r for r in table.rows if not r["reference"]]
    axes_spec = [(kind, label) for kind, label in (("time", "s per 1k steps (wall)"), ("memory", "peak memory (MiB)"))
                 if any(costs.get(tuple(r["keys"]) + (t,), {}).get(kind) for r in ours for t in table.tasks)]
    tasks = [t for t in table.tasks if any(costs.get(tuple(r["keys"]) + (t,), {}).get(axes_spec[0][0]) for r in ours)] if axes_spec else []
    points = {t: {kind: _points(table, t, lambda r, t=t, kind=kind: costs.get(tuple(r["keys"]) + (t,), {}).get(kind)) for kind, _ in axes_spec}
              for t in tasks}
    return axes_spec, points


def pareto(table: Table, agg: Aggregate, out_dir: Path) -> tuple[list[Path], str]:
    """Drawn only when the study declares its timings comparable (``table.cost``, ``--cost``)."""
    if not table.cost:
        return [], ""
    axes_spec, by_task = pareto_points(table, agg)
    skipped = {t: why for t, kinds in by_task.items() if (why := degenerate(table, t, kinds[axes_spec[0][0]]))}
    tasks = [t for t in by_task if t not in skipped]
    if not tasks:
        return [], ""
    style = styles(table)
    fig, axes = _figure(len(axes_spec) * len(tasks), len(axes_spec))
    labels = []
    for row_i, task in enumerate(tasks):
        for col_i, (kind, xlabel) in enumerate(axes_spec):
            ax = axes[len(axes_spec) * row_i + col_i]
            points = by_task[task][kind]
            if not points:
                ax.set_visible(False)
                continue
            log = set_axis(ax, [p["x"] for p in points], None, short_number)
            _draw(ax, points, style, log, connect=False)
            front = pareto_front(points)
            ax.plot([p["shown_x"] for p in front], [p["y"] for p in front], color="grey", ls="--", lw=0.8, zorder=1.5)
            labels += [p["label"] for p in points]
            ax.set_title(f"{task_name(task)}: score vs {'time' if kind == 'time' else 'memory'}", fontsize=8)
            ax.set_xlabel(xlabel, fontsize=7)
            ax.set_ylabel(_ylabel(table, task), fontsize=7)
            ax.grid(alpha=0.3, lw=0.5)
            ax.margins(x=0.12)
    _legend(fig, style, [l for l in style if l in set(labels)])
    memory = {"cuda": "GPU max allocated", "cpu": "process max RSS", "mixed": "GPU max allocated or process max RSS"}[table.cost_kind]
    shown = " and ".join({"time": "whole-trial wall time per 1000 optimizer steps", "memory": f"peak memory ({memory})"}[k] for k, _ in axes_spec)
    text = (f"Cost against quality per task: score against {shown}, one panel each, "
            f"medians over the cell's runs; dashed: the Pareto front (no other method is both cheaper and better). {_bars(table)} "
            "Wall times depend on the machine's load; compare methods of one study only." + skipped_text(skipped))
    return _save(fig, out_dir, "pareto"), text


def rank_heatmaps(table: Table, agg: Aggregate, rank_patterns: dict[int, dict], out_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """One heatmap (PNG + PDF) per cell whose chosen runs report a rank pattern (averaged over seeds)."""
    if not rank_patterns or agg.chosen.empty:
        return [], {}
    paths, captions = [], {}
    for values, group in agg.chosen.groupby(agg.row_keys + ["task"], dropna=False, sort=True):
        summaries = [rank_patterns[t] for t in group["trial"] if t in rank_patterns]
        if not summaries:
            continue
        names = list(dict.fromkeys(n for s in summaries for n in s["rank_pattern"]))
        mean = {n: round(sum(s["rank_pattern"].get(n, 0) for s in summaries) / len(summaries)) for n in names}
        label = row_label(agg.row_keys, values[:-1])
        stem = figure_stem("rank_heatmap", re.sub(r"[^A-Za-z0-9_.+-]", "-", "_".join(fmt_key(v) for v in values if v == v and v is not None)))
        title = f"{label} | {task_name(values[-1])} | n={len(summaries)}"
        for suffix in (".png", ".pdf"):
            paths.append(plot_rank_heatmap(mean, summaries[0].get("model_type"), Path(out_dir) / (stem + suffix), r_init=summaries[0].get("r_init"), title=title))
        captions[stem] = (f"{label} on {task_name(values[-1])}: final rank per adapted matrix (layers x module), the mean over its {len(summaries)} "
                          f"seed(s) rounded; colour scale 0 to r_init = {summaries[0].get('r_init')}.")
        if len(paths) >= 2 * MAX_HEATMAPS:
            break
    return paths, captions


def all_figures(agg: Aggregate, table: Table, rank_patterns: dict[int, dict], out_dir) -> list[Path]:
    """Every figure (PNG + PDF) and ``captions.json`` ({figure stem: caption}); returns the paths."""
    out_dir = Path(out_dir)
    paths, captions = [], {}
    for name, (made, text) in (("score_vs_params", score_vs_params(table, out_dir)), ("score_vs_rank", score_vs_rank(table, agg, out_dir)),
                               ("pareto", pareto(table, agg, out_dir))):
        if made:
            paths += made
            captions[name] = text + (f" {DAGGER} / hollow marker: some runs of the cell stayed at chance level." if _any_chance(table) else "")
    heatmaps, heatmap_captions = rank_heatmaps(table, agg, rank_patterns, out_dir)
    paths += heatmaps
    captions.update(heatmap_captions)
    if paths:
        (out_dir / "captions.json").write_text(json.dumps(captions, indent=1, ensure_ascii=False))
    return paths


def _any_chance(table: Table) -> bool:
    return any(c.n_chance for r in table.rows for c in r["cells"].values())
