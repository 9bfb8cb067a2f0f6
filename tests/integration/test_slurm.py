"""On a real SLURM cluster (`.ci/slurm_cluster.sh up`: slurmctld + slurmd + munge on localhost):
a study through hydra-submitit-launcher completes with one result.json per trial and a failing trial
does not take the others down; a job stopped by the timeout signal (USR2, submitit requeues it), one
requeued with ``scontrol requeue`` (SIGTERM, SLURM requeues it), one preempted by a job in a
higher-priority partition, and a two-rank DDP job stopped by the timeout signal all resume and end
bit-identical to an uninterrupted run with the same seed.

Marked ``slurm``: `.ci/test` brings the cluster up and runs them; without a reachable cluster they
fail (not skip) when selected."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.resume.exact import assert_same_outcome

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[2]
# where `.ci/slurm_cluster.sh up` puts this checkout's cluster (unless SLURM_CONF says otherwise)
DEFAULT_CONF = Path(os.environ.get("LORA_LAB_SLURM_DIR", f"/tmp/lora_lab_slurm-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}")) / "slurm.conf"
RUN = "synthetic/tiny_bert/lora-r8-a16-kaiming-qv"


@pytest.fixture(scope="module")
def slurm_env():
    env = dict(os.environ)
    if "SLURM_CONF" not in env and DEFAULT_CONF.is_file():
        env["SLURM_CONF"] = str(DEFAULT_CONF)
    if shutil.which("sbatch") is None:
        pytest.fail("sbatch not found: install and start the test cluster (bash .ci/slurm_cluster.sh install && bash .ci/slurm_cluster.sh up)")
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or not probe.stdout.strip():
        pytest.fail(f"no SLURM cluster reachable (sinfo: {probe.stderr.strip() or 'no nodes'}); run: bash .ci/slurm_cluster.sh up")
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def multirun(env, runs: Path, *overrides: str, timeout: float = 900) -> subprocess.Popen:
    """Start `lora_lab.train --multirun` (the submitting process blocks until every job ends)."""
    cmd = [sys.executable, "-m", "lora_lab.train", "--multirun", f"paths.runs_root={runs}", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("the multirun did not finish in time:\n" + out[-4000:])
    assert proc.returncode == 0, out[-4000:]
    return out


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


TINY = ["debug=tiny", "logger=none", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1"]


def test_study_through_submitit_slurm_and_a_failing_trial(slurm_env, tmp_path):
    runs = tmp_path / "runs"
    out = finish(multirun(
        slurm_env, runs, "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=20", "study=st", *TINY,
        "optim.lr=0.001,0.002,0.003",
        "+callbacks.boom._target_=tests.resume.signal_at.RaiseIfLr", "+callbacks.boom.lr=0.003",
    ))
    records = {lr: read(runs / "st" / RUN / f"lr{lr}-seed0" / "result.json") for lr in ("0.001", "0.002", "0.003")}
    assert all(records.values()), out[-3000:]
    assert records["0.001"]["status"] == records["0.002"]["status"] == "success"
    assert records["0.003"]["status"] == "failed" and records["0.003"]["reason"] == "RuntimeError: injected failure for lr=0.003"
    jobs = {r["job"]["slurm_array_task"] for r in records.values()}
    assert len(jobs) == 3 and all(j and "_" in j for j in jobs)  # three tasks of one SLURM array
    assert (runs / "st" / RUN / "lr0.001-seed0" / "adapter" / "adapter_model.safetensors").is_file()


LONG = ["debug=tiny", "logger=none", "task.max_train_samples=96", "task.max_eval_samples=32", "task.batch_size=8",
        "trainer.max_epochs=4", "adapter.dropout=0.1",  # 48 optimizer steps, dropout on (RNG state matters)
        "+callbacks.slow._target_=tests.resume.signal_at.Throttle", "+callbacks.slow.seconds=0.2"]


def test_timeout_signal_and_scontrol_requeue_resume_bit_exact(slurm_env, tmp_path):
    runs = tmp_path / "runs"
    proc = multirun(
        slurm_env, runs, "hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
        "hydra.launcher.timeout_min=30", "hydra.launcher.setup=['export OMP_NUM_THREADS=1']", *LONG,
        "study=ref,timeout,requeue",
    )
    run_dir = {s: runs / s / f"{RUN}-dropout0.1" / "lr0.0005-seed0" for s in ("ref", "timeout", "requeue")}
    action = {"timeout": ["scancel", "--signal=USR2"], "requeue": ["scontrol", "requeue"]}
    signalled = {}
    deadline = time.time() + 600
    while len(signalled) < 2 and proc.poll() is None and time.time() < deadline:
        for study, cmd in action.items():
            record = read(run_dir[study] / "result.json")
            # mid-training: the first epoch's checkpoint exists, training goes on for 3 more epochs
            if study not in signalled and record and record["status"] == "running" and (run_dir[study] / "checkpoints/last.ckpt").is_file():
                job = record["job"]["slurm_array_task"]
                subprocess.run([*cmd, job], env=slurm_env, check=True, timeout=60)
                signalled[study] = job
        time.sleep(0.2)
    out = finish(proc)
    assert set(signalled) == {"timeout", "requeue"}, out[-3000:]

    for study, signal_name in (("timeout", "SIGUSR2"), ("requeue", "SIGTERM")):
        record = read(run_dir[study] / "result.json")
        assert record["status"] == "success", out[-3000:]
        stops = record["interruptions"]
        assert [s["signal"] for s in stops] == [signal_name] and 12 <= stops[0]["step"] < 48, stops
        assert stops[0]["slurm_array_task"] == record["job"]["slurm_array_task"] == signalled[study]  # same array task ...
        assert record["job"]["slurm_restart_count"] == "1"  # ... requeued once
        assert_same_outcome(run_dir["ref"], run_dir[study])
    assert not read(run_dir["ref"] / "result.json")["interruptions"]


def test_ddp_job_preempted_resumes_bit_exact(slurm_env, tmp_path):
    """slurm_ddp's shape on CPU: two tasks of one job are the two DDP ranks (gloo); the timeout signal
    reaches both, they agree on the step, save once, requeue once, and resume in step."""
    runs = tmp_path / "runs"
    ddp = ["hydra/launcher=slurm_ddp", "hydra.launcher.gpus_per_node=null", "hydra.launcher.tasks_per_node=2",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=4", "hydra.launcher.timeout_min=30",
           "hydra.launcher.setup=['export OMP_NUM_THREADS=1']",
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
    proc = multirun(slurm_env, runs, *ddp, *LONG, "study=ddpref,ddpstop")
    run_dir = {s: runs / s / f"{RUN}-dropout0.1" / "lr0.0005-seed0" for s in ("ddpref", "ddpstop")}
    job, deadline = None, time.time() + 600
    while job is None and proc.poll() is None and time.time() < deadline:
        record = read(run_dir["ddpstop"] / "result.json")
        if record and record["status"] == "running" and (run_dir["ddpstop"] / "checkpoints/last.ckpt").is_file():
            job = record["job"]["slurm_array_task"]
            subprocess.run(["scancel", "--signal=USR2", job], env=slurm_env, check=True, timeout=60)
        time.sleep(0.2)
    out = finish(proc)
    assert job, out[-3000:]
    record = read(run_dir["ddpstop"] / "result.json")
    assert record["status"] == "success" and record["job"]["slurm_restart_count"] == "1", out[-3000:]
    stops = record["interruptions"]
    # 96 examples over 2 ranks, batch 8: 6 steps per epoch, 24 in all; the first checkpoint is at step 6
    assert [s["signal"] for s in stops] == ["SIGUSR2"] and 6 <= stops[0]["step"] < 24, stops
    assert read(run_dir["ddpref"] / "result.json")["optimizer_steps"] == 24
    assert_same_outcome(run_dir["ddpref"], run_dir["ddpstop"])


def test_preemption_by_a_higher_priority_partition_resumes_bit_exact(slurm_env, tmp_path):
    """The shared-cluster case itself: a job in the `urgent` partition (higher PriorityTier,
    PreemptMode=REQUEUE on `debug`) takes every CPU; SLURM preempts our running trial (SIGTERM) and
    requeues it; the requeued job resumes and ends as an uninterrupted run does (the reference runs
    here, in-process, with the same single thread as the job)."""
    from lora_lab.train import train
    from tests.resume.exact import tiny_cfg

    runs = tmp_path / "runs"
    proc = multirun(slurm_env, runs, "hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
                    "hydra.launcher.partition=debug", "hydra.launcher.setup=['export OMP_NUM_THREADS=1']", *LONG, "study=preempted")
    run_dir = runs / "preempted" / f"{RUN}-dropout0.1" / "lr0.0005-seed0"
    cpus = subprocess.run(["sinfo", "-h", "-p", "urgent", "-o", "%c"], env=slurm_env, capture_output=True, text=True, check=True).stdout.split()[0]
    deadline, urgent = time.time() + 600, None
    while urgent is None and proc.poll() is None and time.time() < deadline:
        record = read(run_dir / "result.json")
        if record and record["status"] == "running" and (run_dir / "checkpoints/last.ckpt").is_file():
            urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "-c", cpus, "--mem=100M", "-o", str(tmp_path / "urgent.out"),
                                     "--wrap", "sleep 3"], env=slurm_env, capture_output=True, text=True, check=True).stdout.strip()
        time.sleep(0.2)
    train(tiny_cfg(*[o for o in LONG if o.startswith(("task.", "trainer.", "adapter."))]), tmp_path / "reference")
    out = finish(proc)
    assert urgent, out[-3000:]
    record = read(run_dir / "result.json")
    assert record["status"] == "success" and record["job"]["slurm_restart_count"] == "1", out[-3000:]
    assert [s["signal"] for s in record["interruptions"]] == ["SIGTERM"] and 12 <= record["interruptions"][0]["step"] < 48
    assert_same_outcome(tmp_path / "reference", run_dir)
