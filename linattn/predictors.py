"""The infinite-width predictors a trained network is compared with (Part II), and the
package's one kernel-ridge solver.

Both predictors take kernel matrices, not models: ``K_train`` = Theta(X, X) (n, n) on the
training inputs and ``K_test_train`` = Theta(X*, X) (N, n) between the points to predict and
the training inputs (pass ``K_test_train = K_train`` for predictions on the training set).
Targets ``y`` are (n,) or (n, C); the result has the shape (N,) or (N, C) of ``y``.
Everything is float64.

- :class:`KernelRidge` -- the solver every kernel-ridge computation of the package uses
  (:func:`kernel_regression` here, the leave-one-out influences of :mod:`linattn.influence`):
  one Cholesky factorisation K + ridge I = L L^T, then alpha = (K + ridge I)^{-1} y,
  f(x) = k(x)^T alpha, (K + ridge I)^{-1} B and the diagonal of (K + ridge I)^{-1}.
- :func:`kernel_regression` -- kernel ridge regression, the t -> infinity limit of
  gradient flow on the squared loss (with a small ridge for stability)::

      f(x) = f0(x) + Theta(x, X) (Theta(X, X) + ridge I)^{-1} (y - f0(X))

- :func:`ntk_flow` -- gradient flow of the linearised network for a finite time t::

      f_t(x) = f0(x) + Theta(x, X) Theta^{-1} (I - exp(-t Theta)) (y - f0(X))

  evaluated through the eigendecomposition Theta = V diag(mu) V^T, where
  Theta^{-1}(I - exp(-t Theta)) = V diag((1 - exp(-t mu)) / mu) V^T; the factor
  tends to t as mu -> 0, so no inverse is needed and a singular Theta is fine.
  Time is *kernel time*: the flow is df/dt = -Theta (f - y). :func:`gd_time`
  converts the lr and number of steps of :func:`linattn.train.train` to it.

``f0`` is the network's output at initialisation (the predictor of the linearised
network around that initialisation); ``None`` means f0 = 0 (the mean predictor over
random initialisations, the usual "NTK regression").

The ridge is called ``ridge`` everywhere in the package (an absolute value added to the
diagonal, > 0).
"""
from __future__ import annotations

import torch

from ._validation import as_tensor, check_int, check_range, check_square_symmetric

__all__ = ["KernelRidge", "kernel_regression", "ntk_flow", "gd_time"]


class KernelRidge:
    """Kernel ridge regression on a given kernel: alpha = (K + ridge I)^{-1} y, f(x) = k(x)^T alpha.

    ``fit(K, y)`` takes K (n, n) symmetric positive semi-definite and y (n,) or (n, C); it
    factorises K + ridge I = L L^T once (float64 Cholesky) and keeps L and alpha (shape of y).
    From the same factor: ``predict(K_test_train)`` (t, n) -> (t,) or (t, C);
    ``solve(B)`` = (K + ridge I)^{-1} B for B (n,) or (n, k); ``inverse_diagonal()`` =
    A_ii = [(K + ridge I)^{-1}]_ii (n,). ``ridge`` > 0 (absolute; default 1e-3).

    Errors name the argument: a K that is not square or symmetric, or for which K + ridge I
    is not positive definite (K not PSD, or a ridge too small for its round-off), with the
    smallest eigenvalue of K and the fix.
    """

    def __init__(self, ridge: float = 1e-3) -> None:
        self.ridge = check_range(ridge, "ridge", 0.0, float("inf"), lo_open=True)
        self.L: torch.Tensor | None = None
        self.alpha: torch.Tensor | None = None

    @property
    def n(self) -> int:
        """The number of training points of the fitted kernel."""
        self._check_fitted()
        return int(self.L.shape[0])

    def _check_fitted(self) -> None:
        if self.L is None:
            raise RuntimeError("KernelRidge is not fitted yet; call fit(K, y) first")

    def fit(self, K, y, *, name: str = "K") -> "KernelRidge":
        """Factorise K + ridge I (n, n) and solve alpha = (K + ridge I)^{-1} y, y (n,) or (n, C).

        ``name`` is the caller's name for K, used in the error messages.
        """
        K = check_square_symmetric(as_tensor(K, name, ndim=2, min_rows=1), name)
        n = K.shape[0]
        y = as_tensor(y, "y", ndim=(1, 2))
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} rows but {name} has n = {n}; pass one target row per point")
        M = K + self.ridge * torch.eye(n, dtype=K.dtype, device=K.device)
        L, info = torch.linalg.cholesky_ex(M)
        if int(info) != 0:
            mu_min = float(torch.linalg.eigvalsh(K)[0])
            raise ValueError(
                f"{name} + ridge I is not positive definite (Cholesky failed at column {int(info)}; "
                f"smallest eigenvalue of {name} = {mu_min:.3g}, ridge = {self.ridge:.3g}); {name} must be a "
                "positive semi-definite kernel matrix: check the kernel, or raise ridge"
            )
        self.L = L
        self.alpha = self.solve(y)
        return self

    def solve(self, B) -> torch.Tensor:
        """(K + ridge I)^{-1} B for B of shape (n,) or (n, k), from the stored Cholesky factor."""
        self._check_fitted()
        B = as_tensor(B, "B", ndim=(1, 2))
        if B.shape[0] != self.n:
            raise ValueError(f"B has {B.shape[0]} rows, the fitted kernel has n = {self.n}; pass (n,) or (n, k)")
        X = torch.cholesky_solve(B.reshape(self.n, -1), self.L)
        return X.reshape(B.shape)

    def inverse_diagonal(self) -> torch.Tensor:
        """A_ii = [(K + ridge I)^{-1}]_ii = ||L^{-1} e_i||^2 (n,), from one triangular inverse."""
        self._check_fitted()
        eye = torch.eye(self.n, dtype=self.L.dtype, device=self.L.device)
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


