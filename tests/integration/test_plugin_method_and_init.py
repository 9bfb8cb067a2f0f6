"""Acceptance of the registries: a toy method and a toy init, written in a temporary module outside
the package and declared as a ``lora_lab.plugins`` entry point (a ``*.dist-info`` directory on the
path, exactly what ``pip install`` of a plug-in leaves), appear in the CLI, the config gate, the
contract table and the report with no edit anywhere in the repository; without the plug-in on the
path neither exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""A toy plug-in: the method ``toylora`` (LoRA's layer under another name) and the init ``toy_ones``."""
from dataclasses import dataclass

import torch

from lora_lab.adapters.lora import LoraConfig, LoraMethod
from lora_lab.adapters.method import register_method
from lora_lab.adapters.registry import register_init


@register_init("toy_ones", families=("lora",), display="ToyOnes")
@torch.no_grad()
def toy_ones(layer, name):
    layer.lora_A.fill_(1.0 / layer.in_features)
    layer.lora_B.zero_()


@dataclass
class ToyConfig(LoraConfig):
    method: str = "toylora"


@register_method
class ToyMethod(LoraMethod):
    name = "toylora"
    display_name = "ToyLoRA"
    table_order = 50
    named_inits = {}
    config_cls = ToyConfig
    examples = ({"r": 2, "alpha": 4},)
'''
TRAIN = ["debug=tiny", "logger=none", "task.train_size=32", "task.val_size=16", "task.test_size=16", "task.batch_size=8",
         "trainer.max_epochs=1", "adapter.r=2", "save_adapter=false"]


def write_plugin(root: Path) -> Path:
    """The plug-in module and its entry point, as an installed distribution would leave them."""
    root.mkdir()
    (root / "toy_lab_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "toy_lab_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-lab-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lora_lab.plugins]\ntoy = toy_lab_plugin\n")
    return root


def run(args: list[str], tmp_path: Path, plugin: Path | None, module: str = "lora_lab.cli") -> subprocess.CompletedProcess:
    path = [str(ROOT), *([str(plugin)] if plugin else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # four CLI processes, one trial, one report and a contract subset: ~2.5 min on 2 busy cores
def test_a_plugin_method_and_init_appear_everywhere(tmp_path):
    plugin = write_plugin(tmp_path / "plugin")

    # the gate: without the plug-in neither name exists; with it, both are in the allowed lists
    proc = run(["train", *TRAIN, "adapter.method=toylora"], tmp_path, None)
    assert proc.returncode == 2 and "error: adapter.method: unknown method 'toylora'" in proc.stderr, proc.stderr[-2000:]
    proc = run(["train", *TRAIN, "adapter.init=nope"], tmp_path, plugin)
    assert proc.returncode == 2 and "toy_ones" in proc.stderr.split("allowed: ")[1], proc.stderr[-2000:]
    proc = run(["train", *TRAIN, "adapter=vera", "adapter.init=toy_ones"], tmp_path, plugin)
    assert proc.returncode == 2 and "'toy_ones' is not an init of method 'vera'" in proc.stderr, proc.stderr[-2000:]

    # the CLI: a whole trial of the toy method with the toy init
    proc = run(["train", *TRAIN, "adapter.method=toylora", "adapter.init=toy_ones", "study=toy"], tmp_path, plugin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = (tmp_path / "runs").rglob("result.json")
    record = json.loads(result.read_text())
    assert record["status"] == "success" and record["config"]["adapter"]["method"] == "toylora" and record["config"]["adapter"]["init"] == "toy_ones"
    assert record["params"]["adapter_params"] > 0

    # the report: the row is labelled by the plug-in's display name (the init is constant in a table of
    # one run, so not shown there; where it is, its display name labels it)
    proc = run(["report", str(tmp_path / "runs" / "toy"), "--out", str(tmp_path / "report")], tmp_path, plugin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"| ToyLoRA | {record['params']['adapter_params']} |" in (tmp_path / "report" / "table.md").read_text()
    label = "from lora_lab.results.names import method_label; print(method_label('lora', 'toy_ones'), '|', method_label('toylora', 'pissa'))"
    assert in_fresh_process(label, plugin) == "LoRA (ToyOnes init) | ToyLoRA (PiSSA init)"

    # the contract table: rows for the toy method with every LoRA-family init, and every LoRA-family
    # method with the toy init, and the generic contract passes on the toy's own row
    ids = contract_row_ids(plugin)
    assert {"toylora-kaiming", "toylora-toy_ones", "toylora-pissa", "lora-toy_ones", "dora-toy_ones", "loraplus-toy_ones"} <= set(ids)
    assert "lora-kaiming" in contract_row_ids(None) and not any("toy" in i for i in contract_row_ids(None))
    proc = run(["-q", "-p", "no:cacheprovider", "-m", "", "tests/contract/test_contract.py", "-k", "toylora-toy_ones-bert"], tmp_path, plugin,
               module="pytest")
    assert proc.returncode == 0 and " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-3000:]


def in_fresh_process(code: str, plugin: Path | None) -> str:
    """What ``python -c code`` prints (stripped), in a fresh process with ``plugin`` on the path."""
    path = os.pathsep.join([str(ROOT), *([str(plugin)] if plugin else [])])
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def contract_row_ids(plugin: Path | None) -> list[str]:
    """The ids of the contract table's rows, generated in a fresh process."""
    return in_fresh_process("from tests.contract.table import ROWS; print(' '.join(r.id for r in ROWS))", plugin).split()
