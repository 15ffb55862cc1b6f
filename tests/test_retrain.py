"""Leave-one-out retraining (linattn.retrain): equal to the kernel-ridge closed form where retraining is
kernel ridge, equal to independent single runs with the documented batch order, deterministic, and
strict about its input; the agreement statistics against direct computations."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats as sps

from linattn import retrain
from linattn.data import regression_targets
from linattn.influence import influence_loo
from linattn.models import attention_keys, mlp_attn, relu_net
from linattn.train import TrainProtocol, train

F64 = torch.float64


class LinearNet(torch.nn.Module):
    """f(x) = W x (C outputs), features the raw input: trained on the MSE with the coupled L2 penalty to
    convergence, it is kernel ridge with K = X X^T and ridge = weight_decay n C / 2."""

    def __init__(self, d, C, seed=0):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(C, d, generator=torch.Generator().manual_seed(seed), dtype=F64))

    n_outputs = property(lambda self: int(self.W.shape[0]))

    def features(self, x):
        return torch.as_tensor(x, dtype=F64)

    def forward_features(self, h):
        return h @ self.W.T

    def forward(self, x):
        return self.forward_features(self.features(x))


def _linear_problem(n=10, t=7, d=6, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X, Xt = torch.randn(n, d, generator=g, dtype=F64), torch.randn(t, d, generator=g, dtype=F64)
    y, yt = torch.arange(n) % max(C, 2), torch.randint(0, max(C, 2), (t,), generator=g)
    return X, y, Xt, yt


def _gd_to_convergence(X, C, wd, epochs=3000):
    """Full-batch GD with step 1/L on the linear model's loss (L its Hessian's largest eigenvalue)."""
    n = X.shape[0]
    L = 2.0 / (n * C) * float(torch.linalg.eigvalsh(X.T @ X).max()) + wd
    return TrainProtocol(epochs=epochs, lr=1.0 / L, batch_size=None, weight_decay=wd, optimizer="gd", loss="mse")


@pytest.mark.parametrize("C", [3, 1])
def test_retraining_a_ridge_model_equals_the_closed_form(C):
    X, y, Xt, yt = _linear_problem(C=C)
    wd = 0.1
    protocol = _gd_to_convergence(X, C, wd)
    res = retrain.loo_retrain(LinearNet(6, C), X, y, Xt, yt, protocol)
    ridge = wd * X.shape[0] * C / 2                      # the ridge of the converged model
    Y = regression_targets(y, C)
    y_read = yt if C > 1 else 2.0 * yt.double() - 1.0     # true class / +-1 margin
    closed = influence_loo(X @ X.T, Y, Xt @ X.T, ridge=ridge, y_test=y_read)
    assert res.effects.shape == closed.shape == (10, 7)
    assert float(closed.abs().max()) > 1e-2               # effects that are not all zero
    torch.testing.assert_close(res.effects, closed, rtol=1e-9, atol=1e-11)
    # the full run converged to kernel ridge too
    f_krr = (Xt @ X.T) @ torch.linalg.solve(X @ X.T + ridge * torch.eye(10, dtype=F64), Y if C > 1 else Y[:, None])
    torch.testing.assert_close(res.f_test, f_krr, rtol=1e-9, atol=1e-11)


def test_the_remaining_divisor_changes_the_ridge():
    """With the mean over the n - 1 remaining points the leave-one-out run is ridge n - 1 / n times smaller:
    the closed form with the same ridge is then only approximate, with the matched ridge exact."""
    X, y, Xt, yt = _linear_problem()
    wd, C = 0.1, 3
    res = retrain.loo_retrain(LinearNet(6, C), X, y, Xt, yt, _gd_to_convergence(X, C, wd), divisor="remaining",
                              points=[2])
    Y = regression_targets(y, C)
    keep = torch.arange(10) != 2
    lam_full, lam_loo = wd * 10 * C / 2, wd * 9 * C / 2
    f = (Xt @ X.T) @ torch.linalg.solve(X @ X.T + lam_full * torch.eye(10, dtype=F64), Y)
    Xk = X[keep]
    f_loo = (Xt @ Xk.T) @ torch.linalg.solve(Xk @ Xk.T + lam_loo * torch.eye(9, dtype=F64), Y[keep])
    want = f.gather(1, yt[:, None])[:, 0] - f_loo.gather(1, yt[:, None])[:, 0]
    torch.testing.assert_close(res.effects[0], want, rtol=1e-8, atol=1e-10)


def _toy(n=12, t=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=F64)
    Xt = torch.rand(t, d, generator=g, dtype=F64)
    return X, torch.arange(n) % 3, Xt, torch.arange(t) % 3


def _model(kind, X, width=16, C=3, seed=0):
    if kind == "relu":
        return relu_net(X.shape[1], width, C, seed=seed, dtype=F64)
    return mlp_attn(attention_keys(X), width, C, seed=seed, dtype=F64)


@pytest.mark.parametrize("kind", ["relu", "attn"])
def test_full_batch_with_the_remaining_divisor_is_train_on_the_other_points(kind):
    """Full batches make the order irrelevant: the run without i is train() on the n - 1 others (for
    MLP-Attn with its attention rebuilt from them)."""
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=15, lr=1e-2, batch_size=None)
    res = retrain.loo_retrain(_model(kind, X), X, y, Xt, yt, p, points=[0, 5], divisor="remaining", seed=3)
    full = _model(kind, X)
    train(full, X, y, p, seed=3, progress=False)
    with torch.no_grad():
        g_full = full(Xt).gather(1, yt[:, None])[:, 0]
    torch.testing.assert_close(res.f_test, full(Xt).detach(), rtol=1e-10, atol=1e-12)
    for row, i in enumerate([0, 5]):
        keep = torch.arange(12) != i
        m = _model(kind, X[keep])              # same seed: the same initial W
        train(m, X[keep], y[keep], p, seed=3, progress=False)
        with torch.no_grad():
            g = m(Xt).gather(1, yt[:, None])[:, 0]
        torch.testing.assert_close(res.effects[row], g_full - g, rtol=1e-9, atol=1e-11)


def _single_run(model, X, y, Xt, p, seed, drop, divisor, keys=None):
    """One run by hand: train()'s permutations of all n points, point ``drop`` left out of its batch."""
    m = copy.deepcopy(model)
    if keys is not None:
        from linattn.models import with_attention_keys

        m = with_attention_keys(m, keys)
    H = m.features(X)
    opt = torch.optim.Adam([m.W], lr=p.lr, weight_decay=p.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    for _ in range(p.epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, p.batch_size):
            idx = perm[s:s + p.batch_size]
            kept = idx[idx != drop]
            opt.zero_grad()
            per = F.cross_entropy(m.forward_features(H[kept]), y[kept], reduction="none")
            (per.sum() / (len(idx) if divisor == "batch" else max(len(kept), 1))).backward()
            opt.step()
    with torch.no_grad():
        return m(Xt)


@pytest.mark.parametrize("kind,attention,divisor", [("relu", "recompute", "batch"), ("relu", "fixed", "remaining"),
                                                     ("attn", "recompute", "batch"), ("attn", "fixed", "batch")])
def test_minibatch_replicas_are_independent_runs_in_the_documented_order(kind, attention, divisor):
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=6, lr=2e-2, batch_size=5)
    model = _model(kind, X)
    pts = [1, 7, 11]
    res = retrain.loo_retrain(model, X, y, Xt, yt, p, points=pts, seed=4, attention=attention, divisor=divisor)
    full = _single_run(model, X, y, Xt, p, 4, -1, divisor)
    torch.testing.assert_close(res.f_test, full, rtol=1e-10, atol=1e-12)
    for row, i in enumerate(pts):
        keys = attention_keys(X[torch.arange(12) != i]) if kind == "attn" and attention == "recompute" else None
        out = _single_run(model, X, y, Xt, p, 4, i, divisor, keys)
        want = full.gather(1, yt[:, None])[:, 0] - out.gather(1, yt[:, None])[:, 0]
        torch.testing.assert_close(res.effects[row], want, rtol=1e-8, atol=1e-10)
    assert res.config["attention"] == (attention if kind == "attn" else "n/a")


