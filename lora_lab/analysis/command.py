"""``lora-lab analyze RUN... --out DIR [--measure M ...] [--max-dim K] [--rank R]``: the paper analyses of
finished runs, as CSV tables and PNG + PDF figures in ``DIR``, indexed by ``DIR/analysis.json`` (which
`lora-lab report` finds and shows as a section of the study page, `lora_lab.results.analysis_section`).

Measures (definitions in their modules and docs/analysis.md): ``subspace`` (LoRA 7.2), ``dw_vs_w``
(LoRA 7.3), ``spectrum`` (singular values and effective ranks), ``decomposition`` (DoRA section 3, needs
snapshots), ``adalora`` (budget and ranks over steps), ``curves`` (learning curves). Without
``--measure`` every measure runs on the runs it applies to; a measure named explicitly that cannot run
(no snapshots for ``decomposition``, no AdaLoRA run for ``adalora``, fewer than two runs for
``subspace``) is one error line, as are an unknown measure and runs whose adapted matrices differ.
Every function here is importable: `analyze` is the command without the argument parsing.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
from pathlib import Path

import torch

from lora_lab.adapters import METHODS
from lora_lab.adapters.registry import find_init
from lora_lab.analysis import decomposition, dw_vs_w, learning_curves, spectrum, subspace
from lora_lab.analysis.adalora_budget import allocation_rows, read_history, scheduled_budget
from lora_lab.analysis.figures import pyplot, save
from lora_lab.analysis.updates import Run, base_weights, find_runs, layer_and_kind, load_run, same_matrices, snapshot_dir, snapshot_steps, updated_weights
from lora_lab.command_line import CommandParser
from lora_lab.errors import ConfigError
from lora_lab.results.analysis_section import INDEX_NAME


class Weights:
    """``W0`` and the final ``W'`` of each run, computed once."""

    def __init__(self):
        self._base, self._final = {}, {}

    def base(self, run: Run) -> dict[str, torch.Tensor]:
        if run.run_dir not in self._base:
            self._base[run.run_dir] = base_weights(run)
        return self._base[run.run_dir]

    def final(self, run: Run) -> dict[str, torch.Tensor]:
        if run.run_dir not in self._final:
            self._final[run.run_dir] = updated_weights(run.run_dir / "adapter", self.base(run))
        return self._final[run.run_dir]

    def delta(self, run: Run) -> dict[str, torch.Tensor]:
        base = self.base(run)
        return {m: w.double() - base[m].double() for m, w in self.final(run).items()}


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _need(explicit: bool, ok: bool, message: str) -> bool:
    if not ok and explicit:
        raise ConfigError("--measure", message)
    return ok


def _method(run: Run):
    """The run's registered method class (None for a method this installation lacks)."""
    return METHODS.get(run.method)


def _matrix_runs(runs: list[Run]) -> list[Run]:
    """The runs whose method moves weight matrices (`AdapterMethod.changes_weight_matrices`; not BitFit)."""
    return [r for r in runs if getattr(_method(r), "changes_weight_matrices", True)]


def _a_is_the_basis(run: Run) -> bool:
    """ΔW = s·B·A exactly (`AdapterMethod.update_is_scaled_ba`, an init that leaves the base weight alone):
    the saved ``lora_A`` is the paper's A."""
    cfg, method = run.adapter_meta["adapter"], _method(run)
    if method is None or not method.update_is_scaled_ba:
        return False
    spec = find_init(str(cfg.get("init")), method.config_cls.family())
    return spec is not None and not spec.mutates_base


# ---------------------------------------------------------------------------------------- measures


def _basis(run: Run, weights: Weights, module: str, max_dim: int) -> tuple[torch.Tensor, str]:
    if _a_is_the_basis(run):
        from safetensors import safe_open

        with safe_open(str(run.run_dir / "adapter" / "adapter_model.safetensors"), "pt") as f:
            return subspace.right_singular_basis(f.get_tensor(f"{module}.lora_A"), max_dim), "A"
    return subspace.right_singular_basis(weights.delta(run)[module], max_dim), "dW"


