"""The infinite-width predictors a trained network is compared with (Part II).

Both take kernel matrices, not models: ``K_train`` = Theta(X, X) (n, n) on the training
inputs and ``K_test_train`` = Theta(X*, X) (N, n) between the points to predict and the
training inputs (pass ``K_test_train = K_train`` for predictions on the training set).
Targets ``y`` are (n,) or (n, C); the result has the shape (N,) or (N, C) of ``y``.
Everything is float64.

- :func:`kernel_regression` -- kernel ridge regression, the t -> infinity limit of
  gradient flow on the squared loss (with a small ridge for stability)::

      f(x) = f0(x) + Theta(x, X) (Theta(X, X) + ridge I)^{-1} (y - f0(X))

  solved with a Cholesky factorisation.
- :func:`ntk_flow` -- gradient flow of the linearised network for a finite time t::

      f_t(x) = f0(x) + Theta(x, X) Theta^{-1} (I - exp(-t Theta)) (y - f0(X))

  evaluated through the eigendecomposition Theta = V diag(lam) V^T, where
  Theta^{-1}(I - exp(-t Theta)) = V diag((1 - exp(-t lam)) / lam) V^T; the factor
  tends to t as lam -> 0, so no inverse is needed and a singular Theta is fine.
  Time is *kernel time*: the flow is df/dt = -Theta (f - y). :func:`gd_time`
  converts the lr and number of steps of :func:`linattn.train.train` to it.

``f0`` is the network's output at initialisation (the predictor of the linearised
network around that initialisation); ``None`` means f0 = 0 (the mean predictor over
random initialisations, the usual "NTK regression").
"""
from __future__ import annotations

import torch

from ._validation import as_tensor, check_int, check_range, check_square_symmetric

__all__ = ["kernel_regression", "ntk_flow", "gd_time"]


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
    default 1e-3 as the paper's NTK predictor); the solve is a Cholesky factorisation,
    and a matrix that is not positive definite even with the ridge is an error that
    reports its smallest eigenvalue.
    """
    ridge = check_range(ridge, "ridge", 0.0, float("inf"), lo_open=True)
    K, Kx, Y, F0, F0x, vector = _prepare(K_train, K_test_train, y, f0_train, f0_test)
    A = K + ridge * torch.eye(K.shape[0], dtype=torch.float64, device=K.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        lam_min = float(torch.linalg.eigvalsh(K)[0])
        raise ValueError(
            f"K_train + ridge I is not positive definite (lambda_min(K_train) = {lam_min:.3g}, ridge = {ridge:.3g}); "
            f"K_train must be a positive semi-definite kernel matrix, or raise the ridge"
        )
    alpha = torch.cholesky_solve(Y - F0, L)
    out = F0x + Kx @ alpha
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
    float64. Eigenvalues of Theta below n * eps * lambda_max (round-off of a PSD
    matrix) are set to 0, where the factor (1 - e^{-t lam}) / lam takes its limit t.
    """
    t = check_range(t, "t", 0.0, float("inf"))
    K, Kx, Y, F0, F0x, vector = _prepare(K_train, K_test_train, y, f0_train, f0_test)
    lam, V = torch.linalg.eigh(K)
    lam_max = float(lam[-1]) if lam.numel() else 0.0
    if float(lam[0]) < -1e-8 * max(abs(lam_max), 1e-300):
        raise ValueError(f"K_train is not positive semi-definite: lambda_min = {float(lam[0]):.3g}, lambda_max = {lam_max:.3g}")
    tol = K.shape[0] * torch.finfo(torch.float64).eps * max(lam_max, 0.0)
    lam = torch.where(lam > tol, lam, torch.zeros_like(lam))
    safe = torch.where(lam > 0, lam, torch.ones_like(lam))
    factor = torch.where(lam > 0, -torch.expm1(-t * lam) / safe, torch.full_like(lam, t))
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
