"""Kernel ridge regression and its exact leave-one-out influence, from one factorisation.

Kernel ridge on a training kernel K (n x n) with ridge lam > 0 and targets y ((n,) or (n, C)):

    A = (K + lam I)^{-1},   alpha = A y,   f(x) = k(x)^T alpha,

with k(x) = (K(x, x_1), ..., K(x, x_n)). Refitting without training point i (the rows and
columns of the other points kept as they are) has the closed form

    f_{-i}(x) = k(x)^T (alpha - (alpha_i / A_ii) A e_i),                        (LOO)

because beta = alpha - (alpha_i / A_ii) A e_i has beta_i = 0 and (K + lam I) beta = y - c e_i,
so its other entries solve the ridge system of the n - 1 remaining points. The influence of
training point i on test point t is the counterfactual

    I(i, t) = g(f(x_t)) - g(f_{-i}(x_t))         (THE sign convention of this package)

for a scalar readout g of the prediction (the ``target`` of :func:`influence_loo`): **I(i, t) > 0
means that removing point i lowers g at x_t** (i pushed g up). With g the true-class output a
positive influence is a helpful point; with g the squared test loss a positive influence is a
harmful one (removing it lowers the loss). Every influence in this package uses this sign.

Everything is float64 and comes from one Cholesky factorisation of K + lam I.
"""
from __future__ import annotations

from typing import Literal

import torch

from ._validation import as_tensor, check_range, check_square_symmetric

__all__ = ["KernelRidge", "loo_predictions", "influence_loo", "influence_scores", "ridge_bias"]

Target = Literal["true_class", "output", "loss"]
Aggregate = Literal["mean", "mean_abs", "sum", "max_abs"]


def _check_targets(y, n: int, name: str = "y") -> torch.Tensor:
    t = as_tensor(y, name, ndim=(1, 2))
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} rows but the kernel has n = {n}; pass one target row per point")
    return t


class KernelRidge:
    """Kernel ridge regression on a given kernel: alpha = (K + lam I)^{-1} y, f(x) = k(x)^T alpha.

    ``fit(K, y)`` takes K (n, n) symmetric PSD and y (n,) or (n, C); it factorises K + lam I = L L^T
    once (float64 Cholesky) and keeps L and alpha. ``predict(K_test_train)`` takes (t, n) and
    returns (t,) or (t, C). ``inverse_diagonal`` gives A_ii = [(K + lam I)^{-1}]_ii (n,), and
    ``solve(B)`` gives (K + lam I)^{-1} B for B (n, ...), both from the same factor.
    """

    def __init__(self, lam: float) -> None:
        self.lam = check_range(lam, "lam", 0.0, float("inf"), lo_open=True)
        self.L: torch.Tensor | None = None
        self.alpha: torch.Tensor | None = None

    @property
    def n(self) -> int:
        self._check_fitted()
        return int(self.L.shape[0])

    def _check_fitted(self) -> None:
        if self.L is None:
            raise RuntimeError("KernelRidge is not fitted yet; call fit(K, y) first")

    def fit(self, K, y) -> "KernelRidge":
        """Factorise K + lam I (n, n) and solve for alpha = (K + lam I)^{-1} y."""
        K = check_square_symmetric(as_tensor(K, "K", ndim=2, min_rows=1), "K")
        n = K.shape[0]
        y = _check_targets(y, n)
        M = K + self.lam * torch.eye(n, dtype=K.dtype)
        L, info = torch.linalg.cholesky_ex(M)
        if int(info) != 0:
            raise ValueError(
                f"K + lam I is not positive definite (Cholesky failed at column {int(info)}); "
                "K must be positive semi-definite: check the kernel, or raise lam"
            )
        self.L = L
        self.alpha = self.solve(y)
        return self

    def solve(self, B) -> torch.Tensor:
        """(K + lam I)^{-1} B for B of shape (n,) or (n, k), from the stored Cholesky factor."""
        self._check_fitted()
        B = as_tensor(B, "B", ndim=(1, 2))
        if B.shape[0] != self.n:
            raise ValueError(f"B has {B.shape[0]} rows, the fitted kernel has n = {self.n}")
        X = torch.cholesky_solve(B.reshape(self.n, -1), self.L)
        return X.reshape(B.shape)

    def inverse_diagonal(self) -> torch.Tensor:
        """A_ii = [(K + lam I)^{-1}]_ii = ||L^{-1} e_i||^2 (n,), from one triangular inverse."""
        self._check_fitted()
        eye = torch.eye(self.n, dtype=self.L.dtype)
        Linv = torch.linalg.solve_triangular(self.L, eye, upper=False)
        return (Linv * Linv).sum(dim=0)

    def predict(self, K_test_train) -> torch.Tensor:
        """f(x_t) = k(x_t)^T alpha for K_test_train (t, n); returns (t,) or (t, C)."""
        self._check_fitted()
        Kt = as_tensor(K_test_train, "K_test_train", ndim=2)
        if Kt.shape[1] != self.n:
            raise ValueError(
                f"K_test_train must have shape (t, n) with n = {self.n} training points, got {tuple(Kt.shape)}"
            )
        return Kt @ self.alpha


