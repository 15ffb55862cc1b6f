"""The exact leave-one-out influence of kernel ridge regression, from one factorisation.

Kernel ridge on a training kernel K (n x n) with ridge > 0 and targets y ((n,) or (n, C)):

    A = (K + ridge I)^{-1},   alpha = A y,   f(x) = k(x)^T alpha,

with k(x) = (K(x, x_1), ..., K(x, x_n)). Refitting without training point i (the rows and
columns of the other points kept as they are) has the closed form

    f_{-i}(x) = k(x)^T (alpha - (alpha_i / A_ii) A e_i),                        (LOO)

because beta = alpha - (alpha_i / A_ii) A e_i has beta_i = 0 and (K + ridge I) beta = y - c e_i,
so its other entries solve the ridge system of the n - 1 remaining points. The influence of
training point i on test point t is the counterfactual

    I(i, t) = g(f(x_t)) - g(f_{-i}(x_t))         (THE sign convention of this package)

for a scalar readout g of the prediction (the ``target`` of :func:`influence_loo`): **I(i, t) > 0
means that removing point i lowers g at x_t** (i pushed g up). With g the true-class output a
positive influence is a helpful point; with g the squared test loss a positive influence is a
harmful one (removing it lowers the loss). Every influence in this package uses this sign.

Everything is float64 and comes from one Cholesky factorisation of K + ridge I, made by the
package's kernel-ridge solver :class:`linattn.predictors.KernelRidge`. Also here:
:func:`loo_predictions` (Allen's PRESS), :func:`influence_scores` (one score a training point)
and :func:`ridge_bias` (the bias of kernel ridge in the eigenbasis of K).
"""
from __future__ import annotations

from typing import Literal

import torch

from ._validation import as_tensor, check_int, check_option, check_range, check_square_symmetric
from .predictors import KernelRidge

__all__ = ["loo_predictions", "influence_loo", "influence_scores", "ridge_bias"]

Target = Literal["true_class", "output", "loss"]
Aggregate = Literal["mean", "mean_abs", "sum", "max_abs"]
TARGETS = ("true_class", "output", "loss")
AGGREGATES = ("mean", "sum", "mean_abs", "max_abs")


def _check_targets(y, n: int, name: str = "y") -> torch.Tensor:
    t = as_tensor(y, name, ndim=(1, 2))
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} rows but the kernel has n = {n}; pass one target row per point")
    return t


def loo_predictions(K, y, *, ridge: float) -> torch.Tensor:
    """Leave-one-out predictions on the training points, f_{-i}(x_i) = y_i - alpha_i / A_ii.

    The classical identity (Allen's PRESS), from (LOO) with x = x_i. K (n, n), y (n,) or (n, C)
    -> same shape as y, float64.
    """
    kr = KernelRidge(ridge).fit(K, y)
    y = _check_targets(y, kr.n)
    diag = kr.inverse_diagonal()
    return y - kr.alpha / (diag if y.ndim == 1 else diag[:, None])


def _class_index(y_test: torch.Tensor, t: int, n_classes: int) -> torch.Tensor:
    """Class indices (t,) from labels given as indices (t,) or coded rows (t, C) (argmax)."""
    if y_test.ndim == 2:
        if y_test.shape != (t, n_classes):
            raise ValueError(f"y_test must have shape ({t},) or ({t}, {n_classes}), got {tuple(y_test.shape)}")
        return y_test.argmax(dim=1)
    if y_test.shape != (t,):
        raise ValueError(f"y_test must have shape ({t},) or ({t}, {n_classes}), got {tuple(y_test.shape)}")
    idx = y_test.round()
    if bool((idx != y_test).any()) or bool((idx < 0).any()) or bool((idx >= n_classes).any()):
        raise ValueError(f"y_test given as class indices must be integers in [0, {n_classes - 1}]")
    return idx.long()


