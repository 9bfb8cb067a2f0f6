"""Checking a command's config (`lora_lab.run.gate`, run by every `lora-lab` command before anything is
written) imports no training code: task families name their data and Lightning modules by import path
and import them only when a trial builds. Lightning and torchmetrics took ~6 s of every mistyped command."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "torchmetrics", "rouge_score", "datasets", "lora_lab.tasks.classification.data", "lora_lab.tasks.generation.module")


def test_the_gate_imports_no_training_code():
    code = f"import sys, lora_lab.run.gate; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_a_family_builds_its_classes_from_their_paths():
    from lora_lab.tasks.registry import FAMILIES

    for family in FAMILIES.values():
        data_cls, module_cls = family.classes()
        assert data_cls.__name__ == family.data_module.split(":")[1] and module_cls.__name__ == family.lightning_module.split(":")[1]
