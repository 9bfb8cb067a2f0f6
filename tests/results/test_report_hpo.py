"""The report's HPO view (`lora_lab.results.hpo`) read from real Optuna storages (SQLite and the journal
file): the best trial per method follows the study's direction, pruned and failed trials are counted
and never scored, parameter importances find the parameter the objective depends on, and Optuna's
plots are written as PNG and PDF."""

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from lora_lab.optuna_storage import open_storage, storage_url
from lora_lab.results.hpo import hpo_section


def _add(study, sweep_dir, task, method, init, lr, r, value, state=TrialState.COMPLETE):
    run_dir = f"{task}/tiny_bert/{method}-r{r}-{init}/lr{lr}-seed0"
    (sweep_dir / run_dir).mkdir(parents=True)
    (sweep_dir / run_dir / "result.json").write_text(json.dumps({"config": {"adapter": {"method": method, "init": init}}}))
    study.add_trial(create_trial(params={"optim.lr": lr, "adapter.r": r}, value=value, state=state, user_attrs={"run_dir": run_dir},
                                 distributions={"optim.lr": FloatDistribution(1e-4, 1e-1, log=True), "adapter.r": CategoricalDistribution([2, 4, 8])}))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_hpo_view_matches_the_storage(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep_dir = tmp_path / "runs" / "hpo"
    sweep_dir.mkdir(parents=True)
    url = f"sqlite:///{sweep_dir / 'optuna.db'}"
    up = optuna.create_study(study_name="hpo-up", storage=url, direction="maximize")
    rows = [("lora", "kaiming", 0.001, 2, 0.61), ("lora", "kaiming", 0.01, 4, 0.74), ("dora", "kaiming", 0.002, 8, 0.70),
            ("lora", "pissa", 0.003, 2, 0.66), ("dora", "kaiming", 0.02, 2, 0.72)]
    for row in rows:
        _add(up, sweep_dir, "synthetic", *row)
    _add(up, sweep_dir, "synthetic", "dora", "kaiming", 0.05, 4, None, TrialState.FAIL)
    _add(up, sweep_dir, "synthetic", "lora", "kaiming", 0.07, 8, None, TrialState.PRUNED)
    down = optuna.create_study(study_name="hpo-down", storage=url, direction="minimize")
    for i, v in enumerate([0.9, 0.4, 0.7]):
        _add(down, sweep_dir, "glue_rte", "adalora", "adalora", 0.001 * (i + 1), 4, v)

    lines = hpo_section([tmp_path / "runs"], tmp_path / "out")
    assert "| hpo-up | LoRA | 1 | 0.7400 | adapter.r=4, optim.lr=0.01 | 2 | 1 | 0 |" in lines
    assert "| hpo-up | DoRA | 4 | 0.7200 | adapter.r=2, optim.lr=0.02 | 2 | 0 | 1 |" in lines
    assert "| hpo-up | PiSSA | 3 | 0.6600 | adapter.r=2, optim.lr=0.003 | 1 | 0 | 0 |" in lines
    assert "| hpo-down | AdaLoRA | 1 | 0.4000 | adapter.r=4, optim.lr=0.002 | 3 | 0 | 0 |" in lines  # minimised
    saved = {s["study"]: s for s in json.loads((tmp_path / "out" / "hpo.json").read_text())}
    assert saved["hpo-up"]["states"] == {"COMPLETE": 5, "FAIL": 1, "PRUNED": 1} and saved["hpo-down"]["direction"] == "minimize"
    assert saved["hpo-up"]["best"]["DoRA"] == {"number": 4, "value": 0.72, "params": {"optim.lr": 0.02, "adapter.r": 2},
                                              "run_dir": "synthetic/tiny_bert/dora-r2-kaiming/lr0.02-seed0"}
    for kind in ("history", "importance", "slice"):
        assert (tmp_path / "out" / "plots" / f"hpo_hpo-up_{kind}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "out" / "plots" / f"hpo_hpo-up_{kind}.pdf").read_bytes()[:5] == b"%PDF-"
    assert hpo_section([tmp_path / "out"], tmp_path / "none") == []  # no storage, no section


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_importances_find_the_parameter_the_objective_depends_on(tmp_path):
    """A journal-file study whose objective is a function of lr alone (r drawn at random): fANOVA gives
    lr nearly all the variance. The study is written by a real optimize loop through the journal storage."""
    import random

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep_dir = tmp_path / "runs" / "imp"
    url = storage_url("journal", sweep_dir)
    assert url == f"journal:{sweep_dir.resolve() / 'optuna.journal'}"
    study = optuna.create_study(study_name="imp", storage=open_storage(url), direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    draw = random.Random(0)

    def objective(trial):
        lr = trial.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("adapter.r", [2, 4, 8])
        run_dir = f"synthetic/tiny_bert/lora-r{trial.params['adapter.r']}/lr{lr}-seed{draw.random()}"
        (sweep_dir / run_dir).mkdir(parents=True)
        (sweep_dir / run_dir / "result.json").write_text(json.dumps({"config": {"adapter": {"method": "lora", "init": "kaiming"}}}))
        trial.set_user_attr("run_dir", run_dir)
        return -abs(__import__("math").log10(lr) + 2.5)  # best at lr = 10^-2.5, whatever r is

    study.optimize(objective, n_trials=30)
    lines = hpo_section([tmp_path / "runs"], tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "hpo.json").read_text())[0]
    assert saved["storage"] == url and saved["states"] == {"COMPLETE": 30}
    assert saved["importances"]["optim.lr"] > 0.9 and saved["importances"]["adapter.r"] < 0.1
    assert sum(saved["importances"].values()) == pytest.approx(1.0, abs=1e-9)  # normalised shares
    shares = ", ".join(f"{k} {v:.2f}" for k, v in saved["importances"].items())
    assert f"- imp: parameter importances (fANOVA over 30 complete trials): {shares}" in lines and shares.startswith("optim.lr ")
