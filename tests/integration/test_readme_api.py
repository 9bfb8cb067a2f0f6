"""The README's Python API example, executed as written (so it cannot rot): one training step on real
MiniLM, then the saved adapter, the PEFT export and the merged plain HF model all give the logits of
the trained model."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_api_example_runs_and_its_outputs_agree(tmp_path, monkeypatch, capsys):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from lora_lab.adapters.io import load_adapter

    code = readme_api_block()
    assert len(code.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    report, batch, model = ns["report"], ns["batch"], ns["model"]
    assert capsys.readouterr().out.strip() == f"{report.trainable_params:,} trainable of {report.total_params:,} parameters"
    assert report.trainable_params == report.adapter_params + report.head_params and report.adapter_params == 6 * 2 * 8 * (384 + 384)

    with torch.no_grad():
        trained = model.eval()(**batch).logits
        merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out/merged").eval()
        assert not any("lora" in k or "base_layer" in k for k in merged.state_dict())  # a plain HF model
        torch.testing.assert_close(merged(**batch).logits, trained, atol=1e-5, rtol=1e-4)

        fresh = AutoModelForSequenceClassification.from_pretrained(ns["path"], num_labels=2)
        load_adapter(tmp_path / "out/adapter", fresh)
        torch.testing.assert_close(fresh.eval()(**batch).logits, trained, atol=1e-6, rtol=1e-5)

        base = AutoModelForSequenceClassification.from_pretrained(ns["path"], num_labels=2)
        peft_model = PeftModel.from_pretrained(base, tmp_path / "out/peft").eval()
        torch.testing.assert_close(peft_model(**batch).logits, trained, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(trained, AutoModelForSequenceClassification.from_pretrained(ns["path"], num_labels=2).eval()(**batch).logits)
