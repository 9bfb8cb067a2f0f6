"""Statistics of the paper table (scipy / numpy): intervals over seeds, paired comparisons with a
baseline row, Holm's correction.

- **Per cell:** mean ± sample std (ddof 1) over seeds and a 95 % Student-t confidence interval of the
  mean, ``mean ± t_{0.975, n-1} s / sqrt(n)`` (`scipy.stats.t.interval`); none for n < 2.
- **Against the baseline row** (``--baseline``, default the first row: LoRA when present), cell by
  cell, at the same task and the same other row keys (e.g. the same r):
  1. *paired by seed*: a paired t-test over the seeds both cells ran (`scipy.stats.ttest_rel`,
     two-sided). Not Wilcoxon: with 3 seeds its smallest two-sided p is 0.25, so it can never reject;
  2. *paired bootstrap over evaluation examples* where both cells' runs saved per-example
     predictions (``predictions_<split>.jsonl``): the examples are resampled (B = 2000, the same
     resample for every seed), the difference of the metric averaged over the paired seeds is
     recomputed on each resample, and ``p = (1 + #{|d*_b - d| >= |d|}) / (B + 1)`` (the bootstrap
     distribution shifted to the null; Efron & Tibshirani 1993, ch. 16), two-sided;
  3. the cell's p is the larger of the available p-values (an intersection-union test: a mark needs
     the difference to be consistent across seeds *and* larger than the evaluation set's sampling
     noise).
- **Holm:** the p-values of all comparisons of one table are adjusted together (Holm 1979: the k-th
  smallest of m is multiplied by ``m - k + 1``, then made monotone); a cell is marked better / worse
  when its adjusted p < alpha (0.05).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lora_lab.errors import ConfigError
from lora_lab.results.aggregate import Aggregate, _keys, table_rows
from lora_lab.results.examples import METRICS, load_predictions, weighted_metric
from lora_lab.results.names import LABEL_KEYS, ordered_rows, row_label

ALPHA = 0.05
LEVEL = 0.95
N_BOOT = 2000
BOOT_SEED = 0


def seed_interval(scores, level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of ``scores`` (one value per seed); None for n < 2."""
    x = np.asarray(list(scores), dtype=float)
    if len(x) < 2:
        return None
    sem = stats.sem(x)
    if sem == 0:
        return float(x.mean()), float(x.mean())
    lo, hi = stats.t.interval(level, df=len(x) - 1, loc=x.mean(), scale=sem)
    return float(lo), float(hi)


def paired_t(a, b) -> float | None:
    """Two-sided p of the paired t-test of ``a - b`` (paired by position); None when untestable
    (fewer than 2 pairs, or every difference identical)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a - b) == 0:
        return None
    return float(stats.ttest_rel(a, b).pvalue)


def paired_bootstrap(labels, preds_a: list, preds_b: list, metric: str, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict:
    """Paired bootstrap over examples of ``mean_s [metric(a_s) - metric(b_s)]`` (see module doc):
    ``{"diff", "p", "low", "high", "n_examples"}`` (low/high: 95 % percentile interval of the difference).

    Not ``scipy.stats.bootstrap``: it returns confidence intervals (and the resampled statistics) but
    no p-value, and here one resample of the examples must serve every paired seed at once (the
    multinomial weights below, fed to a weighted metric such as MCC that is not a mean over
    examples). ``scipy.stats.permutation_test`` (``permutation_type="samples"``) gives a p-value, but
    of a sign-flip test of another null, which would change the published numbers."""
    labels = np.asarray(labels, dtype=float)
    n = len(labels)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    ones = np.ones((1, n))

    def diff(w):
        return np.mean([weighted_metric(metric, labels, a, w) - weighted_metric(metric, labels, b, w) for a, b in zip(preds_a, preds_b, strict=True)], axis=0)

    observed, boot = float(diff(ones)[0]), diff(weights)
    p = (1 + int(np.sum(np.abs(boot - observed) >= abs(observed)))) / (n_boot + 1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"diff": observed, "p": float(p), "low": float(low), "high": float(high), "n_examples": n}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: the k-th smallest of m times ``m - k + 1``, capped
    at 1, made monotone (Holm 1979). Our own because scipy has no Holm: ``scipy.stats.false_discovery_control``
    implements only Benjamini-Hochberg and Benjamini-Yekutieli (false discovery rate, not the
    family-wise error rate the table's marks promise)."""
    m = len(pvalues)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    """One cell against the baseline cell of the same task (and the same other row keys)."""

    baseline: tuple
    n_pairs: int
    diff: float  # mean over paired seeds of (cell - baseline)
    p_seed: float | None
    boot: dict | None
    p: float | None = None  # the cell's p: max of the available tests
    p_holm: float | None = None
    verdict: str | None = None  # "better" / "worse" / None


