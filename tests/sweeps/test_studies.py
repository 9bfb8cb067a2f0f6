"""Every study in sweeps/ and every experiment in conf/experiment/ composes, validates and expands
(dry run) to the number of trials its header declares, with distinct run directories.

A study that references a config that does not exist (e.g. an adapter preset from a branch not yet
merged) fails here; it is never skipped.
"""

import json
from pathlib import Path

import pytest

from lora_lab.errors import ConfigError
from lora_lab.sweeps.expand import expand_study
from lora_lab.sweeps.studies import experiment_names, find_study, study_names

HEADER_WORDS = ("Goal", "Scientific", "Nuisance", "Fixed", "Table", "Trials:")


def _param(name: str):
    study = find_study(name)
    big = (study.declared_trials or 0) > 40 or "budget_rank" in study.path.read_text()
    return pytest.param(name, marks=pytest.mark.slow) if big else name


ALL = [_param(n) for n in study_names() + experiment_names() if not n.startswith("hpo_")]  # Optuna: test_search_space.py


def test_studies_exist():
    assert {"quick", "method_comparison", "rank", "alpha", "targets", "init", "adalora_budget", "budget_matched"} <= set(study_names())
    assert {"lora_roberta_base_glue", "adalora_debertav3_glue"} <= set(experiment_names())
    assert not set(study_names()) & {"train"}, "a study named like a conf/ primary config would be shadowed"


@pytest.mark.parametrize("name", ALL)
def test_study_expands_to_declared_trials_with_distinct_dirs(name):
    study = find_study(name)
    header = study.header
    for word in HEADER_WORDS:
        assert word in header, f"{study.path} header lacks {word!r}"
    trials = expand_study(study)  # composes, resolves and schema-checks every trial
    assert len(trials) == study.declared_trials, f"{study.path}: header says {study.declared_trials}, expands to {len(trials)}"
    run_dirs = [t.run_dir for t in trials]
    assert len(set(run_dirs)) == len(run_dirs)
    studies = {t.config["study"] for t in trials}
    assert all(Path(t.sweep_dir).name == t.config["study"] for t in trials) and len(studies) == 1
    for t in trials:  # the learning rate in the name is concrete
        assert f"lr{t.config['optim']['lr']}-" in t.subdir


