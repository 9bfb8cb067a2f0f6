"""Full fine-tuning and BitFit as methods of the adapter interface: exact trainable counts, a saved
"adapter" that restores the trained model, snapshots of full fine-tuning restricted to the analysed
matrices, one-line refusals of merge and PEFT export, and (slow) training through the CLI into
report rows."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lora_lab.adapters import METHODS, build_method, parse_config
from lora_lab.adapters.io import load_adapter, save_adapter
from lora_lab.cli import main as cli_main
from lora_lab.errors import ConfigError
from lora_lab.models.backbones import head_modules_for
from tests.helpers import tiny_bert, token_batch, train_classifier

ROOT = Path(__file__).resolve().parents[2]


def attached(method_name: str, **knobs):
    model = tiny_bert()
    method = build_method(parse_config({"method": method_name, **knobs}))
    report = method.attach(model, "bert", head_modules_for(model, "classification"))
    return model, method, report


def test_full_fine_tuning_trains_every_parameter():
    model, method, report = attached("full")
    every = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.classifier.parameters())
    assert report.trainable_params == report.total_params == every
    assert report.head_params == head and report.adapter_params == every - head
    assert all(p.requires_grad for p in model.parameters())
    assert report.adapted_modules == [f"bert.encoder.layer.{i}.attention.self.{k}" for i in (0, 1) for k in ("query", "value")]


def test_bitfit_trains_exactly_the_biases_and_the_head():
    model, method, report = attached("bitfit")
    biases = {n: p.numel() for n, p in model.named_parameters() if n.endswith(".bias") and not n.startswith("classifier.")}
    head = sum(p.numel() for p in model.classifier.parameters())
    # tiny BERT: q, k, v, attention-output, intermediate, output denses + 2 LayerNorms per layer, embeddings LN, pooler
    assert len(biases) == 2 * 8 + 2 and report.adapter_params == sum(biases.values())
    assert report.trainable_params == sum(biases.values()) + head
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(biases) | {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("name", ["full", "bitfit"])
def test_saved_adapter_restores_the_trained_model(name, tmp_path):
    model, method, _ = attached(name)
    train_classifier(model, steps=3, lr=1e-2, seed=0)
    save_adapter(tmp_path / "a", model, method, {"name": "tiny"})
    fresh = tiny_bert()
    load_adapter(tmp_path / "a", fresh)
    x = token_batch()
    assert torch.equal(model(input_ids=x).logits, fresh(input_ids=x).logits)


def test_full_snapshot_keeps_only_the_target_matrices(tmp_path):
    from lora_lab.analysis.snapshots import write_snapshot
    from safetensors.torch import load_file

    model, method, _ = attached("full", targets="qv")
    write_snapshot(tmp_path / "step_0", model, method, {}, 0)
    saved = load_file(str(tmp_path / "step_0" / "adapter_model.safetensors"))
    assert set(saved) == {f"bert.encoder.layer.{i}.attention.self.{k}.weight" for i in (0, 1) for k in ("query", "value")}
    assert torch.equal(saved["bert.encoder.layer.1.attention.self.value.weight"], model.bert.encoder.layer[1].attention.self.value.weight)


@pytest.mark.parametrize("name", ["full", "bitfit"])
def test_merge_and_closed_form_are_refused_in_one_line(name):
    _, method, _ = attached(name)
    for call in (method.merge, lambda: method.closed_form_params({"q": (32, 32)})):
        with pytest.raises(ConfigError) as info:
            call()
        text = str(info.value)
        assert info.value.key == "adapter.method" and "\n" not in text and ("allowed:" in text or "params.adapter_params in result.json" in text)


def test_reference_methods_are_first_in_tables_and_need_no_dropout():
    from lora_lab.results.names import method_order

    order = method_order()
    assert order[:4] == ["Full FT", "BitFit", "LoRA", "rsLoRA"]
    assert METHODS["full"].reference_row and not METHODS["lora"].reference_row
    with pytest.raises(ConfigError, match="adapter.dropout: 0.1: method 'full' has no adapter branch"):
        parse_config({"method": "full", "dropout": 0.1})


@pytest.mark.slow
def test_both_train_through_the_cli_and_are_report_rows(tmp_path, capsys):
    from lora_lab.results.report import report

    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", "debug=tiny", f"paths.runs_root={runs}", "study=ref", "progress.mode=none",
                           "logger=none", "task.max_train_samples=64", "adapter=lora,full,bitfit", "--multirun"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    records = {json.loads(p.read_text())["config"]["adapter"]["method"]: (p.parent, json.loads(p.read_text())) for p in runs.rglob("result.json")}
    assert set(records) == {"lora", "full", "bitfit"} and all(r["status"] == "success" for _, r in records.values())
    from lora_lab.models.backbones import build_backbone, parse_backbone_config

    recorded = records["full"][1]
    model = build_backbone(parse_backbone_config(recorded["config"]["backbone"]), "classification", recorded["task_spec"]["num_labels"])
    every = sum(p.numel() for p in model.parameters())
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias") and not n.startswith("classifier."))
    head = sum(p.numel() for p in model.classifier.parameters())
    assert records["full"][1]["params"]["trainable_params"] == every
    assert records["bitfit"][1]["params"]["trainable_params"] == biases + head
    assert records["full"][1]["config"]["optim"]["lr"] == 5e-5 and records["bitfit"][1]["config"]["optim"]["lr"] == 1e-3  # method_lr
    md = report([runs], out=tmp_path / "out", plots=False)["markdown"]
    rows = [line.split(" | ")[0].lstrip("| ") for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows.index("Full FT") < rows.index("BitFit") < rows.index("LoRA")
    capsys.readouterr()
    for method in ("full", "bitfit"):
        assert cli_main(["export", str(records[method][0]), str(tmp_path / f"peft_{method}"), "--format", "peft"]) == 2
        assert cli_main(["merge-adapters", str(tmp_path / f"merged_{method}"), str(records[method][0] / "adapter")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "no adapter" in err.splitlines()[1] and not (tmp_path / f"merged_{method}").exists()


def test_bitfit_on_a_backbone_without_biases_is_refused_before_any_run_dir(tmp_path):
    """LLaMA's linear layers have no bias terms: BitFit would train nothing. The gate attaches the method
    to the meta-device model, so this is one line, exit 2, and nothing is written (no failed record)."""
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", "train", "debug=tiny", "backbone=tiny_llama", "adapter=bitfit",
                           f"paths.runs_root={runs}", "study=ref"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert errors[0].startswith("error: adapter.method: 'bitfit' trains no parameter of this llama")
    assert not runs.exists()
