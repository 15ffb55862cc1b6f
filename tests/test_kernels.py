"""Tests of linattn.kernels against independent computations (numpy, Monte Carlo, explicit sums)."""
import math

import numpy as np
import pytest
import torch

from linattn.attention import linearized_attention
from linattn.kernels import (
    arccos0,
    arccos0_monte_carlo,
    attention_feature_gram,
    attention_kernel,
    data_kernel,
    features64,
    gram,
    gram_cubed,
    gram_power,
    ntk_inf,
    ntk_relu,
    sensitivity_bound,
    unit_angle,
)
from linattn.models import attention_keys, mlp_attn, relu_net, unit_rows


def data(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64)


def unit(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return unit_rows(torch.randn(n, d, generator=g, dtype=torch.float64))


def test_gram_matches_numpy_and_is_float64():
    X = data()
    G = gram(X.to(torch.float32))
    assert G.dtype == torch.float64 and G.shape == (7, 7)
    Xn = X.to(torch.float32).numpy().astype(np.float64)
    np.testing.assert_allclose(G.numpy(), Xn @ Xn.T, rtol=1e-14)
    assert torch.equal(G, G.T)


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_gram_power_matches_repeated_product(p):
    X = data()
    G = X.numpy() @ X.numpy().T
    ref = np.linalg.matrix_power(G, p)
    np.testing.assert_allclose(gram_power(X, p).numpy(), ref, rtol=1e-12)


def test_gram_cubed_four_ways():
    X = data(6, 4)
    G = X @ X.T
    C = X.T @ X
    K = gram_cubed(X)
    for other in (G @ G @ G, X @ C @ C @ X.T, attention_kernel(X), linearized_attention(X) @ linearized_attention(X).T):
        torch.testing.assert_close(K, other, rtol=1e-12, atol=0)
    # explicit three-step chain sum_{k,l} (x_i.x_k)(x_k.x_l)(x_l.x_j)
    chain = torch.einsum("ik,kl,lj->ij", G, G, G)
    torch.testing.assert_close(K, chain, rtol=1e-12, atol=0)
    assert torch.equal(K, K.T)
    assert float(torch.linalg.eigvalsh(K).min()) >= -1e-12 * float(K.abs().max())


def test_attention_kernel_with_separate_keys():
    X, Xt, keys = data(5, 4, 1), data(3, 4, 2), data(8, 4, 3)
    C = keys.T @ keys
    ref = (X @ C) @ (Xt @ C).T
    torch.testing.assert_close(attention_kernel(X, Xt, X_keys=keys), ref, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="X_keys has d"):
        attention_kernel(X, X_keys=data(8, 3))


def test_attention_feature_gram_is_cosine_of_attention_features():
    X = data(6, 4)
    F = unit_rows(X @ X.T @ X)
    torch.testing.assert_close(attention_feature_gram(X), F @ F.T, rtol=1e-13, atol=1e-15)
    K3 = gram_cubed(X)
    Dm = torch.diag(K3).rsqrt()
    torch.testing.assert_close(attention_feature_gram(X), Dm[:, None] * K3 * Dm[None], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(torch.diag(attention_feature_gram(X)), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(attention_feature_gram(X, normalize=False), K3, rtol=1e-13, atol=0)


def test_attention_feature_gram_refuses_zero_feature():
    X = data(4, 3)
    X[2] = 0
    with pytest.raises(ValueError, match="zero attention feature"):
        attention_feature_gram(X)


def test_sensitivity_bound_holds_and_is_attained():
    keys = data(9, 5, 4)
    xi, xj = data(1, 5, 5)[0], data(1, 5, 6)[0]
    C = keys.T @ keys
    eps = 0.3
    bound = sensitivity_bound(xj, eps, X_keys=keys)

    def K(a, b):
        return float(a @ C @ C @ b)

    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        delta = (torch.rand(5, generator=g, dtype=torch.float64) * 2 - 1) * eps
        assert abs(K(xi + delta, xj) - K(xi, xj)) <= bound * (1 + 1e-12)
    worst = eps * torch.sign(C @ C @ xj)
    assert math.isclose(abs(K(xi + worst, xj) - K(xi, xj)), bound, rel_tol=1e-12)
    assert math.isclose(bound, eps * float(np.abs(C.numpy() @ C.numpy() @ xj.numpy()).sum()), rel_tol=1e-13)


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_sensitivity_bound_refuses_bad_eps(eps):
    with pytest.raises(ValueError):
        sensitivity_bound(data(1, 3)[0], eps, X_keys=data(4, 3))


def test_sensitivity_bound_refuses_shape_mismatch():
    with pytest.raises(ValueError, match="x_j has 4 entries"):
        sensitivity_bound(data(1, 4)[0], 0.1, X_keys=data(5, 3))


def test_unit_angle_matches_arccos_away_from_zero():
    A, B = unit(6, 4, 1), unit(5, 4, 2)
    ref = np.arccos(np.clip(A.numpy() @ B.numpy().T, -1, 1))
    th = unit_angle(A, B)
    assert th.shape == (6, 5) and th.dtype == torch.float64
    np.testing.assert_allclose(th.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_unit_angle_resolves_nearly_parallel_vectors():
    t = 1e-9
    A = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    B = torch.tensor([[math.cos(t), math.sin(t), 0.0]], dtype=torch.float64)
    assert math.isclose(float(unit_angle(A, B)), t, rel_tol=1e-6)
    # the arccos route returns 0 or ~1.5e-8 here: half the digits lost
    assert abs(math.acos(min(1.0, float(A[0] @ B[0]))) - t) > 0.5 * t


def test_unit_angle_diagonal_is_zero_and_refuses_non_unit_rows():
    A = unit()
    assert float(torch.diag(unit_angle(A)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="unit-norm rows"):
        unit_angle(2 * A)
    with pytest.raises(ValueError, match="NaN or inf"):
        unit_angle(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="columns"):
        unit_angle(unit(3, 4), unit(3, 5))


def test_arccos0_known_angles():
    e = torch.eye(3, dtype=torch.float64)
    X = torch.stack([e[0], e[1], -e[0]])
    K = arccos0(X)
    torch.testing.assert_close(K[0], torch.tensor([0.5, 0.25, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)


def test_arccos0_matches_monte_carlo():
    A = unit(6, 4, 3)
    n_samples = 200_000
    mc = arccos0_monte_carlo(A, n_samples=n_samples, seed=1)
    se = 0.5 / math.sqrt(n_samples)
    assert float((mc - arccos0(A)).abs().max()) < 5 * se
    # seeded: the same seed gives the same estimate
    assert torch.equal(mc, arccos0_monte_carlo(A, n_samples=n_samples, seed=1))


def test_ntk_relu_matches_monte_carlo_and_limits():
    A, B = unit(5, 4, 4), unit(3, 4, 5)
    K = ntk_relu(A, B)
    assert K.shape == (5, 3) and K.dtype == torch.float64
    mc = (A @ B.T) * arccos0_monte_carlo(A, B, n_samples=200_000, seed=2)
    assert float((mc - K).abs().max()) < 5 * 0.5 / math.sqrt(200_000)
    Ks = ntk_relu(A)
    torch.testing.assert_close(torch.diag(Ks), torch.full((5,), 0.5, dtype=torch.float64))
    assert torch.equal(Ks, Ks.T)
    assert float(torch.linalg.eigvalsh(Ks).min()) > 0


def test_ntk_inf_uses_the_models_features_in_float64():
    X = data(6, 5, 7)
    net = relu_net(5, 16, seed=0)  # float32 model: the kernel is still float64
    K = ntk_inf(net, X)
    assert K.dtype == torch.float64
    torch.testing.assert_close(K, ntk_relu(unit_rows(X)), rtol=1e-14, atol=1e-15)
    att = mlp_attn(X, 16, seed=3)
    Xt = data(2, 5, 8)
    C = X.T @ X
    torch.testing.assert_close(ntk_inf(att, X, Xt), ntk_relu(unit_rows(X @ C), unit_rows(Xt @ C)), rtol=1e-13, atol=1e-15)
    # the limit does not depend on W
    torch.testing.assert_close(ntk_inf(mlp_attn(X, 3, seed=9), X), ntk_inf(att, X), rtol=0, atol=0)
    with pytest.raises(ValueError, match="expects d = 5"):
        features64(net, data(3, 4))


@pytest.mark.parametrize(
    "bad, match",
    [(torch.ones(3), "2 dimensions"), (torch.tensor([[float("inf"), 1.0]]), "NaN or inf"), (torch.ones(0, 3), "at least 1")],
)
def test_gram_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        gram(bad)


def test_gram_power_refuses_bad_p():
    with pytest.raises(ValueError):
        gram_power(data(), 0)
    with pytest.raises(TypeError):
        gram_power(data(), 1.5)


@pytest.fixture(scope="module")
def toy():
    """Pixel rows in [0.02, 0.98] around three centres: 40 training and 10 test points, d = 12."""
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(3, 12, generator=g, dtype=torch.float64)
    y = torch.arange(50) % 3
    X = (centres[y] + 0.15 * torch.randn(50, 12, generator=g, dtype=torch.float64)).clamp(0.02, 0.98)
    return X[:40], y[:40], X[40:], y[40:]


def test_data_kernels_match_their_formulas(toy):
    from linattn import kernels

    X, _, Xt, _ = toy
    U, Ut = attention_keys(X), attention_keys(Xt)
    G = U @ U.T
    torch.testing.assert_close(data_kernel("linear")(X, X), G, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(data_kernel("attention")(X, X), G @ G @ G, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(data_kernel("attention")(Xt, X), Ut @ (U.T @ U) @ (U.T @ U) @ U.T,
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(data_kernel("ntk_relu")(Xt, X), kernels.ntk_relu(Ut, U), rtol=1e-12, atol=1e-12)
    F, Ft = U @ (U.T @ U), Ut @ (U.T @ U)  # attention features C x, C from the unit training rows
    F, Ft = F / F.norm(dim=1, keepdim=True), Ft / Ft.norm(dim=1, keepdim=True)
    torch.testing.assert_close(data_kernel("ntk_attn")(Xt, X), kernels.ntk_relu(Ft, F), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="kind"):
        data_kernel("rbf")


def test_data_kernel_labels_and_symmetry(toy):
    X, _, Xt, _ = toy
    for kind in ("linear", "attention", "ntk_relu", "ntk_attn"):
        k = data_kernel(kind)
        assert k.__name__ == kind  # the label kernel_malleability writes in its rows
        K = k(X, X)
        assert K.shape == (40, 40) and K.dtype == torch.float64
        torch.testing.assert_close(K, K.T, rtol=1e-10, atol=1e-12)
        assert k(Xt, X).shape == (10, 40)
    with pytest.raises(ValueError, match="kind must be 'attention', 'linear', 'ntk_attn' or 'ntk_relu', got 'rbf'"):
        data_kernel("rbf")


# --- the Hadamard expansion of the 2L NTK (hadamard_lower_bound) ---------------------------------

def _unit(n, d, seed):
    X = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return X / X.norm(dim=1, keepdim=True)


def test_arcsin_coefficients_sum_the_series():
    from linattn.kernels import _arcsin_coefficients
    c = _arcsin_coefficients(200)
    u = 0.6
    series = float((c * u ** (2 * torch.arange(200, dtype=torch.float64) + 1)).sum())
    assert series == pytest.approx(math.asin(u), rel=1e-14)
    assert float(c[1]) == pytest.approx(1 / 6) and float(c[2]) == pytest.approx(3 / 40)


def test_hadamard_expansion_equals_ntk_relu_entrywise():
    from linattn.kernels import _arcsin_coefficients
    Xh = _unit(6, 4, 0)
    U = Xh @ Xh.T
    c = _arcsin_coefficients(4000)
    U_off = U.clone().fill_diagonal_(0.0)                       # |u_ij| < 1 off the diagonal: the series converges fast there
    p = 2 * torch.arange(4000, dtype=torch.float64) + 2
    series = (c[:, None, None] * U_off.abs()[None] ** p[:, None, None]).sum(0) / (2 * math.pi)
    expansion = U_off / 4 + series
    K = ntk_relu(Xh)
    off = ~torch.eye(6, dtype=torch.bool)
    assert torch.allclose(expansion[off], K[off], rtol=0, atol=1e-12)
    assert torch.allclose(torch.diagonal(K), torch.full((6,), 0.5, dtype=torch.float64))   # 1/4 + (1/2 pi)(pi/2)


@pytest.mark.parametrize("n,d,seed", [(8, 3, 0), (30, 10, 1), (40, 100, 2)])
def test_hadamard_bound_is_a_lower_bound_and_close(n, d, seed):
    from linattn.kernels import hadamard_lower_bound
    Xh = _unit(n, d, seed)
    lam = float(torch.linalg.eigvalsh(ntk_relu(Xh))[0])
    hb = hadamard_lower_bound(Xh)
    assert 0 < hb.bound <= lam
    assert all(b >= a for a, b in zip(hb.lmins, hb.lmins[1:]))  # Schur: non-decreasing in the power
    assert hb.linear_term <= hb.bound


def test_hadamard_bound_orthonormal_rows_is_one_half():
    from linattn.kernels import hadamard_lower_bound
    Xh = torch.eye(5, dtype=torch.float64)
    hb = hadamard_lower_bound(Xh, k_max=10**6)
    assert hb.bound == pytest.approx(0.5, abs=1e-3)            # the tail beyond k_max weighs about (2 / pi k_max)^{1/2} / (2 pi)
    assert hb.bound <= 0.5


def test_hadamard_bound_lifts_a_singular_feature_gram():
    from linattn.kernels import hadamard_lower_bound
    Xh = _unit(20, 3, 4)                                         # rank 3: lambda_min(U) = 0
    hb = hadamard_lower_bound(Xh)
    assert hb.linear_term < 1e-12 and hb.bound > 1e-6


def test_hadamard_bound_refuses_bad_input():
    from linattn.kernels import hadamard_lower_bound
    with pytest.raises(ValueError, match="unit"):
        hadamard_lower_bound(torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises((TypeError, ValueError), match="k_max"):
        hadamard_lower_bound(_unit(3, 2, 0), k_max=0)
