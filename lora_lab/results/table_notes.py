"""The notes under the paper table (table.md, index.html): each column's split and metric, its chance
level (the score a run has to leave: the majority class, a constant predictor, the untrained model),
what ``±`` and every mark mean, the tie, chance and Avg rules, the significance test, the backbone and its
pooling, the cost columns' definition, and the code versions behind the cells. The LaTeX caption is
the short form (`lora_lab.results.latex.caption`)."""

from __future__ import annotations

from lora_lab.results.aggregate import Aggregate, display_name
from lora_lab.results.collect import CHANCE_TOL
from lora_lab.results.names import SPLIT_NAMES, metric_name, task_name
from lora_lab.results.stats import ALPHA
from lora_lab.results.table_model import ALLOCATED, AT_CHANCE, DAGGER, DOWN, MIN_SEEDS, STAR, UP, Table
from lora_lab.tasks.registry import metric_info

#: what each kind of chance level is (`MetricInfo.chance`; None: the untrained model's value)
CHANCE_WHAT = {"zero": "a constant prediction", "majority": "the majority class", None: "the untrained model"}


def backbones(agg: Aggregate) -> list[str]:
    """``<short_name> with <pooling> pooling`` of every backbone behind the table's cells; pooling ``cls_pooler`` for runs
    recorded before ``backbone.pooling`` existed (HF's class was the only head then)."""
    runs = agg.chosen
    if runs.empty or "cfg.backbone.short_name" not in runs:
        return []
    pooling = runs["cfg.backbone.pooling"] if "cfg.backbone.pooling" in runs else None
    pairs = zip(runs["cfg.backbone.short_name"], pooling if pooling is not None else ["cls_pooler"] * len(runs))
    return sorted({f"{name} with {p if isinstance(p, str) else 'cls_pooler'} pooling" for name, p in pairs if isinstance(name, str)})


def cost_kind(agg: Aggregate) -> str:
    kinds = set(agg.chosen["peak_memory_kind"].dropna()) if "peak_memory_kind" in agg.chosen else set()
    return "cuda" if kinds == {"cuda"} else "cpu" if kinds <= {"cpu"} else "mixed"


def split_tasks(agg: Aggregate) -> dict[str, list[str]]:
    """{task: [its columns]} for tasks whose runs report different primary metrics."""
    by_task: dict[str, list[str]] = {}
    for t in agg.tasks:
        by_task.setdefault(agg.task_info[t].get("task", t), []).append(t)
    return {task: cols for task, cols in by_task.items() if len(cols) > 1}


def spread_text(table: Table) -> str:
    """What ``±`` (or the bracket) means in this table."""
    n = f"n={table.usual_n} seeds unless marked"
    few = f"; no spread for cells with fewer than {MIN_SEEDS} seeds, which show their n instead"
    if table.spread == "ci":
        return f"mean [95 % Student-t confidence interval of the cell's mean over seeds, clipped to the metric's range] ({n}){few}"
    return f"mean ± sample standard deviation over seeds ({n}){few}"


def significance_note(table: Table) -> str | None:
    comp = table.comparisons
    if comp is None or not comp.by_cell:
        return None
    if comp.n_tests == 0:
        return (f"No cell could be tested against {comp.baseline_label} (the baseline row): a test needs at least 2 seeds run by both cells "
                "and differences that are not identical on every seed.")
    return (f"{UP} / {DOWN}: significantly better / worse than {comp.baseline_label} (the baseline row) at alpha = {ALPHA}, Holm-corrected over the "
            f"{comp.n_tests} comparison(s) of this table; each cell's p is the larger of a paired t-test over seeds (paired by seed) and, where "
            "both cells saved per-example predictions, a paired bootstrap over the evaluation examples (2000 resamples). Unmarked cells are "
            "not distinguishable from the baseline at this level (p-values in table.csv).")


