"""The HPO view of ``lora-lab report``: Optuna studies found under the report's paths.

Every per-study storage file (``optuna.db``, ``optuna.journal``: `lora_lab.optuna_storage`) under a
given path is read with Optuna itself. For each study and each method (its table label,
`lora_lab.results.names.method_label`: PiSSA for LoRA with ``init=pissa``, read from the trial's
``result.json``) the view lists the best complete trial (by the study's direction), its objective
(the validation selection metric) and its sampled parameters, plus how many trials completed, were
pruned and failed; below it each study's parameter importances (`importances`: Optuna's fANOVA).
``hpo.json`` holds the same, and ``plots/hpo_<study>_{history,importance,slice}.{png,pdf}`` (each word of
the name once: study ``hpo_methods`` gives ``hpo_methods_history.png``; TrueType fonts in the PDFs) are
Optuna's own figures (``optuna.visualization.matplotlib``): the objective per trial with the running
best, the importances, and the objective against each searched parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lora_lab.figure_files import figure_stem, save_figure
from lora_lab.optuna_storage import find_storages, open_storage, storage_file
from lora_lab.results.names import method_label
from lora_lab.results.record import atomic_write_text

@dataclass
class StudyView:
    name: str
    storage: str
    direction: str
    trials: list = field(repr=False)  # FrozenTrial, every state
    methods: dict = field(default_factory=dict)  # trial number -> method label
    study: object = field(default=None, repr=False)  # optuna.Study, for importances and Optuna's plots
    importances: dict = field(default_factory=dict)  # parameter -> fANOVA importance (`importances`)

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


def _method(sweep_dir: Path, trial) -> str:
    try:
        config = json.loads((sweep_dir / trial.user_attrs["run_dir"] / "result.json").read_bytes())["config"]["adapter"]
    except (KeyError, OSError, ValueError, TypeError):
        return "?"
    return method_label(config.get("method", "?"), config.get("init"), config.get("rslora"))


def load_views(url: str) -> list[StudyView]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    sweep_dir = storage_file(url).parent
    views = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        view = StudyView(summary.study_name, url, study.direction.name.lower(), trials,
                         {t.number: _method(sweep_dir, t) for t in trials}, study)
        view.importances = importances(view)
        views.append(view)
    return views


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(views: list[StudyView]) -> list[str]:
    lines = ["## Hyperparameter search (Optuna)", "",
             "| study | method | best trial | objective | params | complete | pruned | failed |", "|---|---|---:|---:|---|---:|---:|---:|"]
    for view in views:
        state = {t.number: t.state.name for t in view.trials}
        for label, best in view.best_per_method().items():
            of_method = [state.get(n) for n, m in view.methods.items() if m == label]
            counts = " | ".join(str(of_method.count(s)) for s in ("COMPLETE", "PRUNED", "FAIL"))
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(best.params.items()))
            lines.append(f"| {view.name} | {label} | {best.number} | {best.value:.4f} | {params} | {counts} |")
    lines += ["", "Objective: the validation selection metric (" + "; ".join(f"{v.name}: {v.direction}" for v in views)
              + "); pruned (stopped early by the pruner) and failed trials are not scored.", ""]
    for view in views:
        if view.importances:
            shares = ", ".join(f"{k} {v:.2f}" for k, v in view.importances.items())
            lines.append(f"- {view.name}: parameter importances (fANOVA over {len(view.complete())} complete trials): {shares}")
    return lines + ([""] if any(v.importances for v in views) else [])


def to_json(views: list[StudyView]) -> list[dict]:
    return [{"study": v.name, "storage": v.storage, "direction": v.direction, "importances": v.importances,
             "states": {s: [t.state.name for t in v.trials].count(s) for s in sorted({t.state.name for t in v.trials})},
             "best": {label: {"number": t.number, "value": t.value, "params": t.params, "run_dir": t.user_attrs.get("run_dir")}
                      for label, t in v.best_per_method().items()}} for v in views]


def importances(view: StudyView) -> dict[str, float]:
    """Each searched parameter's share of the objective's variance over the complete trials: Optuna's
    fANOVA (``FanovaImportanceEvaluator``: a random forest on (params -> objective), then the variance
    of each parameter's marginal over the total, Hutter et al. 2014, sec. 3), normalised to sum to 1,
    seeded so a report is reproducible. Empty with fewer than two complete trials, nothing searched,
    or one objective value for all (no variance to apportion)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    done = view.complete()
    if len(done) < 2 or not any(t.distributions for t in done) or len({t.value for t in done}) < 2:
        return {}  # nothing to apportion: fANOVA needs a varying objective
    return dict(optuna.importance.get_param_importances(view.study, evaluator=FanovaImportanceEvaluator(seed=0)))


#: Optuna's own figures of a study (``optuna.visualization.matplotlib``), one file stem each
PLOTS = {"history": "plot_optimization_history", "importance": "plot_param_importances", "slice": "plot_slice"}


def plot(view: StudyView, out_dir: Path) -> list[Path]:
    """``hpo_<study>_<kind>.png`` and ``.pdf`` for each of `PLOTS` (the importance plot only where
    `importances` has a value): Optuna's matplotlib figures of the stored study."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as optuna_plots
    from optuna.importance import FanovaImportanceEvaluator

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, function in PLOTS.items():
        if kind == "importance" and not view.importances:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
            kwargs = {"evaluator": FanovaImportanceEvaluator(seed=0)} if kind == "importance" else {}
            axes = getattr(optuna_plots, function)(view.study, **kwargs)
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.suptitle(f"{view.name} ({view.direction})", fontsize=9)
        for suffix in (".png", ".pdf"):
            path = out_dir / f"{figure_stem('hpo', view.name, kind)}{suffix}"  # each word once; TrueType fonts in the PDF
            save_figure(figure, path, dpi=110, bbox_inches="tight")
            written.append(path)
        plt.close(figure)
    return written


def hpo_section(paths, out: Path, plots: bool = True) -> list[str]:
    """Markdown lines of the HPO view (empty without Optuna storages); writes hpo.json and plots."""
    views = [v for url in find_storages(paths) for v in load_views(url)]
    if not views:
        return []
    atomic_write_text(Path(out) / "hpo.json", json.dumps(to_json(views), indent=1, default=str))
    if plots:
        for view in views:
            if view.complete():
                plot(view, Path(out) / "plots")
    return markdown(views)
