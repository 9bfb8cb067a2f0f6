"""Known answers for every measure of `lora_lab.analysis`: constructed inputs whose value is fixed by
the maths. Tolerances are fp64 rounding of the operation (a few ``n * eps64`` relative), except for
the random-subspace baseline, whose tolerance comes from the variance of the statistic."""

import math

import pytest
import torch

from lora_lab.analysis import decomposition, dw_vs_w, learning_curves, spectrum, subspace

EPS64 = 2.0**-52


def orthonormal(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=torch.float64))
    return q


def with_spectrum(s: list[float], rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """A matrix with exactly the singular values ``s`` (orthonormal factors)."""
    k = len(s)
    return orthonormal(rows, k, seed) @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ orthonormal(cols, k, seed + 1).T


# ----------------------------------------------------------------------------- subspace similarity


def test_identical_subspaces_give_one_for_every_i_j():
    a = torch.randn(4, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # a LoRA A: [r, in]
    u = subspace.right_singular_basis(a)
    grid = subspace.phi_grid(u, u)
    assert u.shape == (32, 4)
    # phi(i, j) = ||U_i^T U_j||^2 / min(i, j) = min(i, j) / min(i, j)
    assert torch.allclose(grid, torch.ones(4, 4, dtype=torch.float64), rtol=0, atol=32 * EPS64 * 8)


def test_nested_subspace_contained_in_larger_one_gives_one():
    """r = 8's directions inside r = 64's: phi(i, j) = 1 wherever j spans the smaller subspace."""
    basis = orthonormal(64, 16, seed=3)
    small = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)) @ basis[:, :4].T  # [4, 64]
    large = torch.diag(torch.arange(16, 0, -1, dtype=torch.float64)) @ basis.T  # [16, 64], contains small's rows
    grid = subspace.phi_grid(subspace.right_singular_basis(small), subspace.right_singular_basis(large))
    assert abs(float(grid[3, 15]) - 1.0) < 1e-12  # all 4 directions of small inside the 16 of large


def test_orthogonal_subspaces_give_zero():
    q = orthonormal(20, 6, seed=1)
    a1, a2 = q[:, :3].T * 2.0, q[:, 3:].T  # rows span orthogonal subspaces of R^20
    grid = subspace.phi_grid(subspace.right_singular_basis(a1), subspace.right_singular_basis(a2))
    assert float(grid.abs().max()) < 20 * EPS64 * 4


def test_phi_grid_equals_the_definition_entry_by_entry():
    u, v = orthonormal(16, 5, 4), orthonormal(16, 7, 5)
    grid = subspace.phi_grid(u, v)
    for i in range(1, 6):
        for j in range(1, 8):
            assert grid[i - 1, j - 1].item() == pytest.approx(subspace.phi(u, v, i, j), rel=1e-12, abs=1e-15)


def test_random_subspaces_match_the_analytic_expectation():
    """phi(1, 1) = cos^2 of two random unit vectors in R^d ~ Beta(1/2, (d-1)/2): mean 1/d, variance
    2(d-1)/(d^2(d+2)). The mean of N draws is within 5 standard errors of 1/d (false alarm ~ 6e-7)."""
    d, n = 50, 4000
    g = torch.Generator().manual_seed(11)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, d, generator=g, dtype=torch.float64)
    cos2 = ((x * y).sum(1) ** 2) / ((x * x).sum(1) * (y * y).sum(1))
    sd = math.sqrt(2 * (d - 1) / (d**2 * (d + 2)))
    assert abs(float(cos2.mean()) - subspace.random_expectation(1, 1, d)) < 5 * sd / math.sqrt(n)
    # and a larger shape through phi_grid itself: E phi(i, j) = max(i, j) / d
    i, j, draws = 4, 10, 400
    values = [float(subspace.phi_grid(orthonormal(d, i, 100 + k), orthonormal(d, j, 900 + k))[i - 1, j - 1]) for k in range(draws)]
    mean = sum(values) / draws
    sample_sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (draws - 1))
    assert abs(mean - subspace.random_expectation(i, j, d)) < 5 * sample_sd / math.sqrt(draws)
    assert subspace.random_expectation(i, j, d) == 10 / 50


