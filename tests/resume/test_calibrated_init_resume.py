"""A data-driven init calibrates once per trial: a run stopped and resumed is not handed calibration
batches again, gets the init's summary back from its checkpoint, and ends bit for bit where an
uninterrupted run ends (the residual base and (A0, B0) come back from the frozen state)."""

from __future__ import annotations

import json

import pytest
from lora_lab.resume.signals import RunPreempted
from lora_lab.train import train

from tests.resume.exact import STOP, assert_same_outcome, result, tiny_cfg

RECORD = "+callbacks.calibration._target_=tests.resume.signal_at.RecordCalibration"


@pytest.mark.parametrize("adapter", [
    ["adapter.init=lora_ga", "+adapter.init_batches=3"],
    pytest.param(["adapter=dora", "adapter.init=corda", "+adapter.init_batches=2"], marks=pytest.mark.slow),
    pytest.param(["adapter.init=eva", "+adapter.init_batches=4"], marks=pytest.mark.slow),
])
def test_resumed_run_does_not_calibrate_again(tmp_path, adapter):
    log = tmp_path / "calibration.jsonl"
    record = [RECORD, f"+callbacks.calibration.path={log}"]
    reference = tmp_path / "reference"
    train(tiny_cfg(*adapter, *record), reference)
    stop = [STOP, "+callbacks.stop.step=5"]
    run = tmp_path / "run"
    with pytest.raises(RunPreempted):
        train(tiny_cfg(*adapter, *record, *stop), run)
    train(tiny_cfg(*adapter, *record, *stop), run)  # the requeued job
    fits = [json.loads(line) for line in log.read_text().splitlines()]
    assert [f["handed_batches"] for f in fits] == [True, True, False]  # reference, first attempt, resumed
    batches = int(adapter[-1].split("=")[1])
    summary = fits[0]["init_summary"]
    assert summary["name"] == adapter[-2].split("=")[1] and summary["calibration_batches"] == batches
    assert summary["calibration_examples"] == 8 * batches  # task.batch_size=8 in tests.resume.exact
    assert fits[1]["init_summary"] == fits[2]["init_summary"] == summary  # restored, not recomputed
    assert result(run)["method_summary"]["init"] == result(reference)["method_summary"]["init"] == summary
    assert_same_outcome(reference, run)
