"""AdaLoRA save/load, exports to PEFT (AdaLoRA and plain LoRA), rank heatmap and run artifacts."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from lora_lab.adapters.adalora_export import export_peft_adalora, main as export_main
from lora_lab.adapters.io import load_adapter, read_adapter_meta, save_adapter
from lora_lab.adapters.rank_heatmap import plot_rank_heatmap, rank_heatmap_data
from tests.adapters.adalora_utils import X, bert_with_adalora, gpt2_with_adalora, single_thread, train  # noqa: F401

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    # PEFT's generic LoRA check does not know that AdaLoRA's rank_pattern holds lora_E masks
    pytest.mark.filterwarnings("ignore:The following rank_pattern keys did not match"),
]
T = 14


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BERT trained past T - tfinal with all six matrix kinds adapted, saved once."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base, model, method = bert_with_adalora(r=6, target_r=2, tinit=1, tfinal=3, delta_t=1, targets="attn_mlp")
        train(model, method, T)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("adalora") / "adapter"
    save_adapter(out, model, method, backbone={"name": "tiny-bert-random", "family": "classification"})
    return base, model, method, out


def test_saved_adapter_reloads_with_identical_eval_logits_and_pattern(trained):
    base, model, method, out = trained
    pattern = method.rank_pattern()
    assert sum(pattern.values()) == 2 * 12 and len(set(pattern.values())) > 1  # an uneven allocation
    reloaded_model = copy.deepcopy(base)
    reloaded = load_adapter(out, reloaded_model)
    assert torch.equal(reloaded_model(input_ids=X).logits, model(input_ids=X).logits)
    assert reloaded.rank_pattern() == pattern
    for name, layer in reloaded.layers.items():
        assert layer.scaling == method.layers[name].scaling == pytest.approx(8 / 6, rel=1e-5)  # alpha / r_init
    meta = read_adapter_meta(out)
    assert meta["summary"]["rank_pattern"] == pattern and meta["summary"]["total_rank"] == 24
    tensors = load_file(str(out / "adapter_model.safetensors"))
    assert {k: int(v.sum()) for k, v in tensors.items() if k.endswith(".rank_mask")} == {f"{k}.rank_mask": v for k, v in pattern.items()}
    assert reloaded.allocator.final and reloaded.allocator.history == method.allocator.history


def test_export_to_peft_adalora_loads_in_peft_with_identical_logits(trained, tmp_path):
    from peft import PeftModel

    base, model, method, out = trained
    export_peft_adalora(out, tmp_path / "peft", task_type="SEQ_CLS")
    cfg = json.loads((tmp_path / "peft/adapter_config.json").read_text())
    assert cfg["peft_type"] == "ADALORA" and cfg["init_r"] == 6 and cfg["total_step"] == T
    tensors = load_file(str(tmp_path / "peft/adapter_model.safetensors"))
    for name, kept in method.rank_pattern().items():  # PEFT's resized layout
        assert sum(cfg["rank_pattern"][f"{name}.lora_E"]) == kept
        assert tensors[f"base_model.model.{name}.lora_A"].shape[0] == kept
        assert tensors[f"base_model.model.{name}.lora_B"].shape[1] == kept
        assert tensors[f"base_model.model.{name}.lora_E"].shape == (kept, 1)
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "peft").eval()
    # same arithmetic except that the dropped (zero) triplets are no longer summed over: fp32 rounding only
    torch.testing.assert_close(peft_model(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-6, atol=1e-7)


def test_generic_export_command_writes_peft_adalora(trained, tmp_path):
    """``lora-lab export RUN_DIR --format peft OUT`` dispatches AdaLoRA runs to the AdaLoRA exporter."""
    from lora_lab.adapters.peft_export import export_run
    from peft import PeftModel

    base, model, method, out = trained
    export_run(out.parent, "peft", tmp_path / "peft")  # RUN_DIR holding adapter/
    cfg = json.loads((tmp_path / "peft/adapter_config.json").read_text())
    assert cfg["peft_type"] == "ADALORA" and cfg["task_type"] == "SEQ_CLS" and cfg["modules_to_save"] == ["classifier"]
    provenance = json.loads((tmp_path / "peft/lora_lab_export.json").read_text())
    assert provenance["exported_r"] == 6 and provenance["method"] == "adalora"
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "peft").eval()
    torch.testing.assert_close(peft_model(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-6, atol=1e-7)


def test_export_to_plain_lora_with_per_module_ranks(trained, tmp_path):
    from peft import PeftModel

    base, model, method, out = trained
    export_main([str(out), str(tmp_path / "lora"), "--to", "lora", "--task-type", "SEQ_CLS"])
    cfg = json.loads((tmp_path / "lora/adapter_config.json").read_text())
    nonzero = {k: v for k, v in method.rank_pattern().items() if v > 0}
    assert cfg["peft_type"] == "LORA" and cfg["rank_pattern"] == nonzero and cfg["alpha_pattern"] == nonzero
    assert sorted(cfg["target_modules"]) == sorted(nonzero)  # rank-0 modules are left out
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "lora").eval()
    for name, k in nonzero.items():
        assert peft_model.base_model.model.get_submodule(name).lora_A["default"].weight.shape == (k, method.layers[name].in_features)
    torch.testing.assert_close(peft_model(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-5, atol=1e-6)


def test_export_keeps_triplets_revived_after_the_last_mask(tmp_path):
    base, model, method = gpt2_with_adalora(r=4, target_r=2, tinit=1, tfinal=3, delta_t=5)
    train(model, method, T, steps=8)  # mid-schedule: masks exist, triplets may revive before the next masking
    with torch.no_grad():
        layer = next(iter(method.layers.values()))
        off = (~layer.rank_mask).nonzero().view(-1)
        assert off.numel() > 0
        layer.lora_E[off[0]] = 0.5  # a revived triplet
    save_adapter(tmp_path / "a", model, method)
    from peft import PeftModel

    export_peft_adalora(tmp_path / "a", tmp_path / "p", task_type="SEQ_CLS")
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "p").eval()
    torch.testing.assert_close(peft_model(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # the check can fail: dropping the revived triplet changes the logits
        layer.lora_E[off[0]] = 0.0
    assert not torch.allclose(peft_model(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-6, atol=1e-7)


def test_export_rejects_other_methods(tmp_path):
    from lora_lab.adapters import build_method, parse_config
    from tests.helpers import tiny_bert

    model = tiny_bert()
    lora = build_method(parse_config({"method": "lora"}))
    lora.attach(model, model_type="bert", head_modules=["classifier"])
    save_adapter(tmp_path / "l", model, lora)
    with pytest.raises(ValueError, match="not adalora"):
        export_peft_adalora(tmp_path / "l", tmp_path / "x")


# ----- heatmap ---------------------------------------------------------------------------------
def test_rank_heatmap_data_layers_by_kind():
    pattern = {
        "bert.encoder.layer.0.attention.self.query": 3,
        "bert.encoder.layer.0.attention.self.value": 1,
        "bert.encoder.layer.1.attention.self.query": 0,
        "bert.encoder.layer.1.output.dense": 5,
        "bert.encoder.layer.10.intermediate.dense": 2,
    }
    rows, cols, values = rank_heatmap_data(pattern, "bert")
    assert rows == ["0", "1", "10"] and cols == ["q", "v", "ffn_in", "ffn_out"]
    nan = float("nan")
    expected = [[3, 1, nan, nan], [0, nan, nan, 5], [nan, nan, 2, nan]]
    for got_row, exp_row in zip(values, expected):
        for got, exp in zip(got_row, exp_row):
            assert (got != got and exp != exp) or got == exp


def test_rank_heatmap_gpt2_fused_qkv_column_and_plot(tmp_path):
    pattern = {"transformer.h.0.attn.c_attn": 4, "transformer.h.0.mlp.c_fc": 2, "transformer.h.1.attn.c_attn": 1}
    rows, cols, _ = rank_heatmap_data(pattern, "gpt2")
    assert rows == ["0", "1"] and cols == ["q,k,v", "ffn_in"]
    path = plot_rank_heatmap(pattern, "gpt2", tmp_path / "fig.png", r_init=6)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_rank_heatmap_refuses_ambiguous_cells():
    with pytest.raises(ValueError, match="separately"):
        rank_heatmap_data({"encoder.block.0.SelfAttention.q": 1, "decoder.block.0.SelfAttention.q": 2}, "t5")


def test_save_artifacts_writes_heatmap_and_budget_history(trained, tmp_path):
    _, _, method, _ = trained
    paths = method.save_artifacts(tmp_path)
    assert {p.name for p in paths} == {"adalora_rank_heatmap.png", "adalora_budget_history.json"}
    hist = json.loads((tmp_path / "adalora_budget_history.json").read_text())
    assert [(a["step"], a["budget"], a["kept"]) for a in hist["allocations"]] == [tuple(h) for h in method.allocator.history]
    assert (tmp_path / "adalora_rank_heatmap.png").stat().st_size > 1000


def test_summary_is_json_ready_and_complete(trained):
    _, _, method, _ = trained
    summary = json.loads(json.dumps(method.summary()))
    assert summary["rank_pattern"] == method.rank_pattern()
    assert summary["budget_init"] == 72 and summary["budget_target"] == summary["budget_final"] == summary["total_rank"] == 24
    assert summary["total_steps"] == T and summary["final_pattern_fixed"] is True and summary["model_type"] == "bert"


def test_summary_counts_the_parameters_of_the_final_rank_pattern(trained):
    """The report's AdaLoRA #Params: kept triplets x (in + out + 1), from the method's summary; a record
    without it is never guessed from the allocation (AdaLoRA's count changes in training)."""
    from lora_lab.results.collect import final_adapter_params

    _, _, method, _ = trained
    summary = json.loads(json.dumps(method.summary()))
    kept = sum(int(layer.rank_mask.sum()) * (layer.lora_A.shape[1] + layer.lora_B.shape[0] + 1) for layer in method.layers.values())
    allocated = sum(p.numel() for layer in method.layers.values() for _, p in layer.adapter_parameters())
    assert list(summary["module_shapes"]) == list(method.layers)
    for name, layer in method.layers.items():
        assert summary["module_shapes"][name] == [layer.lora_A.shape[1], layer.lora_B.shape[0]]
    record = {"method_summary": summary, "params": {"adapter_params": allocated}}
    assert summary["adapter_params_final"] == kept == method.final_adapter_params() == final_adapter_params(record, "adalora")
    assert allocated == sum(6 * (i + o + 1) for i, o in summary["module_shapes"].values()) > kept  # r_init = 6 allocated
    del summary["adapter_params_final"]  # an older result.json
    assert final_adapter_params(record, "adalora") is None
    assert final_adapter_params(record, "lora") == allocated  # a fixed-count method: the allocation is exact


def test_merge_adapters_folds_the_adalora_update_into_a_plain_model(trained):
    from lora_lab.adapters.compose import merge_adapters

    base, model, method, out = trained
    merged = copy.deepcopy(base)
    merge_adapters(merged, [(out, 1.0)], head_from=0)
    torch.testing.assert_close(merged(input_ids=X).logits, model(input_ids=X).logits, rtol=1e-5, atol=1e-6)
