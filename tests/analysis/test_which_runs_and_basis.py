"""Which runs the weight analyses take, and which basis the subspace comparison uses, come from the
method and init registries (`AdapterMethod.changes_weight_matrices`, `update_is_scaled_ba`,
`InitSpec.mutates_base`), not from a list of method names."""

from pathlib import Path

import pytest

from lora_lab.adapters import METHODS
from lora_lab.adapters.method import AdapterMethod
from lora_lab.analysis.command import _a_is_the_basis, _matrix_runs
from lora_lab.analysis.updates import Run


def run(method, init="kaiming"):
    return Run(Path(f"/runs/{method}-{init}"), {}, {"adapter": {"method": method, "init": init}, "adapted_modules": []})


@pytest.mark.parametrize("method, init, a_basis", [
    ("lora", "kaiming", True), ("lora", "gaussian", True), ("loraplus", "kaiming", True),
    ("lora", "eva", True),  # data-driven A, base untouched: ΔW = s B A still holds
    ("lora", "pissa", False), ("lora", "olora", False), ("lora", "loftq_1", False),  # the base holds a residual: ΔW = s (B A - B0 A0)
    ("dora", "kaiming", False),  # the magnitude rescales: ΔW is not s B A
    ("adalora", "adalora", False), ("full", "none", False), ("no_such_method", "kaiming", False),
])
def test_the_paper_a_basis_only_where_the_update_is_exactly_s_b_a(method, init, a_basis):
    assert _a_is_the_basis(run(method, init)) is a_basis


def test_bitfit_is_left_out_of_the_matrix_analyses_by_its_own_declaration(monkeypatch):
    runs = [run("bitfit", "none"), run("lora"), run("full", "none"), run("no_such_method")]
    assert [r.method for r in _matrix_runs(runs)] == ["lora", "full", "no_such_method"]
    monkeypatch.setattr(METHODS["lora"], "changes_weight_matrices", False)
    assert [r.method for r in _matrix_runs(runs)] == ["full", "no_such_method"]
    assert AdapterMethod.changes_weight_matrices and not METHODS["bitfit"].changes_weight_matrices