def runs_for_subspace(runs, explicit):
    runs = _matrix_runs(runs)
    if not _need(explicit, len(runs) >= 2, f"subspace compares two or more runs that change weight matrices; got {len(runs)}"):
        return None
    same_matrices(runs)
    return runs


def measure_subspace(runs, out, weights, max_dim, rank):
    rows, grid_rows, figures = [], [], []
    plt = pyplot()
    for a, b in itertools.combinations(runs, 2):
        by_kind: dict[str, list[torch.Tensor]] = {}
        for module in a.modules:
            ua, basis_a = _basis(a, weights, module, max_dim)
            ub, basis_b = _basis(b, weights, module, max_dim)
            grid = subspace.phi_grid(ua, ub)
            layer, kind = layer_and_kind(module)
            rows.append({"run_a": a.label, "run_b": b.label, "module": module, "layer": layer, "kind": kind, "basis_a": basis_a, "basis_b": basis_b,
                         **subspace.summary(grid, ua.shape[0])})
            by_kind.setdefault(kind, []).append(grid)
        fig, axes = plt.subplots(1, len(by_kind), figsize=(3.6 * len(by_kind), 3.2), squeeze=False)
        for ax, (kind, grids) in zip(axes[0], by_kind.items()):
            rows_n, cols_n = min(g.shape[0] for g in grids), min(g.shape[1] for g in grids)
            mean = torch.stack([g[:rows_n, :cols_n] for g in grids]).mean(0)  # the (i, j) every layer has (numerical ranks differ)
            for (i, j), value in zip(itertools.product(range(mean.shape[0]), range(mean.shape[1])), mean.flatten().tolist()):
                grid_rows.append({"run_a": a.label, "run_b": b.label, "kind": kind, "i": i + 1, "j": j + 1, "phi_mean_over_layers": value})
            image = ax.imshow(mean.numpy(), vmin=0, vmax=1, cmap="viridis", origin="upper", aspect="auto",
                              extent=(0.5, mean.shape[1] + 0.5, mean.shape[0] + 0.5, 0.5))
            ax.set(title=f"{kind} (mean over layers)", xlabel=f"j ({b.label})", ylabel=f"i ({a.label})")
            fig.colorbar(image, ax=ax, fraction=0.046)
        figures += save(fig, out / "figures" / f"subspace_{len(figures) // 2:02d}")
    tables = [write_csv(out / "subspace_summary.csv", rows), write_csv(out / "subspace_grid.csv", grid_rows)]
    return {"tables": tables, "figures": figures, "rows": rows,
            "caption": "Normalised subspace similarity phi(i, j) = ||U_i^T V_j||_F^2 / min(i, j) of the top right-singular directions "
                       "(LoRA section 7.2); random subspaces give max(i, j)/d."}


def runs_changing_matrices(runs, explicit, measure):
    runs = _matrix_runs(runs)
    return runs if _need(explicit, bool(runs), f"{measure} needs a run that changes weight matrices (not BitFit)") else None


def measure_dw_vs_w(runs, out, weights, max_dim, rank):
    rows = []
    for run in runs:
        cfg = run.adapter_meta["adapter"]
        r = int(cfg.get("target_r") or cfg.get("r") or rank)
        base, delta = weights.base(run), weights.delta(run)
        for module in run.modules:
            layer, kind = layer_and_kind(module)
            rows.append({"run": run.label, "method": run.method, "module": module, "layer": layer, "kind": kind,
                         **dw_vs_w.projection_norms(base[module], delta[module], r)})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for (label, kind), group in itertools.groupby(sorted(rows, key=lambda x: (x["run"], x["kind"], x["layer"] or 0)), key=lambda x: (x["run"], x["kind"])):
        group = list(group)
        ax.plot([g["layer"] for g in group], [g["amplification"] for g in group], marker="o", label=f"{label} {kind}")
    ax.set(xlabel="layer", ylabel="||dW||_F / ||U^T W V||_F", yscale="log", title="amplification factor (LoRA Table 7)")
    ax.legend(fontsize=6)
    return {"tables": [write_csv(out / "dw_vs_w.csv", rows)], "figures": save(fig, out / "figures" / "dw_vs_w_amplification"), "rows": rows,
            "caption": "Projection of W on the top-r directions of dW, of W itself and of random directions, and the amplification factor (LoRA section 7.3)."}


