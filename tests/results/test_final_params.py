"""The table's parameter count comes from the method's own summary, never from its name."""

from pathlib import Path

from lora_lab.results.collect import final_adapter_params, trial_row


def test_final_count_is_the_summarys_whatever_the_method_is_called():
    assert final_adapter_params({}, 1024) == 1024  # a method whose count never changes (LoRA, DoRA, ...)
    assert final_adapter_params(None, 1024) == 1024
    assert final_adapter_params({"adapter_params_final": 680}, 1024) == 680
    shapes = {"q": [16, 16], "v": [16, 32]}
    assert final_adapter_params({"rank_pattern": {"q": 2, "v": 1}, "module_shapes": shapes}, 1024) == 2 * 33 + 1 * 49
    assert final_adapter_params({"rank_pattern": {"q": 2}}, 1024) is None  # a pattern without shapes: unknown, not r_init


def test_trial_row_reads_the_summary_of_an_unnamed_method():
    record = {"status": "success", "config": {"adapter": {"method": "a_new_pruning_method"}}, "params": {"adapter_params": 1024},
              "method_summary": {"adapter_params_final": 300}}
    row = trial_row(record, Path("/runs/x/result.json"))
    assert (row["adapter_params"], row["adapter_params_final"]) == (1024, 300)
