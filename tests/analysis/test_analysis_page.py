"""End to end through the commands: a tiny sweep trained with snapshots (LoRA at two ranks and two
seeds, DoRA, full fine-tuning, BitFit, AdaLoRA), ``lora-lab analyze`` over it writing every measure,
``lora-lab report`` showing the analysis section on the study page, and (``tools``) that page
rendered in headless Chromium."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.results.test_paper_outputs import CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[2]
BASE = ["debug=tiny", "study=an", "progress.mode=none", "task.max_train_samples=64", "task.max_eval_samples=32", "analysis.snapshot_every=4"]


def lora_lab(*args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    runs = root / "runs"
    lora_lab("train", *BASE, f"paths.runs_root={runs}", "adapter=lora", "adapter.r=2,4", "seed=0,1", "--multirun")
    lora_lab("train", *BASE, f"paths.runs_root={runs}", "adapter=dora,full,bitfit,adalora", "adapter.targets=qv", "--multirun")
    out = root / "out"
    analyzed = lora_lab("analyze", str(runs / "an"), "--out", str(out / "analysis"))
    lora_lab("report", str(runs / "an"), "--out", str(out), "--no-plots")
    return runs, out, analyzed.stdout


@pytest.mark.slow
def test_analyze_writes_every_measure_and_the_page_shows_them(study):
    runs, out, stdout = study
    index = json.loads((out / "analysis" / "analysis.json").read_text())
    assert set(index["measures"]) == {"subspace", "dw_vs_w", "spectrum", "decomposition", "adalora", "curves"}
    figures = []
    for name, entry in index["measures"].items():
        assert not entry.get("skipped"), name
        assert all((out / "analysis" / t).is_file() for t in entry["tables"])
        figures += [f for f in entry["figures"] if f.endswith(".png")]
        assert all((out / "analysis" / f).with_suffix(".pdf").is_file() for f in entry["figures"])
    adalora = [line for line in (out / "analysis" / "adalora_ranks.csv").read_text().splitlines()[1:]]
    assert adalora and all(line.split(",")[-1].isdigit() for line in adalora)  # a kept rank per matrix at each allocation
    corr = (out / "analysis" / "decomposition_correlation.csv").read_text()
    assert "Full FT seed0" in corr and "DoRA r=8 seed0" in corr and "LoRA r=2 seed1" in corr
    page = (out / "index.html").read_text()
    assert '<h2 id="analysis">Analysis</h2>' in page and "lora-lab analyze" in page
    section = page.split('<h2 id="analysis">Analysis</h2>', 1)[1]
    assert section.count('src="data:image/png;base64,') == len(figures)
    assert "<td>Full FT</td>" in page or ">Full FT<" in page


@pytest.mark.slow
@pytest.mark.tools
def test_page_with_analysis_renders_in_headless_chromium(study, tmp_path):
    _, out, _ = study
    url = (out / "index.html").resolve().as_uri()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'<h2 id="analysis">Analysis</h2>', dom.stdout) and "decomposition" in dom.stdout and "subspace_summary.csv" in dom.stdout
    shot = tmp_path / "shot.png"
    proc = subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,6000", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, proc.stderr[-2000:]
