"""The HPO view of ``lora-lab report``: Optuna studies found under the report's paths.

Every ``optuna.db`` (the default storage of ``hydra/sweeper=optuna``, `lora_lab.sweeps.optuna_study`)
under a given path is read with Optuna itself. For each study and each method (its table label,
`lora_lab.results.names.method_label`: PiSSA for LoRA with ``init=pissa``, read from the trial's
``result.json``) the view lists the best
complete trial (by the study's direction), its objective (the validation selection metric) and its
sampled parameters, plus how many trials completed / failed; ``hpo.json`` holds the same, and
``plots/hpo_<study>.png`` and ``.pdf`` (each word of the name once: study ``hpo_methods`` gives
``hpo_methods.png``) show the objective against the trial number (with the running best) and
against each searched parameter (log axis for log-uniform ones). Optuna's parameter importances need
scikit-learn in Optuna 2.x, which this project does not install, so they are not computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lora_lab.figure_files import figure_stem, save_figure
from lora_lab.results.names import method_label
from lora_lab.results.record import atomic_write_text

STORAGE_NAME = "optuna.db"


@dataclass
class StudyView:
    name: str
    storage: str
    direction: str
    trials: list = field(repr=False)  # FrozenTrial, every state
    methods: dict = field(default_factory=dict)  # trial number -> method label

    def complete(self) -> list:
        return [t for t in self.trials if t.state.name == "COMPLETE"]

    def best_per_method(self) -> dict:
        best: dict[str, object] = {}
        sign = 1 if self.direction == "maximize" else -1
        for t in self.complete():
            label = self.methods.get(t.number, "?")
            if label not in best or sign * t.value > sign * best[label].value:
                best[label] = t
        return dict(sorted(best.items()))


def find_storages(paths) -> list[Path]:
    found = []
    for path in map(Path, paths):
        if path.is_file() and path.name == STORAGE_NAME:
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob(STORAGE_NAME))
    return sorted(set(found))


def _method(sweep_dir: Path, trial) -> str:
    try:
        config = json.loads((sweep_dir / trial.user_attrs["run_dir"] / "result.json").read_bytes())["config"]["adapter"]
    except (KeyError, OSError, ValueError, TypeError):
        return "?"
    return method_label(config.get("method", "?"), config.get("init"), config.get("rslora"))


def load_views(storage: Path) -> list[StudyView]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{storage.resolve()}"
    views = []
    for summary in optuna.get_all_study_summaries(storage=url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        trials = study.get_trials(deepcopy=False)
        views.append(StudyView(summary.study_name, url, study.direction.name.lower(), trials,
                               {t.number: _method(storage.parent, t) for t in trials}))
    return views


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(views: list[StudyView]) -> list[str]:
    lines = ["## Hyperparameter search (Optuna)", "",
             "| study | method | best trial | objective | params | complete | failed |", "|---|---|---:|---:|---|---:|---:|"]
    for view in views:
        state = {t.number: t.state.name for t in view.trials}
        for label, best in view.best_per_method().items():
            of_method = [state.get(n) for n, m in view.methods.items() if m == label]
            done, failed = of_method.count("COMPLETE"), of_method.count("FAIL")
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(best.params.items()))
            lines.append(f"| {view.name} | {label} | {best.number} | {best.value:.4f} | {params} | {done} | {failed} |")
    lines += ["", "Objective: the validation selection metric (" + "; ".join(f"{v.name}: {v.direction}" for v in views)
              + "); failed trials are not scored.", ""]
    return lines


def to_json(views: list[StudyView]) -> list[dict]:
    return [{"study": v.name, "storage": v.storage, "direction": v.direction,
             "states": {s: [t.state.name for t in v.trials].count(s) for s in sorted({t.state.name for t in v.trials})},
             "best": {label: {"number": t.number, "value": t.value, "params": t.params, "run_dir": t.user_attrs.get("run_dir")}
                      for label, t in v.best_per_method().items()}} for v in views]


def plot(view: StudyView, path: Path) -> Path:
    """Draw the study's figure into ``path`` and, beside it, the same figure as PDF (TrueType fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.distributions import IntLogUniformDistribution, LogUniformDistribution

    done = view.complete()
    keys = sorted({k for t in done for k in t.params})
    fig, axes = plt.subplots(1, 1 + len(keys), figsize=(4 * (1 + len(keys)), 3.2), squeeze=False)
    ax = axes[0][0]
    numbers, values = [t.number for t in done], [t.value for t in done]
    best, running = [], None
    for v in values:
        running = v if running is None else (max if view.direction == "maximize" else min)(running, v)
        best.append(running)
    ax.scatter(numbers, values, s=14, label="trial")
    ax.step(numbers, best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective (validation)")
    ax.legend(fontsize=7)
    for ax, key in zip(axes[0][1:], keys):
        ax.scatter([t.params[key] for t in done if key in t.params], [t.value for t in done if key in t.params], s=14)
        dist = next((t.distributions[key] for t in done if key in t.distributions), None)
        if isinstance(dist, (LogUniformDistribution, IntLogUniformDistribution)):
            ax.set_xscale("log")
        ax.set_xlabel(key)
    fig.suptitle(f"{view.name} ({view.direction})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    save_figure(fig, path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def hpo_section(paths, out: Path, plots: bool = True) -> list[str]:
    """Markdown lines of the HPO view (empty without Optuna storages); writes hpo.json and plots."""
    views = [v for storage in find_storages(paths) for v in load_views(storage)]
    if not views:
        return []
    atomic_write_text(Path(out) / "hpo.json", json.dumps(to_json(views), indent=1, default=str))
    if plots:
        for view in views:
            if view.complete():
                plot(view, Path(out) / "plots" / f"{figure_stem('hpo', view.name)}.png")
    return markdown(views)
