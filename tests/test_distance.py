"""Tests of linattn.distance: zero on identical inputs, known values on constructed cases,
numpy as the independent computation, honest errors."""
import math

import numpy as np
import pytest
import torch

from linattn.distance import (
    DISTANCES,
    Distance,
    DistanceInputs,
    compute_distances,
    expected_init_gap,
    function_gap,
    kernel_gap,
    operator_gap_over_lmin,
)
from linattn.spectra import RankDeficientError


def spd(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(n, n, generator=g, dtype=torch.float64)
    return B @ B.T + n * torch.eye(n, dtype=torch.float64), g


def sym(n, g):
    E = torch.randn(n, n, generator=g, dtype=torch.float64)
    return (E + E.T) / 2


def test_every_reading_is_zero_on_identical_inputs():
    K, g = spd()
    f = torch.randn(7, 3, generator=g, dtype=torch.float64)
    z = DistanceInputs(theta_inf=K, theta_init=K.clone(), theta_final=K.clone(), f_net=f, f_ntk=f.clone())
    out = compute_distances(z)
    assert list(out) == list(DISTANCES)
    for name, d in out.items():
        assert d["value"] == 0.0, name


def test_known_values_on_a_constructed_case():
    n, c = 5, 0.3
    I = torch.eye(n, dtype=torch.float64)
    E = torch.zeros(n, n, dtype=torch.float64)
    E[0, 1] = E[1, 0] = 1.0  # ||E||_F = sqrt(2), ||E||_2 = 1
    K_inf, K0, KT = 2 * I, 2 * I + c * E, 2 * I + 2 * c * E
    f_ntk = torch.ones(4, 2, dtype=torch.float64)  # ||f_ntk||_F = sqrt(8)
    f_net = f_ntk.clone()
    f_net[0, 0] += 3.0
    z = DistanceInputs(theta_inf=K_inf, theta_init=K0, theta_final=KT, f_net=f_net, f_ntk=f_ntk)
    got = {k: v["value"] for k, v in compute_distances(z).items()}
    want = {
        "function_abs": 3.0,
        "function_rms": 3.0 / math.sqrt(8),
        "function_rel": 3.0 / math.sqrt(8),
        "kernel_init_rel": c * math.sqrt(2) / (2 * math.sqrt(n)),
        "kernel_init_abs": c * math.sqrt(2),
        "kernel_final_rel": 2 * c * math.sqrt(2) / (2 * math.sqrt(n)),
        "kernel_final_abs": 2 * c * math.sqrt(2),
        "kernel_drift_rel": c * math.sqrt(2) / math.sqrt(4 * n + 2 * c**2),  # ||K0||_F^2 = 4n + 2c^2
        "kernel_init_op_lmin": c / 2,
        "kernel_final_op_lmin": 2 * c / 2,
    }
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12), k


def test_against_numpy_norms_on_random_matrices():
    K_inf, g = spd(8, 1)
    K = K_inf + 0.1 * sym(8, g)
    Kn, Ki = K.numpy(), K_inf.numpy()
    assert kernel_gap(K, K_inf) == pytest.approx(np.linalg.norm(Kn - Ki) / np.linalg.norm(Ki), rel=1e-12)
    assert kernel_gap(K, K_inf, relative=False) == pytest.approx(np.linalg.norm(Kn - Ki), rel=1e-12)
    lam_min = np.linalg.eigvalsh(Ki)[0]
    assert operator_gap_over_lmin(K, K_inf) == pytest.approx(np.linalg.norm(Kn - Ki, 2) / lam_min, rel=1e-10)
    a, b = torch.randn(9, generator=g, dtype=torch.float64), torch.randn(9, generator=g, dtype=torch.float64)
    assert function_gap(a, b) == pytest.approx(np.linalg.norm(a.numpy() - b.numpy()), rel=1e-12)
    assert function_gap(a, b, relative=True) == pytest.approx(
        np.linalg.norm(a.numpy() - b.numpy()) / np.linalg.norm(b.numpy()), rel=1e-12)
    assert function_gap(a, b, per_output=True) == pytest.approx(
        np.sqrt(np.mean((a.numpy() - b.numpy()) ** 2)), rel=1e-12)


