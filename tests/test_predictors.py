"""Tests of linattn.predictors against direct solves, scipy's expm and an ODE integration."""
import numpy as np
import pytest
import scipy.linalg
import torch

from linattn.kernels import ntk_relu
from linattn.models import unit_rows
from linattn.predictors import KernelRidge, gd_time, kernel_regression, ntk_flow


def kernels(n=12, N=5, d=4, seed=0):
    """Theta_inf of random unit rows: a genuine positive-definite NTK (n, n) and (N, n)."""
    g = torch.Generator().manual_seed(seed)
    X = unit_rows(torch.randn(n, d, generator=g, dtype=torch.float64))
    Xt = unit_rows(torch.randn(N, d, generator=g, dtype=torch.float64))
    return ntk_relu(X), ntk_relu(Xt, X), g


@pytest.mark.parametrize("C", [None, 3])
def test_kernel_regression_equals_direct_solve(C):
    K, Kx, g = kernels()
    y = torch.randn(12, generator=g, dtype=torch.float64) if C is None else torch.randn(12, C, generator=g, dtype=torch.float64)
    out = kernel_regression(K, Kx, y, ridge=1e-3)
    ref = Kx.numpy() @ np.linalg.solve(K.numpy() + 1e-3 * np.eye(12), y.numpy())
    assert out.shape == y.shape[:0] + (5,) + y.shape[1:] and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_kernel_regression_with_f0_is_regression_on_the_residual():
    K, Kx, g = kernels()
    y = torch.randn(12, 2, generator=g, dtype=torch.float64)
    f0, f0x = torch.randn(12, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    out = kernel_regression(K, Kx, y, ridge=1e-2, f0_train=f0, f0_test=f0x)
    ref = f0x.numpy() + Kx.numpy() @ np.linalg.solve(K.numpy() + 1e-2 * np.eye(12), (y - f0).numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_ntk_flow_equals_expm_formula():
    K, Kx, g = kernels()
    y = torch.randn(12, 2, generator=g, dtype=torch.float64)
    f0, f0x = torch.randn(12, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    t = 3.7
    Kn = K.numpy()
    ref = f0x.numpy() + Kx.numpy() @ np.linalg.solve(Kn, (np.eye(12) - scipy.linalg.expm(-t * Kn)) @ (y - f0).numpy())
    out = ntk_flow(K, Kx, y, t, f0_train=f0, f0_test=f0x)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_ntk_flow_on_training_points_solves_the_ode():
    """df/dt = -K (f - y): compare with a fine explicit integration (RK4), even for a singular K."""
    g = torch.Generator().manual_seed(3)
    B = torch.randn(8, 3, generator=g, dtype=torch.float64)
    K = B @ B.T  # rank 3: no inverse exists, the flow is still defined
    y = torch.randn(8, generator=g, dtype=torch.float64)
    f = torch.zeros(8, dtype=torch.float64)
    t, steps = 0.5, 2000
    h = t / steps
    rhs = lambda f: -K @ (f - y)
    for _ in range(steps):
        k1 = rhs(f); k2 = rhs(f + h / 2 * k1); k3 = rhs(f + h / 2 * k2); k4 = rhs(f + h * k3)
        f = f + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    out = ntk_flow(K, K, y, t)
    torch.testing.assert_close(out, f, rtol=1e-9, atol=1e-10)


def test_ntk_flow_limits():
    K, Kx, g = kernels()
    y = torch.randn(12, generator=g, dtype=torch.float64)
    f0, f0x = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    # t = 0: the initial function
    torch.testing.assert_close(ntk_flow(K, Kx, y, 0.0, f0_train=f0, f0_test=f0x), f0x)
    # t -> infinity: ridgeless kernel regression (K is positive definite here)
    far = ntk_flow(K, Kx, y, 1e9, f0_train=f0, f0_test=f0x)
    ridgeless = f0x + Kx @ torch.linalg.solve(K, y - f0)
    torch.testing.assert_close(far, ridgeless, rtol=1e-7, atol=1e-9)
    # on the training points it interpolates
    torch.testing.assert_close(ntk_flow(K, K, y, 1e9), y, rtol=1e-8, atol=1e-8)


def test_gd_time():
    assert gd_time(1e-2, 100, 50) == pytest.approx(2 * 1e-2 * 100 / 50)
    assert gd_time(0.1, 10, 5, n_outputs=2) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        gd_time(0.0, 10, 5)


def test_errors_say_what_is_wrong():
    K, Kx, g = kernels()
    y = torch.randn(12, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="symmetric"):
        kernel_regression(K + torch.triu(torch.ones(12, 12), 1), Kx, y)
    with pytest.raises(ValueError, match="columns"):
        kernel_regression(K, Kx[:, :5], y)
    with pytest.raises(ValueError, match="rows"):
        kernel_regression(K, Kx, y[:5])
    with pytest.raises(ValueError, match="ridge"):
        kernel_regression(K, Kx, y, ridge=-1.0)
    with pytest.raises(ValueError, match="positive definite"):
        kernel_regression(-K, Kx, y)
    with pytest.raises(ValueError, match="both"):
        kernel_regression(K, Kx, y, f0_train=y)
    with pytest.raises(ValueError, match="NaN"):
        kernel_regression(K, Kx, y * float("nan"))
    with pytest.raises(ValueError, match="t"):
        ntk_flow(K, Kx, y, -1.0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        ntk_flow(-K, Kx, y, 1.0)


def test_kernel_ridge_is_the_one_solver():
    """KernelRidge: alpha, predict, solve and the inverse diagonal against direct float64 solves."""
    K, Kx, g = kernels()
    y = torch.randn(12, 2, generator=g, dtype=torch.float64)
    kr = KernelRidge(ridge=1e-2).fit(K, y)
    A = np.linalg.inv(K.numpy() + 1e-2 * np.eye(12))
    np.testing.assert_allclose(kr.alpha.numpy(), A @ y.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kr.predict(Kx).numpy(), Kx.numpy() @ A @ y.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kr.solve(Kx.T).numpy(), A @ Kx.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kr.inverse_diagonal().numpy(), np.diag(A), rtol=1e-10, atol=0)
    assert kr.n == 12 and kr.ridge == 1e-2 and KernelRidge().ridge == 1e-3
    # kernel_regression is this solver (bit for bit)
    assert torch.equal(kernel_regression(K, Kx, y, ridge=1e-2), kr.predict(Kx))


def test_kernel_ridge_errors_name_the_argument():
    K, Kx, g = kernels()
    indefinite = torch.diag(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"K \+ ridge I is not positive definite.*smallest eigenvalue of K = -0.5"):
        KernelRidge(1e-3).fit(indefinite, torch.ones(3))
    with pytest.raises(ValueError, match=r"K_train \+ ridge I is not positive definite.*raise ridge"):
        kernel_regression(indefinite, indefinite, torch.ones(3), ridge=1e-3)
    KernelRidge(1.0).fit(indefinite, torch.ones(3))  # a ridge above |lambda_min| makes it solvable
    with pytest.raises(ValueError, match="Theta must be symmetric"):
        KernelRidge().fit(K + torch.triu(torch.ones(12, 12), 1), torch.ones(12), name="Theta")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="ridge"):
            KernelRidge(bad)
    with pytest.raises(TypeError, match="ridge"):
        KernelRidge("large")
    with pytest.raises(ValueError, match="y has 5 rows but K has n = 12"):
        KernelRidge().fit(K, torch.ones(5))
    kr = KernelRidge().fit(K, torch.ones(12))
    with pytest.raises(ValueError, match="K_test_train"):
        kr.predict(Kx[:, :5])
    with pytest.raises(ValueError, match="B has 5 rows"):
        kr.solve(torch.ones(5))
    with pytest.raises(RuntimeError, match="fit"):
        KernelRidge().solve(torch.ones(3))


def test_influence_uses_the_solver():
    """influence_loo and loo_predictions go through KernelRidge: an indefinite K fails with its message."""
    from linattn.influence import influence_loo, loo_predictions

    indefinite = torch.diag(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="K \\+ ridge I is not positive definite"):
        influence_loo(indefinite, torch.ones(3), indefinite, ridge=1e-3, target="output")
    with pytest.raises(ValueError, match="K \\+ ridge I is not positive definite"):
        loo_predictions(indefinite, torch.ones(3), ridge=1e-3)
