"""``lora-lab report PATH... [--by K,..] [--format md,latex,csv] [--out DIR]``: the paper table of a study.

Collects every result.json under the given run / sweep dirs (`collect`), aggregates them
(`aggregate`), and writes into ``--out`` (default ``results/<study>/``):

- ``table.md`` / ``table.tex`` / ``table.csv`` -- the table (see `tables`, `latex`; statistics against
  the ``--baseline`` row: `stats`), its notes, and the list of failed / cancelled / unfinished /
  corrupt / missing trials and runs stuck at chance level;
- ``trials.csv`` -- one row per trial (every status), flattened config included;
- ``plots/`` -- score vs parameters, score vs rank, cost/quality Pareto (``--cost`` only), learning curves, rank heatmaps (methods whose summary has a rank pattern), each
  as PNG and PDF, and ``captions.json`` (see `figures`);
- ``hpo.json``, ``plots/hpo_<study>.png`` / ``.pdf`` and a Markdown section -- Optuna studies under the paths
  (best trial per method, objective vs trial and vs each searched parameter; see `hpo`);
- ``meta.json`` -- command, inputs, status counts, package versions and git SHA of the report;
- ``index.html`` -- the self-contained study page (see `html`), with an Analysis section when
  ``lora-lab analyze`` output (``analysis.json``) is in ``--out``/analysis or a PATH (`lora_lab.results.analysis_section`).

The Markdown table and notes are printed to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lora_lab.command_line import CommandParser
from lora_lab.errors import ConfigError
from lora_lab.output_target import prepare_output_dir

FORMATS = ("md", "latex", "csv")
REPORT_MARKER = "meta.json"  # every report writes it: a directory holding it is a previous report
MAX_LISTED = 50
FIRST_COLUMNS = ["status", "study", "task", "method", "seed", "lr", "metric", "val", "val_max", "test", "chance", "at_chance",
                 "adapter_params", "adapter_params_final", "trainable_params", "steps", "wall_time_s", "cpu_time_s", "torch_threads", "reason",
                 "run_dir", "written_at", "git_sha", "git_dirty"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = CommandParser(prog="lora-lab report", description="Aggregate result.json files into the paper table (md/LaTeX/CSV), plots, trials.csv and meta.json.")
    p.add_argument("paths", nargs="+", help="run dirs, sweep dirs or result.json files")
    p.add_argument("--by", default=None, help="row keys after the method, comma-separated (e.g. r or init,r); default: every knob that varies")
    p.add_argument("--nuisance", default="optim.lr,lr_scale", help="keys to take the best over, chosen on validation (default: optim.lr,lr_scale; '' for none)")
    p.add_argument("--format", default="md,latex,csv", help=f"table formats to write, comma-separated from {', '.join(FORMATS)}")
    p.add_argument("--out", default=None, help="output directory (default: results/<study>)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out that is not a previous report (never into a run dir)")
    p.add_argument("--reference", action="append", default=[], help="YAML/JSON file of published rows: [{label, params, scores: {task: value}}]")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--baseline", default=None, help="row the others are tested against (display name or method key, e.g. lora; default: the first row)")
    p.add_argument("--cost", action="store_true", help="add cost columns: trainable parameters, time per 1k steps, peak memory, adapter size")
    p.add_argument("--hide", default="", help="optional columns to drop, comma-separated (e.g. lr,params,avg or a row key)")
    p.add_argument("--pm", default="std", help="what ± shows: std (sample std over seeds) or ci (half-width of the 95%% t-interval)")
    return p.parse_args(argv)


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def load_references(paths: list[str]) -> list[dict]:
    import yaml

    from lora_lab.strict_read import AmbiguousInput, load_yaml

    refs = []
    for path in paths:
        try:
            data = load_yaml(Path(path).read_text())
        except AmbiguousInput as err:
            raise ConfigError("--reference", f"{path}: {err}") from None
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError("--reference", f"cannot read {path}: {err}") from None
        data = data if isinstance(data, list) else [data]
        for ref in data:
            if not isinstance(ref, dict) or not isinstance(ref.get("scores"), dict):
                raise ConfigError("--reference", f"{path}: each entry needs a 'scores' mapping task -> published value (x100)")
            refs.append(ref)
    return refs


def problem_lines(trials, agg) -> list[str]:
    """Human-readable list of everything not averaged in, and of runs stuck at chance."""
    lines = []
    counts = trials["status"].value_counts().to_dict()
    known = ("success", *(("pruned",) if counts.get("pruned") else ()), "failed", "cancelled", "running", "corrupt", "missing")
    summary = ", ".join([f"{counts.get(s, 0)} {s}" for s in known] + [f"{n} {s}" for s, n in sorted(counts.items()) if s not in known])
    lines.append(f"Trials: {len(trials)} ({summary}; running = started but never finished, e.g. killed).")
    bad = trials[trials["status"] != "success"]
    for row in bad.head(MAX_LISTED).itertuples():
        lines.append(f"- {row.status}: `{row.run_dir}`" + (f" -- {row.reason}" if isinstance(row.reason, str) and row.reason else ""))
    if len(bad) > MAX_LISTED:
        lines.append(f"- ... and {len(bad) - MAX_LISTED} more (see trials.csv)")
    nonfinite = trials["nonfinite"] if "nonfinite" in trials else None
    no_metric = trials[(trials["status"] == "success") & (trials["val"].isna() | trials["task"].isna())]
    for row in no_metric.head(MAX_LISTED).itertuples():
        why = nonfinite[row.Index] if nonfinite is not None and isinstance(nonfinite[row.Index], str) else None
        what = f"a non-finite validation score ({why})" if why else "a validation value"
        lines.append(f"- success {'with' if why else 'without'} {what} (not in the table): `{row.run_dir}`")
    stuck = trials[(trials["status"] == "success") & trials["at_chance"].fillna(False).astype(bool)]
    if len(stuck):
        lines.append(f"At chance level on validation ({len(stuck)} run(s), best val <= majority/chance + 0.5 points):")
        for row in stuck.head(MAX_LISTED).itertuples():
            lines.append(f"- `{row.run_dir}`: best val {100 * row.val_max:.2f} vs chance {100 * row.chance:.2f}")
    for run_dir, why in agg.incomplete[:MAX_LISTED]:
        lines.append(f"- incomplete (success, not averaged in): `{run_dir}` -- {why}")
    for kept, dropped in agg.duplicates[:MAX_LISTED]:
        lines.append(f"- duplicate (same row, task, setting, seed): `{dropped}` ignored, `{kept}` used")
    return lines


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def default_out(trials) -> Path:
    studies = sorted({s for s in trials["study"].dropna().unique()})
    return Path("results") / ("+".join(studies) if studies else "report")


def write_trials_csv(trials, path: Path) -> None:
    first = [c for c in FIRST_COLUMNS if c in trials.columns]
    rest = sorted(c for c in trials.columns if c not in first)
    trials[first + rest].to_csv(path, index=False)


def report(paths, by=None, nuisance=("optim.lr", "lr_scale"), formats=FORMATS, out=None, references=(), plots=True, command=None,
           baseline=None, cost=False, hide=(), spread="std", page=True, overwrite=False) -> dict:
    """Write the report; returns {"out": dir, "markdown": text, "aggregate": Aggregate, "trials": DataFrame}.

    ``out`` follows `lora_lab.output_target`: never inside a run or sweep dir, and a non-empty
    directory only when it is a previous report (it holds ``meta.json``) or ``overwrite``."""
    from lora_lab.results.aggregate import aggregate
    from lora_lab.results.collect import collect
    from lora_lab.results.hpo import hpo_section
    from lora_lab.results.record import atomic_write_text, git_state, package_versions
    from lora_lab.results.latex import to_latex
    from lora_lab.results.tables import build_table, to_csv, to_markdown

    code_state = git_state()  # before writing: the outputs may live in this repository (results/)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError("--format", f"unknown format {bad[0]!r}; allowed: {', '.join(FORMATS)}")
    try:
        collection = collect(paths)
    except FileNotFoundError as err:
        raise ConfigError("PATH", f"{err} does not exist") from None
    trials = collection.trials
    if trials.empty:
        raise ConfigError("PATH", f"no result.json under {', '.join(map(str, paths))}")
    agg = aggregate(trials, by=by, nuisance=tuple(n if n.startswith("cfg.") else f"cfg.{n}" for n in nuisance))
    table = build_table(agg, [*collection.references, *references], baseline=baseline, cost=cost, hide=hide, spread=spread)
    out = out if out else default_out(trials)
    # `lora-lab analyze ... --out OUT/analysis` before the first report: OUT holds only that (lora_lab.results.analysis_section)
    only_analysis = Path(out).is_dir() and [p.name for p in Path(out).iterdir()] == ["analysis"]
    out = prepare_output_dir(out, overwrite, "--out", own_marker="analysis/analysis.json" if only_analysis else REPORT_MARKER)
    studies = sorted(trials["study"].dropna().unique().tolist())
    title = f"# {' + '.join(studies) or 'report'}"
    cmd = command or "lora-lab report " + " ".join(map(str, paths))
    body = [title, "", f"`{cmd}`", "", to_markdown(table), ""] + [f"- {n}" for n in table.notes] + [""] + problem_lines(trials, agg)
    body += hpo_section(paths, out, plots)  # Optuna studies under the paths (`hpo`), if any
    markdown = "\n".join(body) + "\n"
    if "md" in formats:
        atomic_write_text(out / "table.md", markdown)
    if "latex" in formats:
        atomic_write_text(out / "table.tex", to_latex(table, "+".join(studies)) + "\n")
    if "csv" in formats:
        atomic_write_text(out / "table.csv", to_csv(table))
    write_trials_csv(trials, out / "trials.csv")
    plot_paths = []
    if plots:
        from lora_lab.results.figures import all_figures
        from lora_lab.results.learning_curves import add_learning_curves

        plot_paths = all_figures(agg, table, collection.rank_patterns, out / "plots")
        plot_paths += add_learning_curves(agg, table, out / "plots")
    meta = {
        "command": cmd,
        "inputs": [str(p) for p in paths],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "studies": studies,
        "status_counts": {k: int(v) for k, v in trials["status"].value_counts().items()},
        "row_keys": agg.row_keys,
        "nuisance_keys": agg.setting_keys,
        "tasks": agg.task_info,
        "run_git_shas": sorted(trials["git_sha"].dropna().unique().tolist()) if "git_sha" in trials else [],
        "plots": [str(p.relative_to(out)) for p in plot_paths],
        "baseline": table.comparisons.baseline_label if table.comparisons else None,
        "versions": {**package_versions(), "pandas": _version("pandas"), "matplotlib": _version("matplotlib"), "scipy": _version("scipy")},
        "git": code_state,
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1))
    if page:
        from lora_lab.results.html import write_page

        from lora_lab.results.analysis_section import analysis_section

        write_page(out, table, markdown, trials, meta, plot_paths, analysis_section(paths, out))
    return {"out": out, "markdown": markdown, "aggregate": agg, "trials": trials, "table": table}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = report(
        args.paths, by=_split(args.by) or None, nuisance=_split(args.nuisance), formats=_split(args.format), out=args.out,
        references=load_references(args.reference), plots=not args.no_plots, baseline=args.baseline, cost=args.cost, hide=_split(args.hide),
        spread=args.pm, overwrite=args.overwrite,
        command="lora-lab report " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    print(result["markdown"], end="")
    print(f"written to {result['out']}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