def measure_spectrum(runs, out, weights, max_dim, rank):
    rows, sigma_rows = [], []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for run in runs:
        normalised = []
        for module, dw in weights.delta(run).items():
            s = spectrum.singular_values(dw)
            layer, kind = layer_and_kind(module)
            rows.append({"run": run.label, "method": run.method, "module": module, "layer": layer, "kind": kind, "sigma_1": float(s[0]),
                         "entropy_effective_rank": spectrum.entropy_effective_rank(s), "stable_rank": spectrum.stable_rank(s)})
            sigma_rows += [{"run": run.label, "module": module, "k": k + 1, "sigma": float(v)} for k, v in enumerate(s[:max_dim].tolist())]
            if float(s[0]) > 0:
                normalised.append((s[:max_dim] / s[0]))
        if normalised:
            k = min(n.numel() for n in normalised)  # matrices of different shapes have different numbers of singular values
            ax.plot(range(1, k + 1), torch.stack([n[:k] for n in normalised]).mean(0).numpy(), label=run.label)
    ax.set(xlabel="k", ylabel="sigma_k / sigma_1 (mean over matrices)", yscale="log", title="spectrum of dW")
    ax.legend(fontsize=6)
    return {"tables": [write_csv(out / "effective_rank.csv", rows), write_csv(out / "spectrum.csv", sigma_rows)],
            "figures": save(fig, out / "figures" / "spectrum"), "rows": rows,
            "caption": "Singular values of each dW; entropy effective rank exp(H(s / sum s)) (Roy and Vetterli 2007) and stable rank ||dW||_F^2 / ||dW||_2^2."}


def runs_with_snapshots(runs, explicit):
    runs = _matrix_runs(runs)
    for run in runs:
        _need(explicit, bool(snapshot_steps(run)), f"decomposition needs adapter snapshots; {run.run_dir} has none "
              "(train it with analysis.snapshot_steps=[...] or analysis.snapshot_every=N)")
    runs = [r for r in runs if snapshot_steps(r)]
    return runs if _need(explicit, bool(runs), "decomposition needs a run with snapshots") else None


def measure_decomposition(runs, out, weights, max_dim, rank):
    rows, corr_rows = [], []
    plt = pyplot()
    cols = min(4, len(runs))
    rows_n = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.4 * cols, 3.0 * rows_n), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        base = weights.base(run)
        points = []
        for step in [s for s in snapshot_steps(run) if s > 0]:
            for module, w1 in updated_weights(snapshot_dir(run, step), base).items():
                d_m, d_d = decomposition.magnitude_direction(base[module], w1)
                layer, kind = layer_and_kind(module)
                rows.append({"run": run.label, "method": run.method, "step": step, "module": module, "layer": layer, "kind": kind, "dM": d_m, "dD": d_d})
                points.append((step, kind, d_d, d_m))
        for kind in sorted({p[1] for p in points}) + ["all"]:
            chosen = [p for p in points if kind in ("all", p[1])]
            r = decomposition.correlation([p[2] for p in chosen], [p[3] for p in chosen])
            corr_rows.append({"run": run.label, "method": run.method, "kind": kind, "n_points": len(chosen), "pearson_r": r, "sign": decomposition.sign_of(r)})
        scatter = ax.scatter([p[2] for p in points], [p[3] for p in points], c=[p[0] for p in points], cmap="plasma", s=14)
        ax.set(xlabel="dD", ylabel="dM", title=run.label)
        fig.colorbar(scatter, ax=ax, fraction=0.046, label="step")
    return {"tables": [write_csv(out / "decomposition.csv", rows), write_csv(out / "decomposition_correlation.csv", corr_rows)],
            "figures": save(fig, out / "figures" / "decomposition"), "rows": corr_rows,
            "caption": "Magnitude change dM vs direction change dD of W' against W0 per matrix and snapshot (DoRA section 3, Figure 2); "
                       "the sign of their correlation is the paper's finding (FT and DoRA negative, LoRA positive)."}