def chance_note(agg: Aggregate) -> str | None:
    """Each column's chance level on validation (x100) as its finished runs recorded it, and what it is;
    a range where runs of one column recorded different levels (e.g. different evaluation subsets)."""
    if "chance" not in agg.chosen:
        return None
    parts = []
    for t in agg.tasks:
        levels = sorted({round(100 * float(v), 2) for v in agg.chosen.loc[agg.chosen["task"] == t, "chance"].dropna()})
        if not levels:
            continue
        level = f"{levels[0]:.2f}" if len(levels) == 1 else f"{levels[0]:.2f} to {levels[-1]:.2f} (differs between runs)"
        parts.append(f"{task_name(t)} {level} ({CHANCE_WHAT[metric_info(agg.task_info[t]['metric']).chance]})")
    if not parts:
        return None
    return (f"Chance level on validation, x100 (a run whose best validation score stays within {100 * CHANCE_TOL:g} points of it never left it): "
            + "; ".join(parts) + ".")


def notes(agg: Aggregate, table: Table) -> list[str]:
    out = []
    info = agg.task_info
    parts = [f"{task_name(t)} = {SPLIT_NAMES.get(info[t]['split'], info[t]['split'])} {metric_name(info[t]['metric'])}" if info[t]["split"]
             else f"{task_name(t)} = {metric_name(info[t]['metric'])} (no finished run)" for t in agg.tasks]
    out.append("Scores x100: " + "; ".join(parts) + ". Model selection (best evaluation, nuisance setting) on validation only.")
    chance = chance_note(agg)
    if chance:
        out.append(chance)
    on_val = [task_name(t) for t in agg.tasks if info[t]["split"] == "val"]
    if on_val:
        out.append(f"{', '.join(on_val)}: no labelled test split, so the score is the validation (GLUE: dev) value at the evaluation "
                   "and setting chosen on that same split -- the LoRA-family papers' convention, optimistic as an estimate of held-out accuracy.")
    for task, cols in split_tasks(agg).items():
        out.append(f"{task_name(task)}: the runs report different primary metrics ({', '.join(metric_name(info[c]['metric']) for c in cols)}), "
                   "one column each, never averaged together; Avg left blank.")
    out.append(f"Cells: {spread_text(table)}; #Params = adapter parameters (heads excluded).")
    if table.spread == "std" and table.usual_n >= MIN_SEEDS:
        out.append("table.csv: ci_low / ci_high = the 95 % Student-t interval of the cell's mean over seeds (not of a difference), clipped to the "
                   f"metric's range; empty below {MIN_SEEDS} seeds. diff / p_* compare the cell with the baseline row.")
    if table.backbones:
        out.append(f"Backbone: {'; '.join(table.backbones)} (pooling = the vector the classifier reads; docs/data-and-models.md).")
    out.append("Bold: best mean of the column, underlined: second best, compared as shown (2 decimals): equal values share the mark; no mark "
               "when every ranked cell ties, in a column with fewer than two values, for cells whose runs all stayed at chance, or for published rows.")
    if table.chance_columns:
        out.append(f"{AT_CHANCE}: every run of the column stayed at chance level ({', '.join(task_name(t) for t in table.chance_columns)}): "
                   "nothing was learned, so nothing is ranked.")
    if table.avg_rule:
        out.append(table.avg_rule)
    sig = significance_note(table)
    if sig:
        out.append(sig)
    if agg.setting_keys:
        tried = int(agg.cells["n_settings"].max()) if not agg.cells.empty else 0
        if tried > 1:
            out.append(f"Best over {', '.join(display_name(k) for k in agg.setting_keys)} per cell (up to {tried} settings), chosen by validation mean; lr = the chosen learning rate, every setting in table.csv.")
    if not agg.cells.empty and agg.cells["n_chance"].sum():
        out.append(f"{DAGGER} some runs of the cell never left the majority-class / chance / untrained-model level on validation (listed below).")
    if not agg.cells.empty and agg.cells["n_unfinished"].sum():
        out.append(f"{STAR} the cell has failed, cancelled, unfinished or missing trials, or runs without its score, never averaged in (listed below).")
    ours = [r for r in table.rows if not r["reference"]]
    if any(r["params_n"] is not None and r["params_init"] is not None and r["params_n"] != r["params_init"] for r in ours):
        out.append("#Params = the adapter as trained: for a method that prunes in training, the parameters it keeps "
                   "(the allocation: params_init in table.csv, adapter_params in trials.csv).")
    if any(r["params_n"] is None and r["params_init"] is not None for r in ours):  # shown as the allocation
        out.append(f"{ALLOCATED}: the runs' result files do not give the trained adapter's parameter count (written before methods "
                   "reported it) and the method's count changes in training; the allocated count is shown.")
    if any(c.kind == "cost" for c in table.columns):
        memory = {"cuda": "GPU max allocated", "cpu": "process max RSS (CPU runs)", "mixed": "GPU max allocated or CPU max RSS (mixed runs)"}[table.cost_kind]
        out.append(f"Cost columns, per task: median over the cell's runs at its selected setting (the numbers of the Pareto figure); "
                   f"#Trainable = adapter + head parameters; s / 1k steps = whole-trial wall time per 1000 "
                   f"optimizer steps (evaluation included); Peak MiB = {memory}; Adapter KiB = size of the saved adapter directory. "
                   "Shown because the study declares its timings comparable (--cost).")
    out += code_version_notes(agg)
    out += machine_notes(agg)
    return out