def test_the_full_run_is_train_itself_in_float32():
    """(A batch's loss is summed and divided here, averaged by train(): the same up to float32 rounding.)"""
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=5, lr=1e-2, batch_size=4)
    model = relu_net(8, 32, 3, seed=1)
    res = retrain.loo_retrain(model, X, y, Xt, yt, p, points=[0], seed=2)
    m = copy.deepcopy(model)
    train(m, X, y, p, seed=2, progress=False)
    torch.testing.assert_close(res.model.W, m.W, rtol=1e-5, atol=1e-6)  # the same float32 run, to rounding
    assert torch.equal(model.W, relu_net(8, 32, 3, seed=1).W)  # the model given is not trained in place
    assert res.train_acc == pytest.approx(float((m(X).argmax(1) == y).double().mean()))


@pytest.mark.parametrize("kind", ["relu", "attn"])
def test_same_seed_same_numbers_and_chunks_do_not_matter(kind):
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=4, lr=1e-2, batch_size=5)
    a = retrain.loo_retrain(_model(kind, X), X, y, Xt, yt, p, seed=1)
    b = retrain.loo_retrain(_model(kind, X), X, y, Xt, yt, p, seed=1)
    c = retrain.loo_retrain(_model(kind, X), X, y, Xt, yt, p, seed=1, chunk=4)
    assert torch.equal(a.effects, b.effects)
    torch.testing.assert_close(c.effects, a.effects, rtol=1e-10, atol=1e-13)
    assert c.full_spread < 1e-12 and c.config["chunk"] == 4
    other = retrain.loo_retrain(_model(kind, X), X, y, Xt, yt, p, seed=2)
    assert not torch.allclose(other.effects, a.effects)    # the seed is the minibatch order