def runs_with_allocations(runs, explicit):
    runs = [r for r in runs if read_history(r.run_dir) is not None]
    return runs if _need(explicit, bool(runs), "adalora needs a finished AdaLoRA run (adalora_budget_history.json); none among the runs") else None


def measure_adalora(runs, out, weights, max_dim, rank):
    rows, schedule_rows = [], []
    plt = pyplot()
    fig, axes = plt.subplots(len(runs), 2, figsize=(9, 3.2 * len(runs)), squeeze=False)
    for (ax_budget, ax_ranks), run in zip(axes, runs):
        history = read_history(run.run_dir)
        schedule = scheduled_budget(history)
        schedule_rows += [{"run": run.label, "step": t, "scheduled_budget": b} for t, b in schedule]
        allocs = allocation_rows(history)
        rows += [{"run": run.label, **a} for a in allocs]
        if schedule:
            ax_budget.plot([t for t, _ in schedule], [b for _, b in schedule], label="scheduled b(t)")
        steps = [a["step"] for a in history.get("allocations", [])]
        ax_budget.plot(steps, [a["kept"] for a in history.get("allocations", [])], "o", ms=3, label="kept")
        ax_budget.set(xlabel="step", ylabel="total rank", title=f"{run.label}: budget")
        ax_budget.legend(fontsize=6)
        modules = history.get("modules") or []
        ranks = [a.get("ranks") for a in history.get("allocations", [])]
        if modules and ranks and all(r is not None for r in ranks):
            image = ax_ranks.imshow(torch.tensor(ranks, dtype=torch.float32).T.numpy(), aspect="auto", cmap="viridis")
            ax_ranks.set(xlabel="allocation", ylabel="matrix", title="kept rank per matrix")
            ax_ranks.set_yticks(range(len(modules)), [".".join(m.split(".")[-4:]) for m in modules], fontsize=5)
            fig.colorbar(image, ax=ax_ranks, fraction=0.046)
    return {"tables": [write_csv(out / "adalora_ranks.csv", rows), write_csv(out / "adalora_schedule.csv", schedule_rows)],
            "figures": save(fig, out / "figures" / "adalora_budget"), "rows": [],
            "caption": "AdaLoRA's scheduled budget b(t), the kept total rank at each allocation and each matrix's kept rank (AdaLoRA section 3.3, Appendix A)."}


def measure_curves(runs, out, weights, max_dim, rank):
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    rows = []
    plt = pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.4))
    metric = runs[0].record.get("primary_metric") or "metric"
    for group, members in groups.items():
        for series, ax, points in (("train/loss", ax_loss, [learning_curves.loss_points(r.run_dir) for r in members]),
                                   (metric, ax_metric, [learning_curves.metric_points(r.record) for r in members])):
            stats = learning_curves.mean_and_spread([p for p in points if p])
            rows += [{"group": group, "series": series, **s} for s in stats]
            if stats:
                x = [s["step"] for s in stats]
                mean = [s["mean"] for s in stats]
                std = [0.0 if math.isnan(s["std"]) else s["std"] for s in stats]
                ax.plot(x, mean, label=f"{group} (n={stats[0]['n']})")
                ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    ax_loss.set(xlabel="optimizer step", ylabel="training loss")
    ax_metric.set(xlabel="optimizer step", ylabel=f"validation {metric}")
    ax_metric.legend(fontsize=6)
    return {"tables": [write_csv(out / "learning_curves.csv", rows)], "figures": save(fig, out / "figures" / "learning_curves"), "rows": [],
            "caption": "Training loss and validation metric vs optimizer step, mean ± sample std over seeds."}


