"""Issue 24, class 6: sweeps refuse bad input before anything runs or is written (``lora-lab train
--multirun`` like ``lora-lab sweep``), an Optuna dry run finds the run-dir collisions the real sweep
would hit, Optuna settings and storages are one line each, another live sweep's trials are not this
sweep's failures, and Ctrl-C prints a line and records the stopped trial ``cancelled``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lora_lab.sweeps.outcome import grid_outcome
from tests.cli_helpers import lora_lab, one_error
from tests.integration.test_optuna_sweep import STUDY

ROOT = Path(__file__).resolve().parents[2]
TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "trainer.max_epochs=1", "test_after_fit=false"]



@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"



def optuna_study(tmp_path, name="hpo", param="adapter.dropout: interval(0.0, 0.2)") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(STUDY.format(n=3, name=name, extra="", params=f"      {param}\n"))
    return path


@pytest.mark.parametrize("overrides,words", [
    (["seed=0,1", "optim.lr=-1"], ["optim.lr", "trial 0"]),                         # issue example: printed, exit 0
    (["adapter.r=8,0"], ["adapter.r", "trial 1"]),                                   # only the second trial is bad
    (["seed=0,1", "study=../x"], ["study", "path separator"]),
    (["seed=0,1", "run_suffix=/.."], ["run_suffix"]),
    (["seed=0,1", "+optim.lrr=1"], ["optim.lrr"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=0"], ["hydra.sweeper.n_trials", "got 0"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=-1"], ["hydra.sweeper.n_trials", "got -1"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=abc"], ["hydra.sweeper.n_trials", "got 'abc'"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.storage=not-a-url"], ["hydra.sweeper.storage", "not a database URL"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.storage=mysql://u@h/db"], ["hydra.sweeper.storage", "driver is not installed"]),
    (["seed=0,1", "hydra/sweeper=optuna", "hydra.sweeper.direction=up"], ["hydra.sweeper.direction"]),
])
def test_train_multirun_input_errors_exit_2_and_write_nothing(runs, tmp_path, capsys, overrides, words):
    assert lora_lab(["train", "--multirun", *TINY, *overrides]) == 2
    one_error(capsys, *words)
    assert not runs.exists() and not list(tmp_path.rglob("multirun.yaml"))


def test_train_multirun_refuses_a_finished_result_of_another_config_before_any_trial(runs, tmp_path, capsys):
    assert lora_lab(["train", *TINY, "seed=1"]) == 0
    finished = next(runs.rglob("result.json")).parent
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in finished.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert lora_lab(["train", "--multirun", *TINY, "seed=0,1", "optim.warmup_ratio=0.2", "study=default"]) == 2
    one_error(capsys, "already holds a finished result of a different config")
    assert [p.parent for p in runs.rglob("result.json")] == [finished]  # seed 0 never started
    assert {p: hashlib.md5(p.read_bytes()).hexdigest() for p in finished.rglob("*") if p.is_file()} == before


def test_optuna_dry_run_finds_the_collision_the_sweep_would_hit(runs, tmp_path, capsys):
    """Issue example: optim.weight_decay is searched but not in the run name; the dry run said fine,
    then 3 of 6 trials failed. Now the dry run and the real sweep both refuse it in one line."""
    study = optuna_study(tmp_path, param="optim.weight_decay: interval(0.0, 0.1)")
    for extra in (["dry_run=true"], []):
        assert lora_lab(["sweep", str(study), *extra]) == 2
        one_error(capsys, "hydra.sweeper.params.optim.weight_decay", "not part of the run dir", "run_suffix")
    assert not runs.exists()
    fixed = optuna_study(tmp_path, name="hpo_fixed", param="optim.weight_decay: interval(0.0, 0.1)")
    fixed.write_text(fixed.read_text().replace("study: hpo_fixed", "study: hpo_fixed\nrun_suffix: -wd${optim.weight_decay}"))
    assert lora_lab(["sweep", str(fixed), "dry_run=true"]) == 0  # the suggested fix plans
    assert not runs.exists()


@pytest.mark.parametrize("storage,words", [
    ("sqlite:///{tmp}/truncated.db", ["not a readable SQLite database"]),
    ("sqlite:///{tmp}/afile/optuna.db", ["is not a directory"]),
    ("not-a-url", ["not a database URL"]),
    ("nosuchdialect://x/y", ["nosuchdialect"]),
])
def test_bad_optuna_storage_is_one_line_and_touches_nothing(runs, tmp_path, capsys, storage, words):
    (tmp_path / "truncated.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)  # a header cut short
    (tmp_path / "afile").write_text("x")
    before = {p.name: p.read_bytes() for p in (tmp_path / "truncated.db", tmp_path / "afile")}
    study = optuna_study(tmp_path)
    for extra in (["dry_run=true"], []):
        assert lora_lab(["sweep", str(study), f"storage={storage.format(tmp=tmp_path)}", *extra]) == 2
        one_error(capsys, "hydra.sweeper.storage", *words)
    assert {p.name: p.read_bytes() for p in (tmp_path / "truncated.db", tmp_path / "afile")} == before
    assert not runs.exists()


def test_driverless_storage_is_refused_by_the_real_sweep(runs, tmp_path, capsys):
    study = optuna_study(tmp_path)
    assert lora_lab(["sweep", str(study), "storage=postgresql://u@dbhost/optuna", "dry_run=true"]) == 0  # a dry run plans anywhere
    capsys.readouterr()
    assert lora_lab(["sweep", str(study), "storage=postgresql://u@dbhost/optuna"]) == 2
    one_error(capsys, "driver is not installed", "psycopg")  # psycopg2 or psycopg (3), as SQLAlchemy picks
    assert not runs.exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "true", "2.5"])
def test_n_trials_through_lora_lab_sweep(runs, tmp_path, capsys, value):
    assert lora_lab(["sweep", str(optuna_study(tmp_path)), f"hydra.sweeper.n_trials={value}", "dry_run=true"]) == 2
    one_error(capsys, "hydra.sweeper.n_trials: must be an integer >= 1")


HOLDER = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_another_live_sweeps_trial_is_not_a_failure(tmp_path, capsys):
    """Two sweeps of one study: the first to end used to exit 1 listing the other's live trials."""
    live, dead, done = (tmp_path / name for name in ("live", "dead", "done"))
    for run_dir, status in ((live, "running"), (dead, "running"), (done, "success")):
        run_dir.mkdir()
        (run_dir / "result.json").write_text(json.dumps({"schema_version": 2, "status": status}))
    (dead / ".lock-rank0").write_text("")  # a lock file nobody holds: its sweep was killed
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(live / ".lock-rank0")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert grid_outcome("s", [str(live), str(done)]) == 0
        err = capsys.readouterr().err
        assert "2/2" not in err and "1/2 trials succeeded; 1 running in another process" in err and "running elsewhere" in err
        assert grid_outcome("s", [str(live), str(dead), str(done)]) == 1  # the dead one is a failure of this sweep
        assert f"  running: {dead}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert grid_outcome("s", [str(live), str(done)]) == 1  # once its holder is gone, it is