def test_numerical_rank_drops_rounding_noise_directions():
    dw = (orthonormal(40, 3, 0) @ orthonormal(30, 3, 1).T).float()  # rank 3, stored in fp32
    assert subspace.right_singular_basis(dw).shape == (30, 3)
    assert subspace.right_singular_basis(dw, k=2).shape == (30, 2)
    assert subspace.right_singular_basis(torch.zeros(5, 8)).shape == (8, 0)


# ------------------------------------------------------------------------------------ dW vs W


def test_amplification_of_a_rank_one_update_is_its_closed_form():
    """dW = c u v^T: U = u, V = v, so ||U^T W V||_F = |u^T W v| and amplification = c / |u^T W v|."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(24, 16, generator=g, dtype=torch.float64)
    u, v = orthonormal(24, 1, 7)[:, 0], orthonormal(16, 1, 8)[:, 0]
    c = 3.5
    out = dw_vs_w.projection_norms(w, c * torch.outer(u, v), r=1)
    projection = abs(float(u @ w @ v))
    assert out["proj_dw"] == pytest.approx(projection, rel=1e-12)
    assert out["norm_dw"] == pytest.approx(c, rel=1e-12)
    assert out["amplification"] == pytest.approx(c / projection, rel=1e-12)
    # W's own top direction: sigma_1(W)
    assert out["proj_w"] == pytest.approx(float(torch.linalg.svdvals(w)[0]), rel=1e-12)


def test_update_along_ws_top_directions_projects_to_its_singular_values():
    w = with_spectrum([5.0, 4.0, 3.0, 2.0, 1.0], 12, 10, seed=4)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    dw = 0.1 * u[:, :2] @ vh[:2]  # the top-2 directions of W, both with singular value 0.1
    out = dw_vs_w.projection_norms(w, dw, r=2)
    assert out["proj_dw"] == pytest.approx(math.sqrt(25 + 16), rel=1e-12) == out["proj_w"]
    assert out["amplification"] == pytest.approx(math.sqrt(0.02) / math.sqrt(41), rel=1e-12)


def test_random_directions_match_the_closed_form_rms():
    """E ||U^T W V||_F^2 = r^2 ||W||_F^2 / (out in) for Haar U, V: the mean square of many draws is within
    5 standard errors of it."""
    w = with_spectrum([3.0, 2.0, 1.0, 0.5], 30, 20, seed=9)
    g = torch.Generator().manual_seed(1)
    r, n = 3, 3000
    squares = torch.tensor([float(torch.linalg.matrix_norm(dw_vs_w.random_orthonormal(30, r, g).T @ w @ dw_vs_w.random_orthonormal(20, r, g))) ** 2
                            for _ in range(n)], dtype=torch.float64)
    expected = dw_vs_w.projection_norms(w, w, r)["random_rms"] ** 2
    assert expected == pytest.approx(r * r * float((w * w).sum()) / (30 * 20), rel=1e-12)
    assert abs(float(squares.mean()) - expected) < 5 * float(squares.std()) / math.sqrt(n)


# --------------------------------------------------------------------------- effective rank


def test_effective_ranks_of_constructed_spectra_are_exact():
    flat = spectrum.singular_values(with_spectrum([2.0, 2.0, 2.0], 10, 8))
    assert spectrum.entropy_effective_rank(flat) == pytest.approx(3.0, rel=1e-12)  # n equal values: exp(ln n)
    assert spectrum.stable_rank(flat) == pytest.approx(3.0, rel=1e-12)
    two = spectrum.singular_values(with_spectrum([2.0, 1.0], 10, 8))
    p = torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)
    assert spectrum.entropy_effective_rank(two) == pytest.approx(math.exp(float(-(p * p.log()).sum())), rel=1e-10)
    assert spectrum.stable_rank(two) == pytest.approx((4 + 1) / 4, rel=1e-12)
    assert spectrum.entropy_effective_rank(torch.tensor([1.0, 0.0, 0.0])) == 1.0
    assert math.isnan(spectrum.stable_rank(torch.zeros(3)))


# ------------------------------------------------------------------------------- DoRA dM / dD


def test_pure_scaling_changes_magnitude_only():
    w0 = torch.randn(8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = torch.tensor([1.5, 2.0, 0.5, 1.0, 3.0, 1.25, 0.75, 2.5], dtype=torch.float64)
    d_m, d_d = decomposition.magnitude_direction(w0, c[:, None] * w0)
    assert abs(d_d) < 6 * 8 * EPS64  # cos = 1 up to the rounding of a 6-term dot product and two norms
    assert d_m == pytest.approx(float(((c - 1).abs() * w0.norm(dim=1)).mean()), rel=1e-12)


def test_pure_rotation_changes_direction_only():
    w0 = torch.randn(8, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rotation = orthonormal(6, 6, seed=5)  # rows rotated by one orthogonal map: norms kept
    w1 = w0 @ rotation
    d_m, d_d = decomposition.magnitude_direction(w0, w1)
    assert d_m < 6 * 8 * EPS64 * float(w0.norm(dim=1).max())
    cos = (w0 * w1).sum(1) / (w0.norm(dim=1) * w1.norm(dim=1))
    assert d_d == pytest.approx(float((1 - cos).mean()), rel=1e-12) and d_d > 0.1
    # a 90-degree turn of every row: cos = 0 exactly, dD = 1
    quarter = torch.zeros(6, 6, dtype=torch.float64)
    for i in range(0, 6, 2):
        quarter[i, i + 1], quarter[i + 1, i] = 1.0, -1.0
    assert decomposition.magnitude_direction(w0, w0 @ quarter) == pytest.approx((0.0, 1.0), abs=6 * EPS64 * 4)


def test_correlation_sign():
    assert decomposition.correlation([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert decomposition.sign_of(decomposition.correlation([1, 2, 3, 4], [8, 6, 4, 2])) == "negative"
    assert math.isnan(decomposition.correlation([1, 2], [3, 4]))


# -------------------------------------------------------------------------- learning curves


def test_mean_and_spread_over_seeds_at_common_steps_only():
    rows = learning_curves.mean_and_spread([{1: 1.0, 2: 2.0, 3: 5.0}, {1: 3.0, 2: 4.0}])
    assert rows == [{"step": 1, "mean": 2.0, "std": math.sqrt(2.0), "n": 2}, {"step": 2, "mean": 3.0, "std": math.sqrt(2.0), "n": 2}]


# ------------------------------------------------------------------------- AdaLoRA budget


def test_scheduled_budget_is_the_cubic_schedule_and_rows_pair_matrices_with_ranks():
    from lora_lab.analysis.adalora_budget import allocation_rows, scheduled_budget

    history = {"budget_init": 24, "budget_target": 8, "tinit": 2, "tfinal": 3, "delta_t": 1, "total_steps": 15, "modules": ["a.q", "a.v"],
               "allocations": [{"step": 3, "budget": 19, "kept": 19, "ranks": [12, 7]}]}
    schedule = dict(scheduled_budget(history))
    assert len(schedule) == 15 and schedule[0] == schedule[2] == 24  # t <= t_i: b0
    # t_i < t <= T - t_f: floor(bT + (b0 - bT) (1 - (t - t_i) / (T - t_f - t_i))^3); t = 3: 8 + 16 * (9/10)^3 = 19.664
    assert schedule[3] == 19 and schedule[7] == int(8 + 16 * (1 - 5 / 10) ** 3) and schedule[13] == 8
    assert allocation_rows(history) == [{"step": 3, "budget": 19, "kept": 19, "module": "a.q", "rank": 12},
                                        {"step": 3, "budget": 19, "kept": 19, "module": "a.v", "rank": 7}]