def loo_predictions(K, y, *, lam: float) -> torch.Tensor:
    """Leave-one-out predictions on the training points, f_{-i}(x_i) = y_i - alpha_i / A_ii.

    The classical identity (Allen's PRESS), from (LOO) with x = x_i. K (n, n), y (n,) or (n, C)
    -> same shape as y, float64.
    """
    kr = KernelRidge(lam).fit(K, y)
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
    lam: float,
    y_test=None,
    target: Target = "true_class",
    output_class: int | None = None,
) -> torch.Tensor:
    """Exact leave-one-out influence I(i, t) = g(f(x_t)) - g(f_{-i}(x_t)), shape (n, t), float64.

    Sign: positive = removing training point i lowers g at test point t (see the module docstring).
    From one Cholesky factorisation of K + lam I: with B = K_test A (t, n),
    f(x_t) - f_{-i}(x_t) = B[t, i] alpha_i / A_ii (a row vector over outputs for y of shape (n, C)).

    Parameters
    ----------
    K : (n, n) training kernel, symmetric positive semi-definite.
    y : (n,) scalar targets (e.g. +-1 for a binary task) or (n, C) coded targets (one-hot or +-1).
    K_test : (t, n) kernel between test and training points.
    lam : ridge, > 0.
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
    t = K_test.shape[0]
    if target not in ("true_class", "output", "loss"):
        raise ValueError(f"target must be 'true_class', 'output' or 'loss', got {target!r}")

    kr = KernelRidge(lam).fit(K, y)
    diag = kr.inverse_diagonal()                       # (n,)
    Bt = kr.solve(K_test.T.contiguous())               # (n, t) = A K_test^T, i.e. B^T
    a = y if y.ndim == 2 else y[:, None]               # (n, C)
    alpha = kr.alpha if y.ndim == 2 else kr.alpha[:, None]
    w = alpha / diag[:, None]                          # (n, C): alpha_i / A_ii
    n_out = a.shape[1]

    if target == "output":
        if y.ndim == 2:
            if output_class is None:
                raise ValueError("target='output' with C outputs needs output_class (which output to read)")
            if not 0 <= int(output_class) < n_out:
                raise ValueError(f"output_class must lie in [0, {n_out - 1}], got {output_class}")
            return Bt * w[:, int(output_class)][:, None]
        return Bt * w[:, 0][:, None]

    if y_test is None:
        raise ValueError(f"target={target!r} needs y_test (the test labels)")
    y_test = as_tensor(y_test, "y_test", ndim=(1, 2))
    if y_test.shape[0] != t:
        raise ValueError(f"y_test has {y_test.shape[0]} rows but K_test has t = {t} test points")

    if target == "true_class":
        if y.ndim == 2:
            cls = _class_index(y_test, t, n_out)       # (t,)
            return Bt * w[:, cls]                      # (n, t): B[t, i] w[i, c_t]
        if y_test.ndim != 1:
            raise ValueError("with scalar targets y_test must be +-1 labels of shape (t,)")
        if bool((y_test == 0).any()):
            raise ValueError("with scalar targets y_test must be +-1 labels (no zeros); code binary labels as +-1")
        return Bt * w[:, 0][:, None] * torch.sign(y_test)[None, :]

    # target == "loss": ||f - y_t||^2 - ||f_{-i} - y_t||^2 with f_{-i} = f - delta_i
    yt = y_test if y_test.ndim == 2 else y_test[:, None]
    if yt.shape[1] != n_out:
        raise ValueError(f"y_test must have the coding of y: (t,) or (t, {n_out}), got {tuple(y_test.shape)}")
    r = K_test @ alpha - yt                            # (t, C) residuals of the full fit
    # delta[i, t, c] = Bt[i, t] w[i, c];  ||r||^2 - ||r - delta||^2 = 2 <r, delta> - ||delta||^2
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
    if aggregate == "mean":
        return I.mean(dim=1)
    if aggregate == "sum":
        return I.sum(dim=1)
    if aggregate == "mean_abs":
        return I.abs().mean(dim=1)
    if aggregate == "max_abs":
        return I.abs().amax(dim=1)
    raise ValueError(f"aggregate must be 'mean', 'sum', 'mean_abs' or 'max_abs', got {aggregate!r}")


def ridge_bias(mu, coef, *, lam: float) -> torch.Tensor:
    """Kernel ridge bias on the training set, sum_i (lam / (mu_i + lam))^2 c_i^2 (a float64 scalar).

    For noiseless targets y = sum_i c_i u_i in the eigenbasis (mu_i, u_i) of K, the fitted values
    are K (K + lam I)^{-1} y, so y minus them is sum_i lam / (mu_i + lam) c_i u_i. ``mu`` (k,) >= 0,
    ``coef`` (k,) or (k, C) (summed over columns).
    """
    lam = check_range(lam, "lam", 0.0, float("inf"), lo_open=True)
    mu = as_tensor(mu, "mu", ndim=1)
    c = as_tensor(coef, "coef", ndim=(1, 2))
    if c.shape[0] != mu.shape[0]:
        raise ValueError(f"coef has {c.shape[0]} rows but mu has {mu.shape[0]} eigenvalues")
    if bool((mu < 0).any()):
        raise ValueError("mu must be non-negative eigenvalues of a PSD kernel")
    shrink = lam / (mu + lam)
    c2 = c * c if c.ndim == 1 else (c * c).sum(dim=1)
    return (shrink * shrink * c2).sum()