def test_cancel_stopped_marks_only_this_sweeps_orphans(tmp_path):
    """Ctrl-C between trials (no trial handler active): the sweep side records its stopped trials
    cancelled, never another live sweep's trial, never an older record."""
    from lora_lab.sweeps.interrupt import cancel_stopped

    sweep = tmp_path / "sweep"
    dirs = {name: sweep / name for name in ("orphan", "live", "old", "self_recorded")}
    statuses = {"orphan": "running", "live": "running", "old": "running", "self_recorded": "cancelled"}
    for name, run_dir in dirs.items():
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps({"schema_version": 2, "status": statuses[name]}))
    old = time.time() - 3600
    os.utime(dirs["old"] / "result.json", (old, old))
    since = time.time() - 60
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(dirs["live"] / ".lock-rank0")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert sorted(cancel_stopped([sweep], since)) == sorted([str(dirs["orphan"]), str(dirs["self_recorded"])])
    finally:
        holder.kill()
        holder.wait()
    status = {name: json.loads((d / "result.json").read_text())["status"] for name, d in dirs.items()}
    assert status == {"orphan": "cancelled", "live": "running", "old": "running", "self_recorded": "cancelled"}
    assert "Ctrl-C" in json.loads((dirs["orphan"] / "result.json").read_text())["reason"]