def machine_notes(agg: Aggregate) -> list[str]:
    """A note when the averaged runs ran on more than one kind of machine (CPU model, cores, training
    devices), and how many were resumed on another kind than the one they started with: such a run
    continues the same optimisation from the same saved state, but the two machines' kernels may round
    differently, so it is not bit for bit what one machine would have computed."""
    runs = agg.chosen
    if runs.empty or "machines" not in runs:
        return []
    per_run = [str(m).split(" + ") for m in runs["machines"].dropna()]
    kinds = sorted({kind for run in per_run for kind in run})
    if len(kinds) <= 1:
        return []
    spanning = sum(len(run) > 1 for run in per_run)
    text = f"Machines: the averaged runs ran on {len(kinds)} kinds of machine ({'; '.join(kinds)})"
    if spanning:
        text += f"; {spanning} run(s) resumed on another kind than the one they started with (a continuation, not bit for bit one machine's run)"
    return [text + ". See trials.csv (machines)."]


def code_version_notes(agg: Aggregate) -> list[str]:
    """A note when the averaged runs come from more than one git commit (a run resumed under another
    commit counts both), or from a dirty tree (any of a run's processes)."""
    runs = agg.chosen
    if runs.empty or "git_sha" not in runs:
        return []
    commits = runs["git_commits"] if "git_commits" in runs else runs["git_sha"]  # git_commits: every commit of the run's processes
    per_run = [str(c).split("+") for c in commits.dropna()]
    shas = sorted({sha for run in per_run for sha in run})
    spanning = sum(len(run) > 1 for run in per_run)
    dirty = int(runs["git_dirty"].fillna(False).astype(bool).sum()) if "git_dirty" in runs else 0
    if len(shas) <= 1 and not dirty:
        return []
    text = f"Code versions: the averaged runs come from {len(shas)} git SHA(s) ({', '.join(s[:10] for s in shas)})"
    by_cell = runs.assign(_commits=commits).groupby(agg.row_keys + ["task"], dropna=False)
    mixed = [key for key, group in by_cell if group["_commits"].nunique() > 1 or group["_commits"].str.contains("+", regex=False).any()]
    if len(shas) > 1:
        text += f"; {len(mixed)} cell(s) average runs of different SHAs" if mixed else "; no cell mixes SHAs"
    if spanning:
        text += f"; {spanning} run(s) resumed under another commit than the one they started with"
    if dirty:
        text += f"; {dirty} run(s) from a dirty tree (uncommitted changes)"
    return [text + ". See trials.csv (git_sha, git_commits, git_dirty)."]
