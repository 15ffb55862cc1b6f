"""Kernel ridge and exact leave-one-out influence (linattn.influence) against brute-force refits."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeCV

from linattn.influence import (
    influence_loo,
    influence_scores,
    loo_predictions,
    ridge_bias,
)
from linattn.predictors import KernelRidge

F64 = torch.float64


def _rbf_problem(n=12, t=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    Xt = torch.randn(t, d, generator=g, dtype=F64)
    K = torch.exp(-torch.cdist(X, X) ** 2 / d)
    Kt = torch.exp(-torch.cdist(Xt, X) ** 2 / d)
    return K, Kt, g


def _refit_without(K, Kt, Y, i, ridge):
    """Brute force: solve kernel ridge on the n - 1 other points, predict the test points."""
    keep = torch.arange(K.shape[0]) != i
    M = K[keep][:, keep] + ridge * torch.eye(int(keep.sum()), dtype=F64)
    return Kt[:, keep] @ torch.linalg.solve(M, Y[keep])


def _full(K, Kt, Y, ridge):
    return Kt @ torch.linalg.solve(K + ridge * torch.eye(K.shape[0], dtype=F64), Y)


def test_kernel_ridge_matches_direct_solve():
    K, Kt, g = _rbf_problem()
    y = torch.randn(12, 3, generator=g, dtype=F64)
    kr = KernelRidge(0.05).fit(K, y)
    torch.testing.assert_close(kr.predict(Kt), _full(K, Kt, y, 0.05), rtol=1e-12, atol=1e-12)
    A = torch.linalg.inv(K + 0.05 * torch.eye(12, dtype=F64))
    torch.testing.assert_close(kr.inverse_diagonal(), A.diagonal(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("ridge", [1e-3, 0.1, 3.0])
def test_loo_output_equals_refit_without_each_point_scalar(ridge):
    K, Kt, g = _rbf_problem()
    y = torch.randn(12, generator=g, dtype=F64)
    I = influence_loo(K, y, Kt, ridge=ridge, target="output")
    f = _full(K, Kt, y, ridge)
    brute = torch.stack([f - _refit_without(K, Kt, y, i, ridge) for i in range(12)])
    assert I.shape == (12, 5) and I.dtype == F64
    torch.testing.assert_close(I, brute, rtol=1e-9, atol=1e-12)


def test_loo_true_class_multiclass_equals_refit():
    K, Kt, g = _rbf_problem(n=10, t=6)
    labels = torch.randint(0, 3, (10,), generator=g)
    Y = torch.nn.functional.one_hot(labels, 3).to(F64)
    y_test = torch.randint(0, 3, (6,), generator=g)
    ridge = 0.02
    F = _full(K, Kt, Y, ridge)
    brute = torch.stack([(F - _refit_without(K, Kt, Y, i, ridge))[torch.arange(6), y_test] for i in range(10)])
    torch.testing.assert_close(influence_loo(K, Y, Kt, ridge=ridge, y_test=y_test), brute, rtol=1e-9, atol=1e-12)
    # coded test labels (one-hot rows) give the same readout as class indices
    coded = torch.nn.functional.one_hot(y_test, 3).to(F64)
    torch.testing.assert_close(influence_loo(K, Y, Kt, ridge=ridge, y_test=coded), brute, rtol=1e-9, atol=1e-12)
    # target="output" reads one output column
    brute_c1 = torch.stack([(F - _refit_without(K, Kt, Y, i, ridge))[:, 1] for i in range(10)])
    I1 = influence_loo(K, Y, Kt, ridge=ridge, target="output", output_class=1)
    torch.testing.assert_close(I1, brute_c1, rtol=1e-9, atol=1e-12)


def test_loo_true_class_scalar_is_margin_toward_label():
    K, Kt, g = _rbf_problem(n=9, t=4)
    y = torch.sign(torch.randn(9, generator=g, dtype=F64))
    y_test = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=F64)
    ridge = 0.1
    f = _full(K, Kt, y, ridge)
    brute = torch.stack([y_test * (f - _refit_without(K, Kt, y, i, ridge)) for i in range(9)])
    torch.testing.assert_close(influence_loo(K, y, Kt, ridge=ridge, y_test=y_test), brute, rtol=1e-9, atol=1e-12)


def test_loo_loss_change_equals_refit():
    K, Kt, g = _rbf_problem(n=10, t=5)
    Y = torch.randn(10, 2, generator=g, dtype=F64)
    Yt = torch.randn(5, 2, generator=g, dtype=F64)
    ridge = 0.05
    F = _full(K, Kt, Y, ridge)
    brute = torch.stack(
        [((F - Yt) ** 2).sum(1) - ((_refit_without(K, Kt, Y, i, ridge) - Yt) ** 2).sum(1) for i in range(10)]
    )
    torch.testing.assert_close(influence_loo(K, Y, Kt, ridge=ridge, y_test=Yt, target="loss"), brute,
                               rtol=1e-9, atol=1e-12)


def test_loo_predictions_match_sklearn_ridgecv_linear_kernel():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 6))
    y = rng.standard_normal(30)
    ridge = 0.7
    K = torch.as_tensor(X @ X.T)
    ours = loo_predictions(K, torch.as_tensor(y), ridge=ridge).numpy()
    # with a scoring, RidgeCV stores the leave-one-out predictions; without, their squared errors
    preds = RidgeCV(alphas=[ridge], fit_intercept=False, gcv_mode="eigen", store_cv_results=True,
                    scoring="neg_mean_squared_error").fit(X, y).cv_results_[:, 0]
    sq = RidgeCV(alphas=[ridge], fit_intercept=False, gcv_mode="eigen", store_cv_results=True).fit(X, y)
    np.testing.assert_allclose(ours, preds, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose((y - ours) ** 2, sq.cv_results_[:, 0], rtol=1e-10, atol=1e-12)
    # and the same LOO values come out of influence_loo with the training points as test points
    I = influence_loo(K, torch.as_tensor(y), K, ridge=ridge, target="output")
    f = KernelRidge(ridge).fit(K, torch.as_tensor(y)).predict(K)
    np.testing.assert_allclose((f - I.diagonal()).numpy(), preds, rtol=1e-10, atol=1e-12)


def test_sign_convention_hand_made():
    # Two far-apart training points (orthogonal kernel rows), targets +1 and -1; the test point sits
    # on point 0. Removing point 0 (target +1) lowers the prediction there: influence > 0.
    # Removing point 1 (target -1, kernel 0 to the test point) changes nothing: influence 0.
    K = torch.eye(2, dtype=F64)
    y = torch.tensor([1.0, -1.0], dtype=F64)
    Kt = torch.tensor([[1.0, 0.0]], dtype=F64)
    I = influence_loo(K, y, Kt, ridge=1.0, target="output")
    # f = k^T (K + I)^{-1} y = 0.5, f_{-0} = 0: I(0, 0) = 0.5 exactly
    assert I[0, 0] == pytest.approx(0.5, abs=1e-15)
    assert I[1, 0] == pytest.approx(0.0, abs=1e-15)
    # a point that pushes the prediction up (+1 label, similar input) has positive influence on a test
    # point whose true class is +1, and negative on one whose true class is -1
    I2 = influence_loo(K, y, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64), ridge=1.0,
                       y_test=torch.tensor([1.0, -1.0], dtype=F64))
    assert I2[0, 0] > 0 > I2[0, 1]
    # the loss readout: a helpful point (removing it raises the loss) has a negative loss influence
    IL = influence_loo(K, y, Kt, ridge=1.0, y_test=torch.tensor([1.0], dtype=F64), target="loss")
    assert IL[0, 0] == pytest.approx(0.25 - 1.0, abs=1e-15)  # (0.5 - 1)^2 - (0 - 1)^2


def test_influence_scores_aggregates():
    I = torch.tensor([[1.0, -3.0], [2.0, 2.0]], dtype=F64)
    torch.testing.assert_close(influence_scores(I), torch.tensor([-1.0, 2.0], dtype=F64))
    torch.testing.assert_close(influence_scores(I, "sum"), torch.tensor([-2.0, 4.0], dtype=F64))
    torch.testing.assert_close(influence_scores(I, "mean_abs"), torch.tensor([2.0, 2.0], dtype=F64))
    torch.testing.assert_close(influence_scores(I, "max_abs"), torch.tensor([3.0, 2.0], dtype=F64))
    with pytest.raises(ValueError, match="aggregate"):
        influence_scores(I, "median")


def test_ridge_bias_matches_fitted_residual():
    K, _, g = _rbf_problem(n=15)
    y = torch.randn(15, generator=g, dtype=F64)
    ridge = 0.03
    mu, U = torch.linalg.eigh(K)
    mu = mu.clamp_min(0)
    K = U @ torch.diag(mu) @ U.T
    resid = y - K @ torch.linalg.solve(K + ridge * torch.eye(15, dtype=F64), y)
    assert float(ridge_bias(mu, U.T @ y, ridge=ridge)) == pytest.approx(float(resid @ resid), rel=1e-10)


def test_errors():
    K, Kt, _ = _rbf_problem(n=5, t=2)
    y = torch.ones(5, dtype=F64)
    with pytest.raises(ValueError, match="square"):
        influence_loo(K[:, :4], y, Kt, ridge=0.1, target="output")
    bad = K.clone()
    bad[0, 1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        influence_loo(bad, y, Kt, ridge=0.1, target="output")
    for ridge in (0.0, -1.0):
        with pytest.raises(ValueError, match="ridge"):
            influence_loo(K, y, Kt, ridge=ridge, target="output")
    with pytest.raises(ValueError, match="rows"):
        influence_loo(K, torch.ones(4, dtype=F64), Kt, ridge=0.1, target="output")
    with pytest.raises(ValueError, match="K_test"):
        influence_loo(K, y, Kt[:, :3], ridge=0.1, target="output")
    nan = K.clone()
    nan[2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        influence_loo(nan, y, Kt, ridge=0.1, target="output")
    with pytest.raises(ValueError, match="NaN"):
        influence_loo(K, torch.tensor([1.0, float("nan"), 1, 1, 1]), Kt, ridge=0.1, target="output")
    with pytest.raises(ValueError, match="y_test"):
        influence_loo(K, y, Kt, ridge=0.1)  # true_class needs labels
    with pytest.raises(ValueError, match="y_test"):
        influence_loo(K, torch.ones(5, 3, dtype=F64), Kt, ridge=0.1, y_test=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="output_class"):
        influence_loo(K, torch.ones(5, 3, dtype=F64), Kt, ridge=0.1, target="output")
    with pytest.raises(ValueError, match="target"):
        influence_loo(K, y, Kt, ridge=0.1, target="margin")
    with pytest.raises(ValueError, match="positive"):
        KernelRidge(1e-6).fit(-torch.eye(3, dtype=F64), torch.ones(3))
    with pytest.raises(RuntimeError, match="fit"):
        KernelRidge(0.1).predict(Kt)


def test_benchmark_quick_mode_runs_and_agrees():
    import pathlib
    import runpy

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_influence.py"
    out = runpy.run_path(str(path), run_name="bench")["main"](["--quick", "--refits", "5"])
    assert out["n"] == 300 and out["t"] == 60
    assert out["max_abs_diff"] < 1e-10 * max(1.0, out["max_abs_influence"])
    assert out["closed_form_s"] > 0 and out["brute_force_s"] > 0