@pytest.mark.parametrize("name", ["quick", "rank", "targets", "lora_roberta_base_glue"])
def test_fast_expansion_equals_hydra_composition(name):
    """The shared-composition fast path gives the job config and run dir Hydra composes per job."""
    study = find_study(name)
    n = study.declared_trials
    sample = {0, 1, n // 2, n - 1}
    fast = {t.index: t for t in expand_study(study, validate=False, only=sample)}
    exact = expand_study(study, exact=True, validate=False, only=sample)
    assert [t.index for t in exact] == sorted(sample) == sorted(fast)
    for t in exact:
        assert fast[t.index].overrides == t.overrides
        assert fast[t.index].run_dir == t.run_dir
        assert fast[t.index].config == t.config


def _study_file(tmp_path, params: str, body: str = "") -> Path:
    path = tmp_path / "mystudy.yaml"
    path.write_text(
        "# Trials: 0\ndefaults:\n  - train\n  - override /backbone: tiny_bert\n  - _self_\nstudy: mystudy\n"
        + body + "hydra:\n  sweeper:\n    params:\n" + params
    )
    return path


def test_cli_overrides_replace_study_params_like_hydra(tmp_path):
    path = _study_file(tmp_path, "      adapter.r: 2,4\n      seed: 0,1\n")
    trials = expand_study(find_study(str(path)), ["seed=5", "adapter.alpha=4,8"])
    assert [t.overrides for t in trials] == [
        ["adapter.r=2", "seed=5", "adapter.alpha=4"], ["adapter.r=2", "seed=5", "adapter.alpha=8"],
        ["adapter.r=4", "seed=5", "adapter.alpha=4"], ["adapter.r=4", "seed=5", "adapter.alpha=8"],
    ]
    assert trials[1].subdir == "synthetic/tiny_bert/lora-r2-a8-kaiming-qv/lr0.0005-seed5"


def test_colliding_run_dirs_fail_and_run_suffix_fixes_them(tmp_path):
    path = _study_file(tmp_path, "      trainer.max_steps: 10,20\n")
    with pytest.raises(ConfigError, match=r"run_name: trials 0 \(trainer.max_steps=10\) and 1 \(trainer.max_steps=20\) share the run dir .*run_suffix"):
        expand_study(find_study(str(path)))
    path = _study_file(tmp_path, "      trainer.max_steps: 10,20\n", "run_suffix: -steps${trainer.max_steps}\n")
    assert [t.subdir.rsplit("/", 1)[1] for t in expand_study(find_study(str(path)))] == ["lr0.0005-seed0-steps10", "lr0.0005-seed0-steps20"]


def test_bad_trial_is_named_before_anything_runs(tmp_path):
    path = _study_file(tmp_path, "      adapter.r: 4,0\n")
    with pytest.raises(ConfigError, match=r"^adapter.r: must be a positive integer, got 0 \(trial 1: adapter.r=0\)$"):
        expand_study(find_study(str(path)))
    with pytest.raises(ConfigError, match=r"^study: unknown study 'nope'; allowed: .*quick"):
        find_study("nope")


def test_dry_run_lists_every_run_dir_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from lora_lab.cli import main

    monkeypatch.setenv("LORA_LAB_RUNS", str(tmp_path / "runs"))
    path = _study_file(tmp_path, "      adapter.r: 2,4\n      seed: 0,1,2\n")
    assert main(["sweep", str(path), "dry_run=true", "task=glue_rte"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"study mystudy: 6 trials in {tmp_path / 'runs' / 'mystudy'}"
    assert out[1] == f"  [      new] {tmp_path / 'runs' / 'mystudy'}/glue_rte/tiny_bert/lora-r2-a16-kaiming-qv/lr0.0005-seed0"
    assert len(out) == 7 and len(set(out)) == 7
    assert not (tmp_path / "runs").exists()
    assert main(["sweep", str(path), "dry_run=maybe"]) == 2
    assert capsys.readouterr().err.strip() == "error: dry_run: must be true or false, got 'maybe'"


@pytest.mark.parametrize("launcher,target", [
    ("sequential", "BasicLauncher"), ("parallel", "JoblibLauncher"), ("submitit", "LocalLauncher"), ("slurm_gpu", "SlurmLauncher"), ("slurm_cpu", "SlurmLauncher"),
])
def test_launcher_presets_compose(tmp_path, launcher, target):
    from lora_lab.sweeps.expand import plan_study

    path = _study_file(tmp_path, "      seed: 0,1\n")
    plan = plan_study(find_study(str(path)), [f"hydra/launcher={launcher}"], validate=False)
    assert plan.launcher["_target_"].endswith(target) and len(plan.trials) == 2 and plan.kind == "grid"
    if launcher == "parallel":
        assert plan.launcher["n_jobs"] == 2


def test_a_grid_study_sweeps_a_schema_key_its_yaml_lacks_without_a_plus(tmp_path, monkeypatch):
    """``adapter.init_batches`` (a schema key of the LoRA family that conf/adapter/lora.yaml does not
    list) swept in the study's own ``hydra.sweeper.params``: planned and run through Hydra's sweeper,
    each trial recording its own value, with no ``++`` anywhere."""
    from lora_lab.cli import main

    monkeypatch.setenv("LORA_LAB_RUNS", str(tmp_path / "runs"))
    path = _study_file(tmp_path, "      adapter.init_batches: 1,2\n",
                       "adapter:\n  init: eva\nrun_suffix: -ib${adapter.init_batches}\ntask:\n  train_size: 16\n  val_size: 8\n  test_size: 8\n"
                       "  batch_size: 4\ntrainer:\n  max_steps: 1\n  max_epochs: 1\nsave_adapter: false\n")
    assert main(["sweep", str(path)]) == 0
    records = sorted((json.loads(p.read_text()) for p in (tmp_path / "runs" / "mystudy").rglob("result.json")), key=lambda r: r["config"]["adapter"]["init_batches"])
    assert [(r["status"], r["config"]["adapter"]["init_batches"]) for r in records] == [("success", 1), ("success", 2)]
    assert [r["method_summary"]["init"]["calibration_batches"] for r in records] == [1, 2]