#: measure -> (which runs it applies to: fn(runs, explicit) -> runs or None, raising when an explicitly
#: asked measure cannot run; the measure: fn(runs, out, weights, max_dim, rank) -> result)
FUNCTIONS = {
    "subspace": (runs_for_subspace, measure_subspace),
    "dw_vs_w": (lambda runs, explicit: runs_changing_matrices(runs, explicit, "dw_vs_w"), measure_dw_vs_w),
    "spectrum": (lambda runs, explicit: runs_changing_matrices(runs, explicit, "spectrum"), measure_spectrum),
    "decomposition": (runs_with_snapshots, measure_decomposition),
    "adalora": (runs_with_allocations, measure_adalora),
    "curves": (lambda runs, explicit: runs, measure_curves),
}
MEASURES = tuple(FUNCTIONS)


def check_measures(measures) -> list[str]:
    for m in measures:
        if m not in MEASURES:
            raise ConfigError("--measure", f"unknown measure {m!r}; allowed: {', '.join(MEASURES)}")
    return list(dict.fromkeys(measures))


def analyze(paths, out, measures=None, max_dim: int = 64, rank: int = 8, command: str | None = None, overwrite: bool = False) -> dict:
    """Run ``measures`` (default: all that apply) over the runs at or under ``paths``; write CSVs,
    figures and ``analysis.json`` into ``out``; returns the index."""
    for option, value in (("--max-dim", max_dim), ("--rank", rank)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(option, f"must be a positive integer, got {value!r}")
    explicit = measures is not None and len(measures) > 0
    chosen = check_measures(measures) if explicit else list(MEASURES)
    runs = [load_run(d) for d in find_runs(paths)]
    if not runs:
        raise ConfigError("RUN", f"no result.json under {', '.join(map(str, paths))}")
    applicable = {name: FUNCTIONS[name][0](runs, explicit) for name in chosen}  # every input error before anything is written
    from lora_lab.output_target import prepare_output_dir

    # never inside a run or sweep dir, never a non-empty dir but its own previous output (lora_lab.output_target)
    out = prepare_output_dir(out, overwrite, "--out", own_marker=INDEX_NAME, inputs=tuple(paths))
    weights = Weights()
    index = {"command": command or "analyze(" + ", ".join(map(str, paths)) + ")", "runs": [{"label": r.label, "run_dir": str(r.run_dir)} for r in runs],
             "measures": {}}
    for name in chosen:
        result = None if applicable[name] is None else FUNCTIONS[name][1](applicable[name], out, weights, max_dim, rank)
        if result is None:
            index["measures"][name] = {"skipped": True}
            continue
        index["measures"][name] = {"caption": result["caption"], "tables": [str(p.relative_to(out)) for p in result["tables"]],
                                   "figures": [str(p.relative_to(out)) for p in result["figures"]], "summary": _finite(result["rows"][:200])}
    (out / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return index


def _finite(rows: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows]


def main(argv: list[str]) -> int:
    ap = CommandParser(prog="lora-lab analyze", description="paper analyses (LoRA 7.2-7.3, DoRA 3, AdaLoRA) of finished runs")
    ap.add_argument("runs", nargs="+", metavar="RUN", help="run directories or sweep directories")
    ap.add_argument("--out", required=True, help="output directory (CSV, figures/, analysis.json)")
    ap.add_argument("--measure", action="append", default=[], help=f"one of {', '.join(MEASURES)} (repeatable; default: all that apply)")
    ap.add_argument("--max-dim", type=int, default=64, help="singular directions kept per matrix (subspace grid, spectrum); default 64")
    ap.add_argument("--rank", type=int, default=8, help="r of dw_vs_w for methods without a rank (full fine-tuning); default 8")
    ap.add_argument("--overwrite", action="store_true", help="write into OUT although it is not empty (never into a run dir)")
    args = ap.parse_args(argv)
    index = analyze(args.runs, args.out, args.measure or None, args.max_dim, args.rank, "lora-lab analyze " + " ".join(argv), args.overwrite)
    for name, entry in index["measures"].items():
        print(f"{name}: " + ("skipped (does not apply to these runs)" if entry.get("skipped") else ", ".join(entry["tables"] + entry["figures"])))
    print(f"written to {args.out}/", file=sys.stderr)
    return 0
