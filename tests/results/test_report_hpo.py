"""The report's HPO view (`lora_lab.results.hpo`) read from a real Optuna storage: the best trial per
method follows the study's direction, failed trials are counted and never scored, plots are written."""

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, LogUniformDistribution
from optuna.trial import TrialState, create_trial

from lora_lab.results.hpo import hpo_section


def _add(study, sweep_dir, task, method, init, lr, r, value, state=TrialState.COMPLETE):
    run_dir = f"{task}/tiny_bert/{method}-r{r}-{init}/lr{lr}-seed0"
    (sweep_dir / run_dir).mkdir(parents=True)
    (sweep_dir / run_dir / "result.json").write_text(json.dumps({"config": {"adapter": {"method": method, "init": init}}}))
    study.add_trial(create_trial(params={"optim.lr": lr, "adapter.r": r}, value=value, state=state, user_attrs={"run_dir": run_dir},
                                 distributions={"optim.lr": LogUniformDistribution(1e-4, 1e-1), "adapter.r": CategoricalDistribution([2, 4, 8])}))


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
    down = optuna.create_study(study_name="hpo-down", storage=url, direction="minimize")
    for i, v in enumerate([0.9, 0.4, 0.7]):
        _add(down, sweep_dir, "glue_rte", "adalora", "adalora", 0.001 * (i + 1), 4, v)

    lines = hpo_section([tmp_path / "runs"], tmp_path / "out")
    assert "| hpo-up | LoRA | 1 | 0.7400 | adapter.r=4, optim.lr=0.01 | 2 | 0 |" in lines
    assert "| hpo-up | DoRA | 4 | 0.7200 | adapter.r=2, optim.lr=0.02 | 2 | 1 |" in lines
    assert "| hpo-up | PiSSA | 3 | 0.6600 | adapter.r=2, optim.lr=0.003 | 1 | 0 |" in lines
    assert "| hpo-down | AdaLoRA | 1 | 0.4000 | adapter.r=4, optim.lr=0.002 | 3 | 0 |" in lines  # minimised
    saved = {s["study"]: s for s in json.loads((tmp_path / "out" / "hpo.json").read_text())}
    assert saved["hpo-up"]["states"] == {"COMPLETE": 5, "FAIL": 1} and saved["hpo-down"]["direction"] == "minimize"
    assert saved["hpo-up"]["best"]["DoRA"] == {"number": 4, "value": 0.72, "params": {"optim.lr": 0.02, "adapter.r": 2},
                                              "run_dir": "synthetic/tiny_bert/dora-r2-kaiming/lr0.02-seed0"}
    assert (tmp_path / "out" / "plots" / "hpo_hpo-up.png").stat().st_size > 1000  # "hpo-up" is one word: kept
    assert (tmp_path / "out" / "plots" / "hpo_hpo-up.pdf").read_bytes()[:5] == b"%PDF-"  # HPO plots as PDF too
    assert hpo_section([tmp_path / "out"], tmp_path / "none") == []  # no storage, no section
