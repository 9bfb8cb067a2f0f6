"""The initialisation axis through ``lora-lab train``: an init the method does not have, or knobs the
init cannot work with, are one error line (exit 2) before anything is written; a data-driven init
trains and records in result.json how many calibration batches it read."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_train_cli import TINY, refused_in_own_process, refused_in_process, run_train


#: (overrides, a fragment of the one error line); in-process through `cli_main`, the first also in its own
#: ``lora-lab train`` process
INIT_ERRORS = [
    (["adapter=vera", "adapter.init=eva"], "error: adapter.init: 'eva' is not an init of method 'vera'; allowed: kaiming"),
    (["adapter.init=orthogonal", "adapter.r=3"], "error: adapter.r: init 'orthogonal' needs an even rank, got r=3; allowed: even r"),
    (["adapter.init=eva", "+adapter.init_batches=0"], "error: adapter.init_batches: must be a positive integer, got 0"),
    (["adapter.init=pissa", "+adapter.init_batches=16"],
     "error: adapter.init_batches: is read only by the data-driven inits (corda, corda_kpm, eva, lora_ga); init 'pissa' reads no calibration batches"),
    # tiny_bert is 32 wide: LoRA-GA's 2r = 34 singular directions do not fit, found before any weight loads
    (["adapter.init=lora_ga", "adapter.r=17"], "error: adapter.r: 17 (2r = 34) exceeds min(in, out) = 32 of "),
]


def test_lora_lab_train_refuses_an_init_error_in_one_line(tmp_path):
    overrides, expected = INIT_ERRORS[0]
    refused_in_own_process(tmp_path, [*TINY, *overrides], expected, cli=True)


@pytest.mark.parametrize("overrides,expected", INIT_ERRORS)
def test_init_errors_are_one_line_and_write_nothing(tmp_path, capsys, overrides, expected):
    refused_in_process(tmp_path, capsys, [*TINY, *overrides], expected)


def test_data_driven_init_trains_and_counts_its_calibration(tmp_path):
    args = ["debug=tiny", "task.max_train_samples=64", "task.max_eval_samples=16", "trainer.max_epochs=1",
            "adapter=dora", "adapter.init=eva", "+adapter.init_batches=3"]
    proc = run_train(tmp_path, *args, cli=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "runs").rglob("result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "success" and record["config"]["adapter"]["init"] == "eva"
    init = record["method_summary"]["init"]
    # batch 16 (debug=tiny): 3 batches of the 64 training examples; 4 adapted layers (q, v of 2 blocks)
    assert init["name"] == "eva" and init["calibration_batches"] == 3 and init["calibration_examples"] == 48
    assert init["eva_layers"] == 4 and 0 <= init["eva_layers_converged"] <= 4 and init["eva_tau"] == 0.99