def test_removing_a_point_from_the_attention_moves_the_effects():
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=6, lr=1e-2, batch_size=None)
    rec = retrain.loo_retrain(_model("attn", X), X, y, Xt, yt, p, attention="recompute")
    fix = retrain.loo_retrain(_model("attn", X), X, y, Xt, yt, p, attention="fixed")
    torch.testing.assert_close(rec.f_test, fix.f_test)      # the full runs are the same network
    assert float((rec.effects - fix.effects).abs().max()) > 1e-3


def test_binary_task_reads_the_margin():
    X, _, Xt, _ = _toy()
    y, yt = torch.arange(12) % 2, torch.tensor([0, 1, 1, 0, 1])
    p = TrainProtocol(epochs=5, lr=1e-2, batch_size=None)
    model = relu_net(8, 16, 1, seed=0, dtype=F64)
    res = retrain.loo_retrain(model, X, y, Xt, yt, p, points=[3], divisor="remaining")
    keep = torch.arange(12) != 3
    m_full, m_loo = copy.deepcopy(model), copy.deepcopy(model)
    train(m_full, X, regression_targets(y, 1), p, progress=False)
    train(m_loo, X[keep], regression_targets(y[keep], 1), p, progress=False)
    sign = 2.0 * yt.double() - 1.0
    with torch.no_grad():
        want = sign * (m_full(Xt)[:, 0] - m_loo(Xt)[:, 0])
    torch.testing.assert_close(res.effects[0], want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(retrain.readout(m_full(Xt).detach(), yt), sign * m_full(Xt)[:, 0].detach())
    with pytest.raises(ValueError, match=r"out must have shape \(..., t, C\) with t = 4"):
        retrain.readout(m_full(Xt).detach(), yt[:4])
    with pytest.raises(ValueError, match="class indices in"):
        retrain.readout(torch.zeros(5, 3), torch.tensor([0, 1, 2, 3, 0]))


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(points=[0, 12]), ValueError, r"points must be training indices in \[0, 11\]"),
    (dict(points=[1, 1]), ValueError, "repeated"),
    (dict(points=[]), ValueError, "empty"),
    (dict(points=[0.5]), ValueError, "integers"),
    (dict(attention="both"), ValueError, "attention must be 'recompute' or 'fixed'"),
    (dict(divisor="n"), ValueError, "divisor must be 'batch' or 'remaining'"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(chunk=0), ValueError, "chunk"),
])
def test_bad_arguments_are_refused(kwargs, err, match):
    X, y, Xt, yt = _toy()
    with pytest.raises(err, match=match):
        retrain.loo_retrain(_model("relu", X), X, y, Xt, yt, TrainProtocol(epochs=1), **kwargs)


def test_bad_inputs_are_refused():
    X, y, Xt, yt = _toy()
    p = TrainProtocol(epochs=1)
    with pytest.raises(TypeError, match="TrainProtocol"):
        retrain.loo_retrain(_model("relu", X), X, y, Xt, yt, {"epochs": 1})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        retrain.loo_retrain("net", X, y, Xt, yt, p)
    with pytest.raises(ValueError, match="y_test has 4 labels for the 5 rows"):
        retrain.loo_retrain(_model("relu", X), X, y, Xt, yt[:4], p)
    with pytest.raises(ValueError, match="y_train has 11 labels"):
        retrain.loo_retrain(_model("relu", X), X, y[:11], Xt, yt, p)
    with pytest.raises(ValueError, match="X_test has 7 columns"):
        retrain.loo_retrain(_model("relu", X), X, y, Xt[:, :7], yt, p)
    with pytest.raises(ValueError, match="NaN"):
        retrain.loo_retrain(_model("relu", X), X * float("nan"), y, Xt, yt, p)
    with pytest.raises(ValueError, match="class indices in"):
        retrain.loo_retrain(_model("relu", X), X, y + 3, Xt, yt, p)
    other = mlp_attn(attention_keys(X[:6]), 16, 3, dtype=F64)  # attention over another set
    with pytest.raises(ValueError, match="attention C was not built from X_train"):
        retrain.loo_retrain(other, X, y, Xt, yt, p)
    retrain.loo_retrain(other, X, y, Xt, yt, p, attention="fixed", points=[0])  # allowed: C is held fixed
    with pytest.raises(retrain_diverged()):
        retrain.loo_retrain(relu_net(8, 16, 3), X, y, Xt, yt, TrainProtocol(epochs=30, lr=1e36, batch_size=None,
                                                                           optimizer="gd"), points=[0])


