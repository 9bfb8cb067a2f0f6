"""A typo'd command on a trial that is still training changes nothing: the trial keeps its
``running`` record, and when it is then killed (SIGKILL: node failure, OOM killer) its rerun still
resumes from ``last.ckpt`` and ends bit-exactly where an uninterrupted run ends."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lora_lab.train import train
from tests.resume.exact import BASE, assert_same_outcome, result, tiny_cfg, train_cli


#: what the running trial itself rewrites at every checkpoint (its heartbeat: lora_lab.resume.attempts)
HEARTBEAT_FIELDS = ("written_at", "wall_time_s", "attempts")


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file a typo'd command could touch, with result.json less the trial's own heartbeat fields."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*")
             if p.is_file() and "checkpoints" not in p.parts and "logs" not in p.parts and p.name != "train.log"}
    record = json.loads(files.pop("result.json"))
    files["result.json"] = json.dumps({k: v for k, v in record.items() if k not in HEARTBEAT_FIELDS}, sort_keys=True).encode()
    return files


@pytest.mark.slow
def test_config_error_on_a_running_trial_then_kill_then_resume_bit_exact(tmp_path, capfd):
    reference = tmp_path / "ref"
    train(tiny_cfg(), reference)
    batches = tmp_path / "batches.txt"  # one line per fit that ends: the killed one writes nothing
    extra = ["resume.every_n_minutes=1e-6", "+callbacks.slow._target_=tests.resume.signal_at.Throttle", "+callbacks.slow.seconds=0.3",
             "+callbacks.count._target_=tests.resume.signal_at.CountBatches", f"+callbacks.count.path={batches}",
             f"paths.runs_root={tmp_path / 'runs'}", "study=kill"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "lora_lab.train", *BASE, *extra], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((tmp_path / "runs").rglob("checkpoints/last.ckpt")):
            assert proc.poll() is None and time.time() < deadline, "the run ended before writing a checkpoint"
            time.sleep(0.05)
        run_dir = next((tmp_path / "runs").rglob("checkpoints/last.ckpt")).parents[1]
        before = snapshot(run_dir)
        assert result(run_dir)["status"] == "running"
        capfd.readouterr()
        for bad, key in (("trainer.precision=bf16-true", "trainer.precision"), ("+optim.lrr=1e-3", "optim.lrr"),
                         ("task.max_train_samples=0", "task.max_train_samples")):
            assert train_cli([*BASE, *extra, bad]) == 2  # the same run name, a bad knob
            err = capfd.readouterr().err
            assert err.startswith(f"error: {key}: ") and err.count("\n") == 1, err
        assert proc.poll() is None, "the run finished before it could be killed"
        assert snapshot(run_dir) == before and result(run_dir)["status"] == "running"
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    killed_at = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < killed_at < 36
    assert not batches.exists()
    train(tiny_cfg(*extra), run_dir)  # the rerun (or SLURM requeue) resumes
    assert batches.read_text().split() == [str(36 - killed_at)]  # from the checkpoint, not from scratch
    assert_same_outcome(reference, run_dir)
