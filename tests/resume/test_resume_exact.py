"""A run stopped by a SLURM signal and resumed ends exactly where an uninterrupted run with the same
seed ends: same curve, metrics, step count and adapter weights, bit for bit (CPU). In-process
through `lora_lab.train.train`, the signal sent by the process to itself at a chosen step
(`tests.resume.signal_at.SignalAt`); the real-cluster version is tests/integration/test_slurm.py."""

import signal

import pytest
import torch

from lora_lab.resume.signals import RunPreempted
from lora_lab.train import train
from tests.resume.exact import STOP, assert_same_outcome, result, tiny_cfg


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    train(tiny_cfg(), run_dir)
    return run_dir


def stop_and_resume(run_dir, step, *extra, signal_name="SIGUSR2", when="batch"):
    stop = [STOP, f"+callbacks.stop.step={step}", f"+callbacks.stop.signal_name={signal_name}", f"+callbacks.stop.when={when}"]
    cfg = tiny_cfg(*extra, *stop)
    with pytest.raises(RunPreempted) as info:
        train(cfg, run_dir)
    stopped = {**result(run_dir), "checkpoint": torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)}
    train(cfg, run_dir)  # the "requeued job": same config, same run dir
    return info.value, stopped


def test_sigusr2_mid_epoch_resumes_bit_exact(reference, tmp_path):
    stop, stopped = stop_and_resume(tmp_path / "run", 5)
    assert stop.signum == signal.SIGUSR2 and stop.step == 5 and stop.requeue
    # not a submitit job: nobody requeues it, so the record says cancelled (a rerun resumes)
    assert stopped["status"] == "cancelled" and "SIGUSR2 at optimizer step 5" in stopped["reason"]
    assert [i["step"] for i in stopped["interruptions"]] == [5] and stopped["checkpoint"]["global_step"] == 5
    final = result(tmp_path / "run")
    assert [i["signal"] for i in final["interruptions"]] == ["SIGUSR2"]  # carried forward
    assert_same_outcome(reference, tmp_path / "run")


@pytest.mark.slow
def test_sigterm_at_epoch_end_waits_for_validation(reference, tmp_path):
    # step 12 ends epoch 0; its validation must run before the checkpoint, else the resume skips it
    stop, stopped = stop_and_resume(tmp_path / "run", 12, signal_name="SIGTERM")
    assert stop.signum == signal.SIGTERM and not stop.requeue and stop.step == 12
    assert [p["step"] for p in stopped["checkpoint"]["lora_lab_eval"]["curve"]] == [12]
    assert_same_outcome(reference, tmp_path / "run")


@pytest.mark.slow
def test_worker_processes_resume_the_same_data(reference, tmp_path):
    stop_and_resume(tmp_path / "run", 17, "+task.num_workers=2")
    assert_same_outcome(reference, tmp_path / "run")  # same numbers as the reference without workers


@pytest.mark.slow
@pytest.mark.parametrize("extra,step,when", [
    (["trainer.accumulate_grad_batches=2"], 7, "batch"),  # signal while gradients accumulate
    (["trainer.val_check_interval=0.5"], 6, "validation"),  # signal during a mid-epoch validation
])
def test_other_loop_shapes_resume_bit_exact(tmp_path, extra, step, when):
    train(tiny_cfg(*extra), tmp_path / "ref")
    stop, _ = stop_and_resume(tmp_path / "run", step, *extra, when=when)
    assert stop.step >= step
    assert_same_outcome(tmp_path / "ref", tmp_path / "run")


def other_adapters() -> list[str]:
    from pathlib import Path

    from lora_lab.config.compose import CONF_DIR

    return sorted(p.stem for p in (Path(CONF_DIR) / "adapter").glob("*.yaml") if p.stem != "lora")


@pytest.mark.slow
@pytest.mark.parametrize("adapter", other_adapters())  # AdaLoRA (allocator state), DoRA, PiSSA where merged
def test_every_adapter_method_resumes_bit_exact(tmp_path, adapter):
    choice = [f"adapter={adapter}"] + (["adapter.dropout=0.0"] if adapter in ("full", "bitfit") else [])  # no adapter branch to drop out
    train(tiny_cfg(*choice), tmp_path / "ref")
    stop_and_resume(tmp_path / "run", 17, *choice)
    assert_same_outcome(tmp_path / "ref", tmp_path / "run")


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_matches(reference, tmp_path):
    """No signal at all (node failure, OOM killer): with ``resume.every_n_minutes`` tiny, last.ckpt is
    written at every safe point; SIGKILL the run once it has one, rerun, and the result is the same."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.resume.exact import BASE

    extra = ["resume.every_n_minutes=1e-6", "+callbacks.slow._target_=tests.resume.signal_at.Throttle", "+callbacks.slow.seconds=0.05",
             f"paths.runs_root={tmp_path}", "study=kill"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same float reductions as here
    proc = subprocess.Popen([sys.executable, "-m", "lora_lab.train", *BASE, *extra], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list(tmp_path.rglob("checkpoints/last.ckpt")):
            assert proc.poll() is None and time.time() < deadline, "the run ended before writing a checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    run_dir = next(tmp_path.rglob("checkpoints/last.ckpt")).parents[1]
    killed_at = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < killed_at < 36 and result(run_dir)["status"] == "running"
    train(tiny_cfg(*extra), run_dir)
    assert_same_outcome(reference, run_dir)