def test_a_trial_whose_worker_died_on_ctrl_c_closes_its_process_entry_cancelled_with_its_time(tmp_path):
    """A sweep worker killed on Ctrl-C before its own handler wrote left its entry open; the rerun
    then called it ``killed`` with the time of its last heartbeat (0.013 s for a process that had
    trained for 87 s since resuming). The sweep now closes it: ``cancelled``, counted up to the run
    dir's last write, and the trial's total is the sum over its processes."""
    from lora_lab.resume.attempts import begin_attempt
    from lora_lab.sweeps.interrupt import cancel_stopped

    run_dir = tmp_path / "sweep" / "trial"
    run_dir.mkdir(parents=True)
    now = time.time()
    earlier = {"pid": 1, "started_unix": now - 1000, "wall_s": 500.0, "ended": "killed"}
    open_entry = {"pid": 2, "started_unix": now - 100, "wall_s": 0.013, "ended": None}
    (run_dir / "result.json").write_text(json.dumps({"schema_version": 2, "status": "running", "wall_time_s": 500.013,
                                                     "attempts": [earlier, open_entry]}))
    log = run_dir / "train.log"
    log.write_text("step 1570/3000\n")
    os.utime(log, (now - 13, now - 13))  # its last progress line, 87 s after it started
    os.utime(run_dir / "result.json", (now - 99, now - 99))  # its last heartbeat, at its start
    assert cancel_stopped([tmp_path / "sweep"], now - 300) == [str(run_dir)]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "cancelled"
    assert record["attempts"][0] == earlier
    assert record["attempts"][1]["ended"] == "cancelled"
    assert record["attempts"][1]["wall_s"] == pytest.approx(87.0, abs=0.01)
    assert record["wall_time_s"] == pytest.approx(587.0, abs=0.01)
    resumed = begin_attempt(record["attempts"])  # the rerun keeps what the sweep recorded
    assert [a["ended"] for a in resumed] == ["killed", "cancelled", None]


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_prints_a_line_and_cancels_its_trial(tmp_path):
    study = tmp_path / "grid2.yaml"
    study.write_text("""# Trials: 2
defaults:
  - train
  - override /backbone: tiny_bert
  - _self_
study: grid2
task: {train_size: 64, val_size: 32, test_size: 32, batch_size: 16, max_length: 16}
trainer: {max_epochs: 500}
test_after_fit: false
progress: {mode: none}
hydra:
  sweeper:
    params:
      seed: 0,1
""")
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lora_lab.cli", "sweep", str(study)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list((tmp_path / "runs").rglob("metrics.csv")):
            time.sleep(0.5)
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted: ")]
    assert lines == [f"interrupted: study grid2 stopped by Ctrl-C; 1 trial(s) recorded cancelled in {tmp_path / 'runs' / 'grid2'}; "
                     "rerun the same command to resume"]
    assert "Traceback" not in err
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("result.json")]
    assert [r["status"] for r in records] == ["cancelled"] and "SIGINT" in records[0]["reason"]  # recorded by the trial itself


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_optuna_study_shared_with_a_live_process_is_not_a_failure(runs, tmp_path, capsys):
    """Two processes on one Optuna study: the first to end does not count the other's RUNNING trial."""
    import optuna

    from lora_lab.sweeps.expand import plan_study
    from lora_lab.sweeps.optuna_plan import report_outcome, study_name
    from lora_lab.sweeps.optuna_study import LOCK_DIR, storage_url
    from lora_lab.sweeps.studies import find_study

    plan = plan_study(find_study(str(optuna_study(tmp_path))))
    name, url = study_name(plan), storage_url(plan.sweeper.get("storage"), plan.sweep_dir)
    Path(plan.sweep_dir).mkdir(parents=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.tell(study.ask(), 0.75)
    running = study.ask()  # RUNNING: the other process is training it
    claim = Path(plan.sweep_dir) / LOCK_DIR / f"{name}-trial{running.number}.lock"
    claim.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(claim)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert report_outcome(plan) == 0
        assert f"  running elsewhere: trial {running.number}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert report_outcome(plan) == 1  # nobody holds it any more: an interrupted trial of this study
    assert f"  running: trial {running.number}" in capsys.readouterr().err