def retrain_diverged():
    from linattn.train import TrainingDivergedError

    return TrainingDivergedError


# --------------------------------------------------------------------------- statistics


def test_fisher_interval_is_the_textbook_formula():
    lo, hi = retrain.fisher_interval(0.5, 103)
    z, se = math.atanh(0.5), 1 / 10
    assert lo == pytest.approx(math.tanh(z - 1.959963984540054 * se)) and hi == pytest.approx(math.tanh(z + 1.959963984540054 * se))
    slo, shi = retrain.fisher_interval(0.5, 103, method="spearman")
    assert slo < lo and shi > hi                           # Bonett-Wright: wider for Spearman
    assert retrain.fisher_interval(1.0, 10) == (1.0, 1.0)
    with pytest.raises(ValueError, match="n must be"):
        retrain.fisher_interval(0.5, 3)
    with pytest.raises(ValueError, match=r"r must lie in \[-1.0, 1.0\]"):
        retrain.fisher_interval(1.5, 30)


def test_correlations_and_sign_agreement_against_scipy():
    g = np.random.default_rng(0)
    a = g.normal(size=(30, 8))
    b = a + g.normal(size=(30, 8))
    c = retrain.correlation(a.mean(1), b.mean(1), "spearman")
    assert c["r"] == pytest.approx(sps.spearmanr(a.mean(1), b.mean(1)).statistic) and c["n"] == 30
    assert c["lo"] < c["r"] < c["hi"]
    p = retrain.pair_correlation(a, b, "pearson", n_boot=200, seed=1)
    assert p["r"] == pytest.approx(sps.pearsonr(a.ravel(), b.ravel()).statistic)
    assert p["n"] == 240 and p["rows"] == 30 and p["lo"] < p["r"] < p["hi"]
    assert retrain.pair_correlation(a, b, "pearson", n_boot=200, seed=1) == p    # seeded
    s = retrain.sign_agreement([3.0, -2.0, 0.1, 1.0, -0.5], [1.0, 2.0, -5.0, 1.0, 1.0], tau=0.4)
    assert (s["k"], s["n"]) == (1, 2)                        # top 2 by |pred|: points 0 (agrees), 1 (does not)
    full = retrain.agreement(a, b, tau=0.1, n_boot=50)
    assert full["n_points"] == 30 and full["n_pairs"] == 240 and full["sign_n"] == 3
    assert retrain.agreement(a, a, n_boot=50)["scores_pearson_r"] == pytest.approx(1.0)
    assert math.isnan(retrain.correlation(np.ones(5), np.arange(5.0))["r"])
    with pytest.raises(ValueError, match="same number of entries"):
        retrain.correlation(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match="same shape"):
        retrain.pair_correlation(a, b[:, :3])


def test_correlation_difference_is_zous_interval():
    a, b = {"r": 0.6, "lo": 0.45, "hi": 0.72}, {"r": 0.1, "lo": -0.1, "hi": 0.29}
    d = retrain.correlation_difference(a, b)
    assert d["diff"] == pytest.approx(0.5)
    assert d["lo"] == pytest.approx(0.5 - math.hypot(0.15, 0.19)) and d["hi"] == pytest.approx(0.5 + math.hypot(0.12, 0.2))
    same = retrain.correlation_difference(a, a)
    assert same["lo"] < 0 < same["hi"]
    with pytest.raises(TypeError, match="dict with r, lo and hi"):
        retrain.correlation_difference(0.6, b)


def test_the_packaged_linear_model_is_kernel_ridge_too():
    X, y, Xt, yt = _linear_problem(n=9, C=2)
    protocol = _gd_to_convergence(X, 2, 0.2)
    res = retrain.loo_retrain(retrain.LinearModel(6, 2, seed=3), X, y, Xt, yt, protocol)
    ridge = retrain.converged_ridge(0.2, 9, 2)
    assert ridge == pytest.approx(0.2 * 9 * 2 / 2)
    closed = influence_loo(X @ X.T, regression_targets(y, 2), Xt @ X.T, ridge=ridge, y_test=yt)
    torch.testing.assert_close(res.effects, closed, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="x has 5 features"):
        retrain.LinearModel(6, 2)(X[:, :5])
    with pytest.raises(ValueError, match="weight_decay"):
        retrain.converged_ridge(0.0, 9, 2)
