"""Adapter snapshots (`lora_lab.analysis.snapshots`): the schedule is checked before anything runs,
a run lists what it kept, a full fine-tuning snapshot keeps only its target matrices, and a run
stopped and resumed keeps the same steps with the same bytes as an uninterrupted one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lora_lab.analysis.snapshot_schedule import analysis_options, snapshot_due
from lora_lab.errors import ConfigError
from lora_lab.resume.signals import RunPreempted
from lora_lab.train import train
from tests.resume.exact import STOP, assert_same_outcome, result, tiny_cfg

ROOT = Path(__file__).resolve().parents[2]
#: steps 0, 5 (the stop step below), 12, 13, 24, 36 of the 36-step tiny run
SCHEDULE = ["analysis.snapshot_steps=[0,5,13]", "analysis.snapshot_every=12"]


def test_schedule_union_of_steps_and_every():
    options = analysis_options({"snapshot_steps": [13, 0, 5, 5], "snapshot_every": 12})
    assert options == {"snapshot_steps": [0, 5, 13], "snapshot_every": 12}
    assert [s for s in range(40) if snapshot_due(s, options)] == [0, 5, 12, 13, 24, 36]
    assert analysis_options(None) == {"snapshot_steps": [], "snapshot_every": None}


@pytest.mark.parametrize("raw,key,words", [
    ({"snapshot_steps": [0, -5]}, "analysis.snapshot_steps", "integers >= 0"),
    ({"snapshot_steps": "often"}, "analysis.snapshot_steps", "a list of optimizer steps"),
    ({"snapshot_every": 0}, "analysis.snapshot_every", "positive integer"),
    ({"snapshot_evry": 5}, "analysis.snapshot_evry", "did you mean `snapshot_every`"),
])
def test_bad_schedule_is_one_config_error(raw, key, words):
    with pytest.raises(ConfigError) as info:
        analysis_options(raw)
    assert info.value.key == key and words in str(info.value) and "\n" not in str(info.value)


def test_bad_schedule_on_the_command_line_exits_2_before_any_run_dir(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", "debug=tiny", f"paths.runs_root={tmp_path}", "analysis.snapshot_every=-3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: analysis.snapshot_every: -3; allowed: null or a positive integer") and not any(tmp_path.iterdir())


def snapshot_bytes(run_dir: Path) -> dict[str, bytes]:
    root = run_dir / "snapshots"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_stopped_and_resumed_run_keeps_the_same_snapshots_bit_for_bit(tmp_path):
    reference = tmp_path / "ref"
    train(tiny_cfg(*SCHEDULE), reference)
    expected = [{"step": s, "path": f"snapshots/step_{s}"} for s in (0, 5, 12, 13, 24, 36)]
    assert result(reference)["snapshots"] == expected
    run = tmp_path / "run"
    cfg = tiny_cfg(*SCHEDULE, STOP, "+callbacks.stop.step=5")
    with pytest.raises(RunPreempted):
        train(cfg, run)
    before = {p.name: p.stat().st_mtime_ns for p in (run / "snapshots").iterdir()}
    assert set(before) <= {"base_weights.safetensors", "step_0", "step_5"} and "step_0" in before
    train(cfg, run)  # the rerun resumes from the step-5 checkpoint
    assert_same_outcome(reference, run)
    assert result(run)["snapshots"] == expected  # none lost, none twice
    assert snapshot_bytes(run) == snapshot_bytes(reference)  # same steps, same bytes
    after = {p.name: p.stat().st_mtime_ns for p in (run / "snapshots").iterdir()}
    assert all(after[name] == mtime for name, mtime in before.items())  # what existed was not rewritten
    meta = json.loads((run / "snapshots/step_13/adapter_config.json").read_text())
    assert meta["snapshot"] == {"step": 13, "complete_adapter": True}
    # step 0 is the init: LoRA's B is zero there; the final snapshot equals adapter_last/ (the final state)
    step0 = load_file(str(run / "snapshots/step_0/adapter_model.safetensors"))
    assert all(float(v.abs().max()) == 0.0 for k, v in step0.items() if k.endswith("lora_B"))
    last = load_file(str(run / "adapter_last/adapter_model.safetensors")) if (run / "adapter_last").is_dir() else load_file(str(run / "adapter/adapter_model.safetensors"))
    final = load_file(str(run / "snapshots/step_36/adapter_model.safetensors"))
    assert set(final) == set(last) and all(torch.equal(final[k], last[k]) for k in final)


@pytest.mark.slow
def test_forced_rerun_starts_its_snapshots_afresh(tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg("analysis.snapshot_steps=[7]", "trainer.max_epochs=1"), run)
    assert [s["step"] for s in result(run)["snapshots"]] == [7]
    train(tiny_cfg("analysis.snapshot_steps=[3]", "trainer.max_epochs=1", "force=true"), run)
    assert [s["step"] for s in result(run)["snapshots"]] == [3] and not (run / "snapshots/step_7").exists()
