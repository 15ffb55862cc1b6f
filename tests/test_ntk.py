"""Tests of linattn.ntk: closed form against torch.func autodiff, and convergence to the limit."""
import math

import pytest
import torch

from linattn.attention import truncated_attention_map
from linattn.kernels import arccos0, features64, ntk_inf, ntk_relu
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


# ----------------------------------------------------------------- whitened error, solve error, Bernstein

from scipy.linalg import eigh as scipy_eigh  # noqa: E402

from linattn.ntk import (  # noqa: E402
    PowerLawFit,
    bernstein_bound,
    error_measures,
    fit_power_law_seeds,
    empirical_ntk_wide,
    measured_bracket,
    ntk_errors_vs_width,
    ntk_variance,
    solve_error,
    whitened_error,
)


def _psd(n, seed, floor=1e-2):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    return A @ A.T / n + floor * torch.eye(n, dtype=torch.float64)


def _sym(n, seed, scale=1e-2):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    return scale * (A + A.T) / 2


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_whitened_error_is_the_largest_generalised_eigenvalue(ridge):
    T, E = _psd(12, 0), _sym(12, 1)
    nu = scipy_eigh(E.numpy(), (T + ridge * torch.eye(12, dtype=torch.float64)).numpy(), eigvals_only=True)
    assert math.isclose(whitened_error(T + E, T, ridge=ridge), float(abs(nu).max()), rel_tol=1e-10)


def test_whitened_error_closed_forms_and_the_weyl_sandwich():
    T = torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64))
    E = torch.diag(torch.tensor([0.4, -0.05, 0.02], dtype=torch.float64))
    assert math.isclose(whitened_error(T + E, T), max(0.4 / 4, 0.05 / 1, 0.02 / 0.25), rel_tol=1e-12)
    assert math.isclose(whitened_error(1.3 * T, T), 0.3, rel_tol=1e-12)  # a multiple of the kernel: delta = |t|
    assert math.isclose(whitened_error(T + E, T, ridge=0.75), max(0.4 / 4.75, 0.05 / 1.75, 0.02 / 1.0), rel_tol=1e-12)
    # ||E|| / lambda_max <= delta <= ||E|| / lambda_min (Weyl's criterion is the upper end) ...
    T2, E2 = _psd(15, 2), _sym(15, 3)
    ev, opE = torch.linalg.eigvalsh(T2), float(torch.linalg.matrix_norm(E2, 2))
    d = whitened_error(T2 + E2, T2)
    assert opE / float(ev[-1]) <= d <= opE / float(ev[0])
    # ... attained when E lies along the smallest eigenvector
    mu, V = torch.linalg.eigh(T2)
    E3 = 1e-3 * torch.outer(V[:, 0], V[:, 0])
    assert math.isclose(whitened_error(T2 + E3, T2), 1e-3 / float(mu[0]), rel_tol=1e-8)


def test_whitened_error_is_a_two_sided_spectral_bound():
    T, E = _psd(10, 4), _sym(10, 5, 3e-3)
    d = whitened_error(T + E, T)
    assert 0 < d < 1
    low = torch.linalg.eigvalsh(T + E - (1 - d) * T).min()
    high = torch.linalg.eigvalsh((1 + d) * T - (T + E)).min()
    assert float(low) >= -1e-12 and float(high) >= -1e-12
    assert min(float(low), float(high)) <= 1e-10  # and tight on one side


