"""`python benchmarks/gpu_suite.py --tiny` (CPU) so the GPU suite never rots: every row is measured
and the report has its ratios."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_suite_tiny_runs_every_row(tmp_path, monkeypatch):
    # in this process (its imports are shared with the test session), as `python benchmarks/gpu_suite.py --tiny`
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    suite = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_suite", suite)  # dataclasses look their module up there
    spec.loader.exec_module(suite)
    out = tmp_path / "gpu_cpu-tiny.md"
    assert suite.main(["--tiny", "--out", str(out)]) == 0
    text = out.read_text()
    rows = re.findall(r"^\| (tiny \w+) \| (\w+) \| (ours|peft) \| ([\d.]+) \| (\d+) \| n/a \|", text, flags=re.M)
    measured = {(setup, method, impl) for setup, method, impl, ms, tokens in rows if float(ms) > 0 and int(tokens) > 0}
    expected = {("tiny llama", m, i) for m in ("lora", "dora", "adalora", "pissa", "qlora") for i in ("ours", "peft")}
    assert measured == expected | {("tiny bert", "lora", "ours"), ("tiny bert", "lora", "peft")}
    assert len(re.findall(r"\| ours \| [\d.]+ \| \d+ \| n/a \| \d+\.\d\dx \| n/a \|", text)) == 6  # a time ratio per pair
    assert re.search(r"^\| ours lora, merged \| [\d.]+ \| \d+\.\d\dx \|$", text, flags=re.M)
    assert "Smoke run (--tiny)" in text