def influence_loo(
    K,
    y,
    K_test,
    *,
    ridge: float,
    y_test=None,
    target: Target = "true_class",
    output_class: int | None = None,
) -> torch.Tensor:
    """Exact leave-one-out influence I(i, t) = g(f(x_t)) - g(f_{-i}(x_t)), shape (n, t), float64.

    Sign: positive = removing training point i lowers g at test point t (see the module docstring).
    From one Cholesky factorisation of K + ridge I: with A = (K + ridge I)^{-1}, alpha = A y and
    B = K_test A (t, n), f(x_t) - f_{-i}(x_t) = B[t, i] alpha_i / A_ii (a row over the C outputs
    for y of shape (n, C)), which is (LOO) evaluated at x_t.

    Parameters
    ----------
    K : (n, n) training kernel, symmetric positive semi-definite.
    y : (n,) scalar targets (e.g. +-1 for a binary task) or (n, C) coded targets (one-hot or +-1).
    K_test : (t, n) kernel between test and training points.
    ridge : > 0, added to the diagonal of K.
    y_test : test labels. For ``"true_class"`` with (n, C) targets: class indices (t,) or coded rows
        (t, C) (argmax is the class). For ``"true_class"`` with scalar targets: +-1 labels (t,), and g is
        the margin y_t f(x_t) (the output signed toward the true class). For ``"loss"``: targets of
        the same coding as y, (t,) or (t, C).
    target : the readout g.
        ``"true_class"`` (default): the test point's true-class output (the margin y_t f for scalar targets);
        ``"output"``: the raw output f(x_t) (scalar targets), or output ``output_class`` (C outputs);
        ``"loss"``: the squared test error ||f(x_t) - y_t||^2 (summed over outputs), the exact
        (not linearised) change.
    output_class : which output ``"output"`` reads when y has C columns.
    """
    K = check_square_symmetric(as_tensor(K, "K", ndim=2, min_rows=2), "K")
    n = K.shape[0]
    y = _check_targets(y, n)
    K_test = as_tensor(K_test, "K_test", ndim=2)
    if K_test.shape[1] != n:
        raise ValueError(f"K_test must have shape (t, n) with n = {n}, got {tuple(K_test.shape)}")
    check_option(target, "target", TARGETS)

    kr = KernelRidge(ridge).fit(K, y)
    diag = kr.inverse_diagonal()                       # (n,) A_ii
    Bt = kr.solve(K_test.T.contiguous())               # (n, t) = A K_test^T, i.e. B^T
    alpha = kr.alpha if y.ndim == 2 else kr.alpha[:, None]
    w = alpha / diag[:, None]                          # (n, C): alpha_i / A_ii

    if target == "output":
        return Bt * w[:, _output_column(y, output_class)][:, None]
    y_test = _check_test_labels(y_test, target, K_test.shape[0])
    if target == "true_class":
        return _true_class_influence(Bt, w, y, y_test)
    return _loss_influence(Bt, w, K_test @ alpha, y_test)


def _output_column(y: torch.Tensor, output_class: int | None) -> int:
    """The output column that ``target="output"`` reads: 0 for scalar targets, else output_class."""
    if y.ndim == 1:
        return 0
    n_out = y.shape[1]
    if output_class is None:
        raise ValueError("target='output' with C outputs needs output_class (which output to read)")
    return check_int(output_class, "output_class", minimum=0, maximum=n_out - 1)


def _check_test_labels(y_test, target: str, t: int) -> torch.Tensor:
    if y_test is None:
        raise ValueError(f"target={target!r} needs y_test (the test labels)")
    y_test = as_tensor(y_test, "y_test", ndim=(1, 2))
    if y_test.shape[0] != t:
        raise ValueError(f"y_test has {y_test.shape[0]} rows but K_test has t = {t} test points")
    return y_test