def test_solve_error_closed_form_and_the_whitened_bound():
    T = _psd(9, 6)
    y = torch.randn(9, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert math.isclose(solve_error(1.25 * T, T, y), 0.25 / 1.25, rel_tol=1e-10)  # alpha_m = alpha / 1.25
    a, b, r = torch.tensor([2.0, 0.5]), torch.tensor([2.5, 0.4]), 0.1
    yy = torch.tensor([1.0, -2.0], dtype=torch.float64)
    am, ai = yy / (b.double() + r), yy / (a.double() + r)
    want = float(torch.linalg.vector_norm(am - ai) / torch.linalg.vector_norm(ai))
    assert math.isclose(solve_error(torch.diag(b).double(), torch.diag(a).double(), yy, ridge=r), want, rel_tol=1e-12)
    # fitted values: ridge ||d alpha|| / ||y - ridge alpha||, and zero without a ridge
    fit = float(r * torch.linalg.vector_norm(am - ai) / torch.linalg.vector_norm(yy - r * ai))
    assert math.isclose(solve_error(torch.diag(b).double(), torch.diag(a).double(), yy, ridge=r, on="fit"), fit, rel_tol=1e-10)
    E = _sym(9, 8, 2e-3)
    assert solve_error(T + E, T, y, on="fit") < 1e-10
    # in the norm of Theta_inf the alpha error is at most delta / (1 - delta)
    d = whitened_error(T + E, T)
    mu, V = torch.linalg.eigh(T)
    half = V @ torch.diag(mu.sqrt()) @ V.T
    al, alm = torch.linalg.solve(T, y), torch.linalg.solve(T + E, y)
    for c in range(3):
        lhs = float(torch.linalg.vector_norm(half @ (alm - al)[:, c]) / torch.linalg.vector_norm(half @ al[:, c]))
        assert lhs <= d / (1 - d) + 1e-12


def test_error_measures_refuse_bad_input():
    T = _psd(4, 9)
    with pytest.raises(ValueError, match="T_m has shape"):
        whitened_error(_psd(3, 1), T)
    with pytest.raises(ValueError, match="T_inf must be symmetric"):
        whitened_error(T, T + torch.triu(torch.ones(4, 4, dtype=torch.float64), 1))
    with pytest.raises(ValueError, match="ridge must lie in"):
        whitened_error(T, T, ridge=-1.0)
    singular = torch.ones(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="T_inf \\+ ridge I is singular.*add a ridge"):
        whitened_error(T, singular)
    assert whitened_error(singular + 0.1 * torch.eye(4, dtype=torch.float64), singular, ridge=0.1) > 0
    with pytest.raises(ValueError, match="y has 3 rows for the 4 points"):
        solve_error(T, T, torch.ones(3))
    with pytest.raises(ValueError, match="all zeros"):
        solve_error(T, T, torch.zeros(4))
    with pytest.raises(ValueError, match="on must be 'alpha' or 'fit'"):
        solve_error(T, T, torch.ones(4), on="test")
    with pytest.raises(ValueError, match="NaN or inf"):
        solve_error(T, T, torch.tensor([1.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match="ridge must lie in"):
        error_measures(torch.ones(4), ridge=0.0)


def test_ntk_errors_vs_width_builds_each_kernel_once_for_every_measure():
    X = data(6, 10, 10)
    y = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    make = lambda m, s: MODELS["attn"](X, m, 1, s)  # noqa: E731
    R = ntk_errors_vs_width(make, X, [16, 64], [0, 1, 2], error_measures(y, ridge=1e-2))
    assert list(R) == ["op", "fro", "whitened", "solve", "solve_ridge"]
    assert all(v.shape == (2, 3) and v.dtype == torch.float64 for v in R.values())
    torch.testing.assert_close(R["op"], ntk_error_vs_width(make, X, [16, 64], [0, 1, 2], norm="op"), rtol=0, atol=0)
    torch.testing.assert_close(R["fro"], ntk_error_vs_width(make, X, [16, 64], [0, 1, 2]), rtol=0, atol=0)
    T, Ti = empirical_ntk(make(64, 2), X), ntk_inf(make(1, 0), X)
    assert R["whitened"][1, 2] == whitened_error(T, Ti) and R["solve_ridge"][1, 2] == solve_error(T, Ti, y, ridge=1e-2)
    ev = torch.linalg.eigvalsh(Ti)
    assert bool((R["op"] / ev[-1] <= R["whitened"] * (1 + 1e-9)).all())  # the sandwich, on real kernels
    assert bool((R["whitened"] <= R["op"] / ev[0] * (1 + 1e-9)).all())
    with pytest.raises(TypeError, match="measures must be a non-empty dict"):
        ntk_errors_vs_width(make, X, [16], [0], {})
    with pytest.raises(TypeError, match="measures\\['x'\\] must be a callable"):
        ntk_errors_vs_width(make, X, [16], [0], {"x": 1.0})


def test_ntk_variance_matches_monte_carlo_and_bernstein_bounds_the_mean_error():
    X = data(7, 5, 11)
    Xh = features64(MODELS["relu"](X, 1, 1, 0), X)
    V = ntk_variance(Xh)
    U, T = Xh @ Xh.T, ntk_relu(Xh)
    g = torch.Generator().manual_seed(0)
    acc = torch.zeros(7, 7, dtype=torch.float64)
    M = 200_000
    for _ in range(M // 20_000):  # one unit's term Theta^(r) = U * s s^T, squared and averaged
        S = (Xh @ torch.randn(20_000, 5, generator=g, dtype=torch.float64).T > 0).double().T  # (B, N)
        D = U[None] * (S[:, :, None] * S[:, None, :]) - T[None]
        acc += torch.einsum("bij,bjk->ik", D, D)
    torch.testing.assert_close(acc / M, V, rtol=0, atol=0.01 * float(V.abs().max()))
    # k = j in the orthant formula: diag of E[(Theta^(r))^2] is sum_k U_ik^2 k0_ik
    k0 = arccos0(Xh)
    torch.testing.assert_close(torch.diag(V + T @ T), (U**2 * k0).sum(1), rtol=1e-12, atol=1e-14)
    b = bernstein_bound(Xh)
    assert b.n == 7 and 0 < b.sigma2 <= b.L * b.lambda_max * (1 + 1e-12)
    errs = ntk_error_vs_width(lambda m, s: MODELS["relu"](X, m, 1, s), X, [64, 1024], range(8), norm="op")
    assert float(errs[0].mean()) <= b.bound(64) and float(errs[1].mean()) <= b.bound(1024)
    assert math.isclose(b.c, math.sqrt(2 * b.sigma2 * math.log(14)), rel_tol=1e-12)
    with pytest.raises(ValueError, match="unit"):
        ntk_variance(2 * Xh)


def test_fit_power_law_seeds_and_its_range():
    m = torch.tensor([10.0, 100.0, 1000.0, 10000.0], dtype=torch.float64)
    exact = torch.stack([3.0 * m**-0.5, 5.0 * m**-0.5], dim=1)
    f = fit_power_law_seeds(m, exact)
    assert math.isclose(f.slope, -0.5, rel_tol=1e-12) and f.slope_se < 1e-12 and f.seeds == 2
    assert math.isclose(f.c, math.sqrt(15.0), rel_tol=1e-12)  # geometric mean of the seeds' constants
    lo, mid, hi = f.log10_width(math.sqrt(15.0) * 1e-3, level=0.95)
    assert math.isclose(mid, 6.0, rel_tol=1e-12) and lo <= mid <= hi
    g = torch.Generator().manual_seed(0)
    noisy = 2.0 * m[:, None] ** -0.5 * torch.exp(0.2 * torch.randn(4, 5, generator=g, dtype=torch.float64))
    f = fit_power_law_seeds(m, noisy)
    s_ref, _ = fit_power_law(m, 10 ** noisy.log10().mean(1))  # the mean slope is the fit to the mean log
    assert math.isclose(f.slope, s_ref, rel_tol=1e-12)
    slopes = [fit_power_law(m, noisy[:, j])[0] for j in range(5)]
    assert math.isclose(f.slope_se, float(torch.tensor(slopes, dtype=torch.float64).std()) / math.sqrt(5), rel_tol=1e-10)
    lo, mid, hi = f.log10_width(1e-6, level=0.95)
    assert lo < mid < hi and f.log10_width(1e-6) == (mid, mid, mid)
    blo, bmid, bhi = f.log10_error(torch.tensor([10 ** f.x0, 1e8]), level=0.95)
    assert bool((blo <= bmid).all() and (bmid <= bhi).all()) and float(bhi[1] - blo[1]) > float(bhi[0] - blo[0])
    # a slope interval that reaches 0: the error may not fall, so the width has no upper end
    flat = PowerLawFit(slope=-0.1, slope_se=0.2, x0=2.0, y0=0.0, y0_se=0.0, seeds=3)
    assert flat.log10_width(0.1, level=0.95)[2] == math.inf
    with pytest.raises(ValueError, match="does not fall"):
        PowerLawFit(0.1, 0.0, 2.0, 0.0, 0.0, 3).log10_width(0.1)
    with pytest.raises(ValueError, match="at least two seeds"):
        fit_power_law_seeds(m, exact[:, :1]).log10_width(0.1, level=0.9)
    with pytest.raises(ValueError, match="one row per width"):
        fit_power_law_seeds(m, exact[:3])


def test_measured_bracket():
    w = [16, 64, 256, 1024]
    e = torch.tensor([[0.9, 0.8], [0.5, 0.3], [0.2, 0.11], [0.05, 0.12]], dtype=torch.float64)
    assert measured_bracket(w, e, 0.1) == (256, None)  # at 1024 one seed already meets 0.1, the other not
    assert measured_bracket(w, e, 0.25) == (64, 256)
    assert measured_bracket(w, e, 0.01) == (1024, None)
    assert measured_bracket(w, e, 1.0) == (None, 16)
    with pytest.raises(ValueError, match="target must lie in"):
        measured_bracket(w, e, 0.0)


@pytest.mark.parametrize("kind", ["relu", "attn"])
def test_empirical_ntk_wide_draws_the_same_units_as_the_net(kind):
    X = data(9, 6, 12)
    for m, block in ((100, 32), (64, 64), (50, 1000)):
        want = empirical_ntk(MODELS[kind](X, m, 1, 3), X)
        got = empirical_ntk_wide(MODELS[kind](X, 1, 2, 3), X, m, block=block)  # any width and outputs: the seed counts
        torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)
    make = lambda m, s: MODELS[kind](X, m, 1, s)  # noqa: E731
    meas = {"op": lambda A, B: float(torch.linalg.matrix_norm(A - B, 2))}
    torch.testing.assert_close(ntk_errors_vs_width(make, X, [40, 80], [0, 1], meas, block=16)["op"],
                               ntk_errors_vs_width(make, X, [40, 80], [0, 1], meas)["op"], rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="TwoLayerNet"):
        empirical_ntk_wide(torch.nn.Linear(6, 1), X, 10)
    with pytest.raises(ValueError, match="block must be at least 1"):
        empirical_ntk_wide(make(1, 0), X, 10, block=0)