def test_operator_reading_sees_what_frobenius_misses():
    """A perturbation along the smallest eigenvector: tiny relative Frobenius error, large operator error."""
    lam = torch.tensor([100.0, 10.0, 1.0, 1e-4], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    K_inf = Q @ torch.diag(lam) @ Q.T
    K = K_inf + 1e-3 * torch.outer(Q[:, 3], Q[:, 3])
    assert kernel_gap(K, K_inf) < 1e-4
    assert operator_gap_over_lmin(K, K_inf) == pytest.approx(10.0, rel=1e-6)


def test_rank_deficient_limit_kernel_is_an_error_with_the_rank():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(6, 2, generator=g, dtype=torch.float64)
    K_inf = B @ B.T  # rank 2
    with pytest.raises(RankDeficientError) as err:
        operator_gap_over_lmin(K_inf + 0.01 * torch.eye(6, dtype=torch.float64), K_inf)
    assert err.value.rank == 2 and "rank 2" in str(err.value)
    out = compute_distances(DistanceInputs(theta_inf=K_inf, theta_init=K_inf * 1.01), ["kernel_init_op_lmin", "kernel_init_rel"])
    assert math.isnan(out["kernel_init_op_lmin"]["value"]) and "rank 2" in out["kernel_init_op_lmin"]["note"]
    assert out["kernel_init_rel"]["value"] == pytest.approx(0.01, rel=1e-12)


def test_registry_and_partial_inputs():
    assert all(isinstance(d, Distance) and d.description and d.name == k for k, d in DISTANCES.items())
    assert {d.space for d in DISTANCES.values()} == {"function", "kernel", "operator"}
    K, g = spd()
    out = compute_distances(DistanceInputs(theta_inf=K, theta_init=K * 1.1))
    assert set(out) == {"kernel_init_rel", "kernel_init_abs", "kernel_init_op_lmin"}
    with pytest.raises(ValueError, match="unknown distance"):
        compute_distances(DistanceInputs(), ["kernel_sideways"])


def test_errors_say_what_is_wrong():
    K, g = spd()
    with pytest.raises(ValueError, match="same points"):
        kernel_gap(K, K[:3, :3])
    with pytest.raises(ValueError, match="symmetric"):
        kernel_gap(K + torch.triu(torch.ones(6, 6, dtype=torch.float64), 1), K)
    with pytest.raises(ValueError, match="shape"):
        function_gap(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="zero"):
        function_gap(torch.ones(3), torch.zeros(3), relative=True)
    with pytest.raises(ValueError, match="NaN"):
        kernel_gap(K * float("nan"), K)


def test_expected_init_gap_against_monte_carlo_over_initialisations():
    """Mean of ||Theta_m(0) - Theta_inf||_F^2 over 400 seeds against the closed form (m = 16)."""
    from linattn.kernels import ntk_inf
    from linattn.models import relu_net, unit_rows
    from linattn.ntk import empirical_ntk

    g = torch.Generator().manual_seed(5)
    Xh = unit_rows(torch.randn(6, 5, generator=g, dtype=torch.float64))
    K_inf = ntk_inf(relu_net(5, 1, dtype=torch.float64), Xh)
    sq = torch.tensor([kernel_gap(empirical_ntk(relu_net(5, 16, seed=s, dtype=torch.float64), Xh), K_inf,
                                  relative=False) ** 2 for s in range(400)])
    want = expected_init_gap(Xh, 16) ** 2
    se = float(sq.std() / math.sqrt(len(sq)))
    assert abs(float(sq.mean()) - want) < 4 * se
    assert expected_init_gap(Xh, 64) == pytest.approx(expected_init_gap(Xh, 16) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="unit"):
        expected_init_gap(Xh * 2, 16)
