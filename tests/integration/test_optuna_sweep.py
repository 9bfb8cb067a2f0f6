"""Real Optuna studies on a tiny random BERT (sequential launcher), through both entry points.

- ``lora-lab sweep``: a 6-trial study, killed (SIGKILL) once 3 trials are complete and rerun with the
  same command, ends with exactly 6 complete trials in its SQLite storage, none trained twice, each
  value equal to the validation metric in the run's result.json; ``lora-lab report`` shows the best
  trial read back from the storage.
- ``lora-lab train --multirun hydra/sweeper=optuna``: two processes on one shared journal-file storage
  (``hydra.sweeper.storage=journal``, the cluster storage) run one 4-trial study together (both take trials, no duplicates); a trial that raises at run time (a
  position-embedding table shorter than the sequences) is FAIL in Optuna and ``failed`` in
  result.json, and the study goes on.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lora_lab.config.naming import name_number

from lora_lab.optuna_storage import open_storage, storage_url
from lora_lab.sweeps.optuna_study import LOCK_DIR, FileLock

ROOT = Path(__file__).resolve().parents[2]
STUDY = """# Trials: {n}
defaults:
  - train
  - override /backbone: tiny_bert
  - override hydra/sweeper: optuna
  - _self_
study: {name}
task: {{train_size: 64, val_size: 32, test_size: 32, batch_size: 16, max_length: 16}}
trainer: {{max_steps: 8, max_epochs: -1, val_check_interval: 4, check_val_every_n_epoch: null}}
{extra}
hydra:
  sweeper:
    n_trials: {n}
    params:
      optim.lr: tag(log, interval(1e-3, 1e-1))
      adapter.r: choice(2, 4)
{params}"""


def _env(tmp_path):
    return {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _start(tmp_path, *args, log="log"):
    out = open(tmp_path / f"{log}.txt", "w")
    return subprocess.Popen([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)


def _trials(storage: Path | str, name: str):
    """The study's trials; ``storage`` a SQLite file or a storage URL."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage if isinstance(storage, str) else f"sqlite:///{storage}"
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def _waiting_on(path: Path) -> int:
    """How many processes are blocked on the flock of ``path`` (Linux /proc/locks marks them ``->``)."""
    inode = os.stat(path).st_ino
    return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and line.split()[-3].endswith(f":{inode}"))


def _record(sweep_dir: Path, trial) -> dict:
    return json.loads((sweep_dir / trial.user_attrs["run_dir"] / "result.json").read_text())


