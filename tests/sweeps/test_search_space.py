"""Optuna search spaces in the Hydra Optuna sweeper's syntax, the Optuna dry run, and every
``sweeps/hpo_*.yaml`` study composed, schema-checked and dry-run."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from lora_lab.errors import ConfigError
from lora_lab.sweeps.expand import plan_study
from lora_lab.sweeps.search_space import corner_points, metric_direction, split_space
from lora_lab.sweeps.studies import find_study, study_names

HPO_STUDIES = [n for n in study_names() if n.startswith("hpo_")]


def _space(*overrides):
    return split_space(OverridesParser.create().parse_overrides(list(overrides)))


def test_search_space_syntax_maps_to_optuna_distributions():
    space, fixed = _space("optim.lr=tag(log, interval(1e-5, 1e-2))", "adapter.r=choice(4, 8, 16)", "adapter.dropout=interval(0.0, 0.2)",
                          "adapter.alpha=tag(log, int(interval(4, 64)))", "adapter.tinit=int(interval(0, 20))", "adapter.beta1=interval(0, 1)", "seed=3", "adapter.r=2,4")
    assert space["optim.lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert space["adapter.r"] == CategoricalDistribution([2, 4])  # the later override wins, a,b is a choice
    assert space["adapter.dropout"] == FloatDistribution(0.0, 0.2)
    assert space["adapter.alpha"] == IntDistribution(4, 64, log=True)
    assert space["adapter.tinit"] == IntDistribution(0, 20)
    assert space["adapter.beta1"] == FloatDistribution(0.0, 1.0)  # Hydra's interval() is float unless cast with int()
    assert fixed == {"seed": "3"}
    assert _space("seed=range(0, 6, 2)")[0]["seed"] == CategoricalDistribution([0, 2, 4])
    with pytest.raises(ConfigError, match=r"^optim.lr: tag\(log, interval\(0.0, 1.0\)\) needs a positive lower end"):
        _space("optim.lr=tag(log, interval(0.0, 1.0))")


def test_corner_points_cover_every_choice_and_both_ends():
    space, _ = _space("optim.lr=tag(log, interval(1e-5, 1e-2))", "adapter.r=choice(4, 8, 16)")
    assert corner_points(space) == [{"optim.lr": 1e-5, "adapter.r": 4}, {"optim.lr": 1e-2, "adapter.r": 8}, {"optim.lr": 1e-5, "adapter.r": 16}]


def test_direction_follows_the_selection_metric():
    assert [metric_direction(m) for m in ("val/accuracy", "val/mcc", "val/pearson", "val/loss", "val/exact_match")] == \
        ["maximize", "maximize", "maximize", "minimize", "maximize"]


def test_grid_study_refuses_continuous_ranges(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("defaults:\n  - train\n  - _self_\nstudy: g\nhydra:\n  sweeper:\n    params:\n      optim.lr: interval(0.1, 1.0)\n")
    with pytest.raises(ConfigError, match=r"^optim.lr: optim.lr=interval\(0.1, 1.0\): a grid study sweeps lists .* need hydra/sweeper=optuna$"):
        plan_study(find_study(str(path)))


def test_bad_corner_point_is_named_before_anything_runs(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("defaults:\n  - train\n  - override hydra/sweeper: optuna\n  - _self_\nstudy: o\n"
                    "hydra:\n  sweeper:\n    params:\n      adapter.r: choice(4, 0)\n")
    with pytest.raises(ConfigError, match=r"^adapter.r: must be a positive integer, got 0 \(trial 1: adapter.r=0\)$"):
        plan_study(find_study(str(path)))


def test_hpo_studies_exist():
    assert {"hpo_methods", "hpo_adalora_schedule"} <= set(HPO_STUDIES)


@pytest.mark.parametrize("name", HPO_STUDIES)
def test_hpo_study_composes_and_dry_runs(name, tmp_path, monkeypatch, capsys):
    from lora_lab.cli import main

    monkeypatch.setenv("LORA_LAB_RUNS", str(tmp_path / "runs"))
    study = find_study(name)
    for word in ("Goal", "Searched", "Fixed", "Trials:", "Objective"):
        assert word in study.header, f"{study.path} header lacks {word!r}"
    plan = plan_study(study)  # composes and schema-checks every corner point, distinct run dirs
    assert plan.kind == "optuna" and plan.space
    assert plan.sweeper["n_trials"] == study.declared_trials
    assert plan.sweeper["sampler"]["_target_"] == "optuna.samplers.TPESampler" and plan.sweeper["sampler"]["seed"] == 0
    assert plan.sweeper["n_jobs"] == 1 and plan.sweeper["direction"] == "auto"  # n_jobs: the joblib launcher's, else 1
    assert all(t.config["study"] == name for t in plan.trials)
    assert main(["sweep", name, "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert f"study {name}: Optuna study '{plan.sweeper['study_name']}', {study.declared_trials} trials, maximize" in out
    assert plan.sweeper["study_name"].startswith(name)
    assert f"storage: sqlite:///{tmp_path / 'runs' / name / 'optuna.db'}" in out and "storage holds: nothing yet" in out
    for key in plan.space:
        assert f"search {key}: " in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
    assert main(["sweep", name, "dry_run=true", "storage=postgresql://u:pw@dbhost:5432/optuna"]) == 0
    assert "storage: postgresql://u:pw@dbhost:5432/optuna" in capsys.readouterr().out  # not contacted by a dry run
