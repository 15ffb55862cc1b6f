"""Tests of linattn.ntk: closed form against torch.func autodiff, and convergence to the limit."""
import math

import pytest
import torch

from linattn.attention import truncated_attention_map
from linattn.kernels import arccos0, features64, ntk_inf
from linattn.models import TwoLayerNet, mlp_attn, relu_net
from linattn.ntk import (
    empirical_ntk,
    empirical_ntk_autodiff,
    fit_power_law,
    log10_width_for_error,
    ntk_error_vs_width,
    param_jacobian,
    width_for_error,
)


def data(n=10, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64)


MODELS = {
    "relu": lambda X, m, C, s: relu_net(X.shape[1], m, C, seed=s, dtype=torch.float64),
    "attn": lambda X, m, C, s: mlp_attn(X, m, C, seed=s, dtype=torch.float64),
    "attn_r2": lambda X, m, C, s: TwoLayerNet(
        X.shape[1], m, C, feature_map=truncated_attention_map(X, 2), seed=s, dtype=torch.float64
    ),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_closed_form_equals_autodiff_full_tensor(kind):
    X, Xt = data(10, 6, 1), data(4, 6, 2)
    model = MODELS[kind](X, 40, 3, 0)
    T = empirical_ntk(model, X, full=True)
    Ta = empirical_ntk_autodiff(model, X, chunk_size=3)
    assert T.shape == Ta.shape == (10, 3, 10, 3) and T.dtype == Ta.dtype == torch.float64
    torch.testing.assert_close(T, Ta, rtol=1e-12, atol=1e-14)
    T2 = empirical_ntk(model, X, Xt, full=True)
    torch.testing.assert_close(T2, empirical_ntk_autodiff(model, X, Xt), rtol=1e-12, atol=1e-14)
    # every diagonal output block is the (N, N2) closed form
    for c in range(3):
        torch.testing.assert_close(T2[:, c, :, c], empirical_ntk(model, X, Xt), rtol=1e-13, atol=1e-15)


def test_closed_form_after_training_step_still_equals_autodiff():
    X = data(8, 5, 3)
    model = MODELS["attn"](X, 30, 2, 1)
    loss = model(X).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        model.W -= 0.5 * model.W.grad
    torch.testing.assert_close(
        empirical_ntk(model, X, full=True), empirical_ntk_autodiff(model, X), rtol=1e-12, atol=1e-14
    )


def test_closed_form_is_symmetric_psd_with_the_right_diagonal():
    X = data(12, 6, 4)
    model = MODELS["relu"](X, 64, 1, 2)
    T = empirical_ntk(model, X)
    assert torch.equal(T, T.T)
    assert float(torch.linalg.eigvalsh(T).min()) > -1e-12
    # diag: ||x^||^2 * (fraction of active units) = active / m
    xh = model.features(X).double()
    active = (xh @ model.W.double().T > 0).double().mean(dim=1)
    torch.testing.assert_close(torch.diag(T), active, rtol=1e-12, atol=0)


def test_autodiff_path_is_generic():
    """A model with no closed form: a tanh MLP with biases, checked against a loop of autograd.grad."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()
    X = data(5, 4, 5)
    T = empirical_ntk_autodiff(net, X, chunk_size=2)
    grads = []
    for i in range(5):
        rows = []
        for c in range(2):
            g = torch.autograd.grad(net(X[i : i + 1])[0, c], list(net.parameters()))
            rows.append(torch.cat([t.reshape(-1) for t in g]))
        grads.append(torch.stack(rows))
    J = torch.stack(grads)  # (5, 2, P)
    torch.testing.assert_close(T, torch.einsum("icp,jdp->icjd", J, J), rtol=1e-12, atol=1e-14)
    assert param_jacobian(net, X).shape == (5, 2, sum(p.numel() for p in net.parameters()))


@pytest.mark.parametrize("kind", ["relu", "attn"])
def test_converges_to_the_limit_at_rate_one_over_sqrt_m(kind):
    X = data(16, 8, 6)
    widths = [64, 256, 1024, 4096, 16384]
    errs = ntk_error_vs_width(lambda m, s: MODELS[kind](X, m, 1, s), X, widths, range(16))
    slope, c = fit_power_law(widths, errs)
    assert -0.6 <= slope <= -0.4, slope
    # exact constant: Theta_m is a mean of m i.i.d. terms u_ij s_i s_j, each of variance
    # u_ij^2 k0_ij (1 - k0_ij), so E ||Theta_m - Theta_inf||_F^2 = sum_ij u_ij^2 k0_ij (1 - k0_ij) / m
    xh = features64(MODELS[kind](X, 1, 1, 0), X)
    u, k0 = xh @ xh.T, arccos0(xh)
    v = float((u**2 * k0 * (1 - k0)).sum())
    m = torch.tensor(widths, dtype=torch.float64)
    pooled = float((errs**2 * m[:, None]).mean()) / v  # 80 draws of a heavy-tailed ratio of mean 1
    assert 0.75 <= pooled <= 1.33, pooled


def test_ntk_error_vs_width_op_norm_and_errors():
    X = data(6, 4, 7)
    errs = ntk_error_vs_width(lambda m, s: MODELS["relu"](X, m, 1, s), X, [8, 32], [0, 1], norm="op")
    assert errs.shape == (2, 2) and bool((errs > 0).all())
    model = MODELS["relu"](X, 8, 1, 0)
    E = empirical_ntk(model, X) - ntk_inf(model, X)
    assert math.isclose(float(errs[0, 0]), float(torch.linalg.matrix_norm(E, ord=2)), rel_tol=1e-12)
    with pytest.raises(ValueError, match="norm"):
        ntk_error_vs_width(lambda m, s: model, X, [8], [0], norm="nuc")
    with pytest.raises(ValueError, match="at least one"):
        ntk_error_vs_width(lambda m, s: model, X, [], [0])


def test_fit_power_law_and_width_for_error_are_inverse():
    m = torch.tensor([10.0, 100.0, 1000.0], dtype=torch.float64)
    slope, c = fit_power_law(m, 3.0 * m**-0.5)
    assert math.isclose(slope, -0.5, rel_tol=1e-12) and math.isclose(c, 3.0, rel_tol=1e-12)
    s2, c2 = fit_power_law(m, 2.0 * m**-0.4, slope=-0.5)  # fixed slope: c is the geometric mean of err sqrt(m)
    assert s2 == -0.5 and math.isclose(c2, 2.0 * 10 ** float((m**0.1).log10().mean()), rel_tol=1e-12)
    assert math.isclose(width_for_error(3.0, -0.5, 3.0 * 1e6**-0.5), 1e6, rel_tol=1e-10)
    assert math.isclose(log10_width_for_error(1.0, -0.5, 1e-200), 400.0, rel_tol=1e-12)
    assert width_for_error(1.0, -0.5, 1e-200) == math.inf
    with pytest.raises(ValueError, match="negative"):
        width_for_error(1.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([2.0, 2.0], [1.0, 0.5])


def test_empirical_ntk_refuses_bad_input():
    X = data(5, 4, 8)
    model = MODELS["relu"](X, 8, 1, 0)
    with pytest.raises(ValueError, match="expects d = 4"):
        empirical_ntk(model, data(5, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        empirical_ntk(model, torch.full((2, 4), float("nan")))
    with pytest.raises(TypeError, match="empirical_ntk_autodiff"):
        empirical_ntk(torch.nn.Linear(4, 1), X)
    with pytest.raises(ValueError, match="no trainable parameters"):
        empirical_ntk_autodiff(torch.nn.ReLU(), X)
    with pytest.raises(ValueError, match="width must be at least 1"):
        relu_net(4, 0)