@pytest.mark.slow
def test_study_runs_resumes_after_kill_and_reports(tmp_path):
    study = tmp_path / "hpo6.yaml"
    study.write_text(STUDY.format(n=6, name="hpo6", extra="", params=""))
    sweep_dir = tmp_path / "runs" / "hpo6"
    storage = sweep_dir / "optuna.db"
    first = _start(tmp_path, "sweep", str(study), log="first")
    deadline = time.time() + 600
    k = None  # the trial in flight when killed: the first k (>= 3) complete, trial k running
    while time.time() < deadline and first.poll() is None:
        if (sweep_dir / ".optuna" / "hpo6-trial3.lock").is_file():  # the storage exists, trial 3 was claimed
            states = [t.state.name for t in _trials(storage, "hpo6")]  # one read (slow on a busy machine) decides
            k = states.count("COMPLETE")
            if 3 <= k < 6 and states[k:] == ["RUNNING"]:
                break
        time.sleep(0.3)
    assert first.poll() is None, (tmp_path / "first.txt").read_text()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = _trials(storage, "hpo6")
    done = {t.number: (sweep_dir / t.user_attrs["run_dir"] / "result.json").read_bytes() for t in before if t.state.name == "COMPLETE"}
    assert len(done) == k and [t.state.name for t in before][k:] == ["RUNNING"]  # killed with trial k in flight

    again = subprocess.run([sys.executable, "-m", "lora_lab.cli", "sweep", str(study)], cwd=ROOT, env=_env(tmp_path),
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "study hpo6: Optuna study 'hpo6': 6/6 trials complete (6 complete)" in again.stderr
    assert f"resuming interrupted trial {k} with" in again.stdout + again.stderr
    trials = _trials(storage, "hpo6")
    assert trials[k].params == before[k].params  # the interrupted trial itself was finished, in its own run dir
    assert [t.number for t in trials] == list(range(6)) and all(t.state.name == "COMPLETE" for t in trials)
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 6 and len({tuple(sorted(t.params.items())) for t in trials}) == 6
    for t in trials:
        record = _record(sweep_dir, t)
        assert record["status"] == "success" and record["optimizer_steps"] == 8
        assert t.value == record["metrics"]["best_val"]["val/accuracy"]  # the validation selection metric, never test
        assert record["config"]["optim"]["lr"] == t.params["optim.lr"] and record["config"]["adapter"]["r"] == t.params["adapter.r"]
        assert f"lr{name_number(t.params['optim.lr'])}-" in t.user_attrs["run_dir"] and f"-r{t.params['adapter.r']}-" in t.user_attrs["run_dir"]
    lines = re.findall(r"^\[(\d+)/6\] (\S+) success val=(\S+) test=\S+ .*\(optuna #(\d+), best (\S+)\)", again.stdout, re.M)
    assert [(int(j), int(n)) for j, _, _, n, _ in lines] == [(n + 1, n) for n in range(k, 6)], again.stdout  # [j/6] counts the study's finished trials
    for _, name, val, number, best_so_far in lines:
        t = trials[int(number)]
        assert name == t.user_attrs["run_dir"] and float(val) == pytest.approx(t.value, abs=5e-5)
        assert float(best_so_far) == pytest.approx(max(u.value for u in trials[: int(number) + 1]), abs=5e-5)
    for number, data in done.items():  # finished trials were kept, not trained again
        assert (sweep_dir / trials[number].user_attrs["run_dir"] / "result.json").read_bytes() == data

    from lora_lab.results.report import report

    markdown = report([sweep_dir], out=tmp_path / "rep")["markdown"]
    best = max(trials, key=lambda t: (t.value, -t.number))
    hpo = json.loads((tmp_path / "rep" / "hpo.json").read_text())
    assert hpo[0]["study"] == "hpo6" and hpo[0]["states"] == {"COMPLETE": 6} and hpo[0]["direction"] == "maximize"
    assert hpo[0]["best"]["LoRA"]["value"] == best.value and hpo[0]["best"]["LoRA"]["params"] == best.params
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(best.params.items()))
    assert f"| hpo6 | LoRA | {best.number} | {best.value:.4f} | {params} | 6 | 0 | 0 |" in markdown
    assert (tmp_path / "rep" / "plots" / "hpo_hpo6_history.png").stat().st_size > 1000
    varies = len({t.value for t in trials}) > 1  # tiny runs may all sit at chance: no variance to apportion
    assert set(hpo[0]["importances"]) == ({"optim.lr", "adapter.r"} if varies else set())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_two_processes_share_one_study_and_a_raising_trial_fails(tmp_path):
    study = tmp_path / "shared.yaml"
    study.write_text(STUDY.format(n=4, name="shared", extra="run_suffix: -pe${backbone.random_init.max_position_embeddings}",
                                  params="      backbone.random_init.max_position_embeddings: choice(64, 4)\n"))
    sweep_dir = tmp_path / "runs" / "shared"
    storage = storage_url("journal", sweep_dir)
    seeded = optuna.create_study(study_name="shared", storage=open_storage(storage), direction="maximize")
    seeded.enqueue_trial({"backbone.random_init.max_position_embeddings": 4})  # 16-token batches: raises in the forward pass
    args = ["train", "--config-dir", str(tmp_path), "--config-name", "shared", "--multirun", "hydra.sweeper.storage=journal"]
    gate = FileLock(sweep_dir / LOCK_DIR / "shared.lock")  # the study lock: both processes wait on it to open the study
    gate.acquire()
    procs = [_start(tmp_path, *args, log=f"p{i}") for i in range(2)]
    deadline = time.time() + 600
    while _waiting_on(gate.path) < 2 and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    gate.release()  # both start claiming trials together, so both take some
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=900) == 0, (tmp_path / f"p{i}.txt").read_text()[-3000:]
    assert (sweep_dir / "optuna.journal").is_file() and not (sweep_dir / "optuna.db").exists()
    trials = _trials(storage, "shared")
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4 and len({tuple(sorted(t.params.items())) for t in trials}) == 4
    records = [_record(sweep_dir, t) for t in trials]
    assert len({r["job"]["pid"] for r in records}) == 2  # both processes ran trials of the one study
    assert trials[0].params["backbone.random_init.max_position_embeddings"] == 4
    for t, record in zip(trials, records):
        if t.params["backbone.random_init.max_position_embeddings"] == 4:
            assert t.state.name == "FAIL" and t.value is None  # failed, never scored
            assert record["status"] == "failed" and record["reason"].startswith("RuntimeError: The size of tensor a (16)")
            assert t.user_attrs["fail_reason"] == record["reason"]
        else:
            assert t.state.name == "COMPLETE" and t.value == record["metrics"]["best_val"]["val/accuracy"]
            assert record["status"] == "success" and record["optimizer_steps"] == 8
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 1  # the study went on after the failure
    printed = "".join((tmp_path / f"p{i}.txt").read_text() for i in range(2))
    ks = sorted(int(k) for k in re.findall(r"^\[(\d)/4\] ", printed, re.M))  # one line per trial, either process
    assert len(ks) == 4 and ks[-1] == 4 and ks[0] >= 1  # k counts both processes' trials (two may read the same k)
    assert re.search(r"^\[\d/4\] \S+ failed: RuntimeError: The size of tensor a \(16\).*\(optuna #0", printed, re.M)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_pruner_stops_trials_on_selectable_evaluations_only(tmp_path):
    """A pruner that stops every reported trial (ThresholdPruner, lower bound above any accuracy):
    the LoRA trial stops after its first validation (step 4 of 8), the AdaLoRA trial (tfinal 1: only
    its step-8 evaluation is selectable) is never reported its step-4 evaluation, so it runs to the end
    and is pruned on its last one. Both are ``pruned`` in result.json and PRUNED in Optuna; the report
    counts them; without a pruner nothing is linked to Optuna (the default)."""
    study = tmp_path / "prune.yaml"
    study.write_text(STUDY.format(n=2, name="prune", extra="", params="      adapter: choice(lora, adalora)\n").replace("      adapter.r: choice(2, 4)\n", ""))
    sweep_dir = tmp_path / "runs" / "prune"
    sweep_dir.mkdir(parents=True)
    seeded = optuna.create_study(study_name="prune", storage=open_storage(storage_url(None, sweep_dir)), direction="maximize")
    seeded.enqueue_trial({"optim.lr": 0.01, "adapter": "lora"})
    seeded.enqueue_trial({"optim.lr": 0.01, "adapter": "adalora"})
    args = ["sweep", str(study), "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=1.5"]
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]  # pruned trials are not faults
    trials = _trials(sweep_dir / "optuna.db", "prune")
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    by_method = {t.params["adapter"]: t for t in trials}
    assert set(by_method) == {"lora", "adalora"}
    for method, step in (("lora", 4), ("adalora", 8)):
        t = by_method[method]
        record = _record(sweep_dir, t)
        assert record["status"] == "pruned" and record["optimizer_steps"] == step
        assert record["reason"].startswith(f"pruned by the Optuna pruner after step {step} (val/accuracy ")
        assert record["config"]["optuna_trial"]["number"] == t.number and record["metrics"]["test"] == {}
        reported = {p["step"]: p["val/accuracy"] for p in record["curve"] if p["selectable"]}
        assert t.intermediate_values == reported and list(reported) == [step]  # only selectable evaluations reported
    assert [p["selectable"] for p in _record(sweep_dir, by_method["adalora"])["curve"]] == [False, True]
    assert "2/2 trials complete" not in proc.stderr and "(2 pruned)" in proc.stderr

    from lora_lab.results.report import report

    markdown = report([sweep_dir], out=tmp_path / "rep")["markdown"]
    assert "Trials: 2 (0 success, 2 pruned, 0 failed" in markdown
    assert json.loads((tmp_path / "rep" / "hpo.json").read_text())[0]["states"] == {"PRUNED": 2}