def _true_class_influence(Bt: torch.Tensor, w: torch.Tensor, y: torch.Tensor, y_test: torch.Tensor) -> torch.Tensor:
    """I(i, t) = B[t, i] w[i, c_t] (C outputs, c_t the true class) or y_t B[t, i] w_i (scalar, +-1 labels)."""
    t = Bt.shape[1]
    if y.ndim == 2:
        cls = _class_index(y_test, t, w.shape[1])      # (t,)
        return Bt * w[:, cls]                          # (n, t): B[t, i] w[i, c_t]
    if y_test.ndim != 1:
        raise ValueError("with scalar targets y_test must be +-1 labels of shape (t,)")
    if bool((y_test == 0).any()):
        raise ValueError("with scalar targets y_test must be +-1 labels (no zeros); code binary labels as +-1")
    return Bt * w[:, 0][:, None] * torch.sign(y_test)[None, :]


def _loss_influence(Bt: torch.Tensor, w: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor) -> torch.Tensor:
    """I(i, t) = ||f - y_t||^2 - ||f_{-i} - y_t||^2 with f_{-i} = f - delta_i, delta[i, t, c] = Bt[i, t] w[i, c].

    ||r||^2 - ||r - delta||^2 = 2 <r, delta> - ||delta||^2 with r = f(x_t) - y_t; f_test (t, C).
    """
    n_out = w.shape[1]
    yt = y_test if y_test.ndim == 2 else y_test[:, None]
    if yt.shape[1] != n_out:
        raise ValueError(f"y_test must have the coding of y: (t,) or (t, {n_out}), got {tuple(y_test.shape)}")
    r = f_test - yt                                    # (t, C) residuals of the full fit
    cross = Bt * (w @ r.T)                             # (n, t): sum_c Bt w_ic r_tc
    sq = Bt * Bt * (w * w).sum(dim=1, keepdim=True)    # (n, t)
    return 2.0 * cross - sq


def influence_scores(I, aggregate: Aggregate = "mean") -> torch.Tensor:
    """One score a training point from its influences I (n, t) on the t test points: (n,) float64.

    ``"mean"`` (default): s_i = (1/t) sum_t I(i, t), the signed average influence on the test set
    (the effect of removing i on the mean readout; its sign is what malleability tracks);
    ``"sum"``: t times the mean; ``"mean_abs"``: (1/t) sum_t |I(i, t)| (how much i matters, any sign);
    ``"max_abs"``: max_t |I(i, t)|.
    """
    I = as_tensor(I, "I", ndim=2)
    if I.shape[1] < 1:
        raise ValueError("I needs at least one test point (column)")
    check_option(aggregate, "aggregate", AGGREGATES)
    if aggregate == "mean":
        return I.mean(dim=1)
    if aggregate == "sum":
        return I.sum(dim=1)
    if aggregate == "mean_abs":
        return I.abs().mean(dim=1)
    return I.abs().amax(dim=1)                          # "max_abs"


def ridge_bias(mu, coef, *, ridge: float) -> torch.Tensor:
    """Kernel ridge bias on the training set, sum_i (ridge / (mu_i + ridge))^2 c_i^2 (a float64 scalar).

    For noiseless targets y = sum_i c_i u_i in the eigenbasis (mu_i, u_i) of K, the fitted values
    are K (K + ridge I)^{-1} y, so y minus them is sum_i ridge / (mu_i + ridge) c_i u_i. ``mu`` (k,) >= 0,
    ``coef`` (k,) or (k, C) (summed over columns).
    """
    ridge = check_range(ridge, "ridge", 0.0, float("inf"), lo_open=True)
    mu = as_tensor(mu, "mu", ndim=1)
    c = as_tensor(coef, "coef", ndim=(1, 2))
    if c.shape[0] != mu.shape[0]:
        raise ValueError(f"coef has {c.shape[0]} rows but mu has {mu.shape[0]} eigenvalues")
    if bool((mu < 0).any()):
        raise ValueError("mu must be non-negative eigenvalues of a PSD kernel")
    shrink = ridge / (mu + ridge)
    c2 = c * c if c.ndim == 1 else (c * c).sum(dim=1)
    return (shrink * shrink * c2).sum()