@dataclass
class Comparisons:
    baseline_label: str
    by_cell: dict  # (row keys..., task) -> Comparison
    alpha: float = ALPHA

    @property
    def n_tests(self) -> int:
        return sum(c.p is not None for c in self.by_cell.values())


def resolve_baseline(agg: Aggregate, baseline: str | None) -> list[tuple]:
    """The baseline rows: those whose label or method key equals ``baseline`` (case-insensitive);
    default: the first row's label in table order."""
    rows = ordered_rows(agg.row_keys, table_rows(agg))
    if not rows:
        return []
    labels = {row: row_label(agg.row_keys, row) for row in rows}
    wanted = (baseline or labels[rows[0]]).lower()
    chosen = [row for row in rows if labels[row].lower() == wanted]
    if not chosen:
        by_method = [row for row in rows if str(row[0]).lower() == wanted]
        chosen = [row for row in by_method if labels[row].lower() == labels[by_method[0]].lower()] if by_method else []
    if not chosen:
        raise ConfigError("--baseline", f"no row {baseline!r}; allowed: {', '.join(dict.fromkeys(labels.values()))}")
    return chosen


def _other_keys(agg: Aggregate, row: tuple) -> tuple:
    return tuple(v for k, v in zip(agg.row_keys, row) if k not in LABEL_KEYS)


def cell_runs(agg: Aggregate) -> dict[tuple, dict]:
    """{(row keys..., task): {seed: (score, run_dir)}} of the runs behind each cell."""
    chosen = agg.chosen
    if chosen.empty:
        return {}
    out: dict[tuple, dict] = {}
    keys = _keys(chosen[agg.row_keys + ["task"]])
    for key, seed, score, run_dir in zip(keys, chosen["seed"], chosen["score"], chosen["run_dir"]):
        out.setdefault(key, {})[seed] = (float(score), run_dir)
    return out


def _bootstrap(agg: Aggregate, task: str, seeds: list, runs: dict, base_runs: dict, n_boot: int) -> dict | None:
    info = agg.task_info[task]
    if info.get("metric") not in METRICS or info.get("split") not in ("val", "test"):
        return None
    preds_a, preds_b = [], []
    for seed in seeds:
        a, b = load_predictions(runs[seed][1], info["split"]), load_predictions(base_runs[seed][1], info["split"])
        if a is None or b is None:
            return None
        preds_a.append(a)
        preds_b.append(b)
    ids = sorted(set.intersection(*(set(p) for p in preds_a + preds_b)))
    labels = [preds_a[0][i][0] for i in ids]
    if len(ids) < 2 or any(p[i][0] != y for p in preds_a + preds_b for i, y in zip(ids, labels)):
        return None  # the runs did not evaluate the same labelled examples
    return paired_bootstrap(labels, [[p[i][1] for i in ids] for p in preds_a], [[p[i][1] for i in ids] for p in preds_b], info["metric"], n_boot)


def compare(agg: Aggregate, baseline: str | None = None, alpha: float = ALPHA, n_boot: int = N_BOOT) -> Comparisons:
    """Every non-baseline cell against its baseline cell, Holm-adjusted over the table (module doc)."""
    base_rows = resolve_baseline(agg, baseline)
    label = row_label(agg.row_keys, base_rows[0]) if base_rows else ""
    runs = cell_runs(agg)
    by_group = {_other_keys(agg, row): row for row in base_rows}
    out: dict[tuple, Comparison] = {}
    for row in table_rows(agg):
        if row in base_rows:
            continue
        base = by_group.get(_other_keys(agg, row), base_rows[0] if len(base_rows) == 1 else None)
        if base is None:
            continue
        for task in agg.tasks:
            mine, theirs = runs.get(row + (task,), {}), runs.get(base + (task,), {})
            seeds = sorted(set(mine) & set(theirs), key=str)
            if not seeds:
                continue
            a, b = [mine[s][0] for s in seeds], [theirs[s][0] for s in seeds]
            boot = _bootstrap(agg, task, seeds, mine, theirs, n_boot)
            p_seed = paired_t(a, b)
            available = [p for p in (p_seed, boot["p"] if boot else None) if p is not None]
            out[row + (task,)] = Comparison(base, len(seeds), float(np.mean(a) - np.mean(b)), p_seed, boot, max(available) if available else None)
    tested = [c for c in out.values() if c.p is not None]
    for c, adjusted in zip(tested, holm([c.p for c in tested])):
        c.p_holm = adjusted
        if adjusted < alpha and not math.isclose(c.diff, 0.0, abs_tol=0.0):
            c.verdict = "better" if c.diff > 0 else "worse"
    return Comparisons(label, out, alpha)