def _prepare(K_train, K_test_train, y, f0_train, f0_test):
    K = check_square_symmetric(as_tensor(K_train, "K_train", ndim=2), "K_train")
    n = K.shape[0]
    if n < 1:
        raise ValueError("K_train is empty")
    Kx = as_tensor(K_test_train, "K_test_train", ndim=2)
    if Kx.shape[1] != n:
        raise ValueError(f"K_test_train has {Kx.shape[1]} columns; it must have one a training point (n = {n})")
    Y = as_tensor(y, "y", ndim=(1, 2))
    if Y.shape[0] != n:
        raise ValueError(f"y has {Y.shape[0]} rows but K_train is {n} x {n}")
    vector = Y.ndim == 1
    Y2 = Y[:, None] if vector else Y
    if f0_train is None and f0_test is None:
        F0, F0x = torch.zeros_like(Y2), torch.zeros(Kx.shape[0], Y2.shape[1], dtype=torch.float64, device=Kx.device)
    elif f0_train is None or f0_test is None:
        raise ValueError("give both f0_train and f0_test (the network's outputs at initialisation), or neither")
    else:
        F0 = as_tensor(f0_train, "f0_train", ndim=(1, 2)).reshape(Y2.shape[0], -1)
        F0x = as_tensor(f0_test, "f0_test", ndim=(1, 2)).reshape(Kx.shape[0], -1)
        if F0.shape != Y2.shape or F0x.shape != (Kx.shape[0], Y2.shape[1]):
            raise ValueError(
                f"f0_train {tuple(F0.shape)} / f0_test {tuple(F0x.shape)} do not match y {tuple(Y2.shape)} "
                f"and {Kx.shape[0]} prediction points"
            )
    return K, Kx, Y2, F0, F0x, vector


def kernel_regression(
    K_train,
    K_test_train,
    y,
    *,
    ridge: float = 1e-3,
    f0_train=None,
    f0_test=None,
) -> torch.Tensor:
    """Kernel ridge regression f(x) = f0(x) + Theta(x, X) (Theta(X, X) + ridge I)^{-1} (y - f0(X)).

    Shapes: K_train (n, n), K_test_train (N, n), y (n,) or (n, C), f0_train like y,
    f0_test (N,) or (N, C). Returns (N,) or (N, C), float64. ``ridge`` > 0 (absolute,
    default 1e-3 as the paper's NTK predictor). Solved by :class:`KernelRidge` (one Cholesky
    factorisation); a K_train that is not positive definite even with the ridge is an error
    that reports its smallest eigenvalue.
    """
    solver = KernelRidge(ridge)
    K, Kx, Y, F0, F0x, vector = _prepare(K_train, K_test_train, y, f0_train, f0_test)
    out = F0x + solver.fit(K, Y - F0, name="K_train").predict(Kx)
    return out[:, 0] if vector else out


def ntk_flow(
    K_train,
    K_test_train,
    y,
    t: float,
    *,
    f0_train=None,
    f0_test=None,
) -> torch.Tensor:
    """Gradient flow of the linearised model: f_t(x) = f0(x) + Theta(x, X) Theta^{-1}(I - e^{-t Theta})(y - f0(X)).

    ``t`` >= 0 is kernel time (df/dt = -Theta (f - y) on the training set; see
    :func:`gd_time`). Shapes as in :func:`kernel_regression`; returns (N,) or (N, C),
    float64. Eigenvalues mu of Theta below n * eps * mu_max (round-off of a PSD
    matrix) are set to 0, where the factor (1 - e^{-t mu}) / mu takes its limit t.
    """
    t = check_range(t, "t", 0.0, float("inf"))
    K, Kx, Y, F0, F0x, vector = _prepare(K_train, K_test_train, y, f0_train, f0_test)
    mu, V = torch.linalg.eigh(K)
    mu_max = float(mu[-1]) if mu.numel() else 0.0
    if float(mu[0]) < -1e-8 * max(abs(mu_max), 1e-300):
        raise ValueError(
            f"K_train is not positive semi-definite: smallest eigenvalue {float(mu[0]):.3g}, largest {mu_max:.3g}; "
            "pass a kernel matrix"
        )
    tol = K.shape[0] * torch.finfo(torch.float64).eps * max(mu_max, 0.0)
    mu = torch.where(mu > tol, mu, torch.zeros_like(mu))
    safe = torch.where(mu > 0, mu, torch.ones_like(mu))
    factor = torch.where(mu > 0, -torch.expm1(-t * mu) / safe, torch.full_like(mu, t))
    out = F0x + Kx @ (V @ (factor[:, None] * (V.T @ (Y - F0))))
    return out[:, 0] if vector else out


def gd_time(lr: float, steps: int, n: int, n_outputs: int = 1) -> float:
    """Kernel time t = 2 lr steps / (n C) of full-batch gradient descent on the MSE loss.

    :func:`linattn.train.train` with ``loss="mse"`` minimises L = (1/(n C)) sum_{i,c} (f_ic - y_ic)^2
    (torch's mean-reduced MSE); a GD step changes the outputs by
    -lr (2 / (n C)) Theta (f - y) in the linear regime, so ``steps`` steps of size ``lr``
    are the flow df/dt = -Theta (f - y) run for t = 2 lr steps / (n C) (exact as lr -> 0).
    """
    lr = check_range(lr, "lr", 0.0, float("inf"), lo_open=True)
    steps = check_int(steps, "steps", minimum=0)
    n = check_int(n, "n")
    n_outputs = check_int(n_outputs, "n_outputs")
    return 2.0 * lr * steps / (n * n_outputs)
