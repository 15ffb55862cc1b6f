"""The empirical NTK: a closed form for the two-layer models and a generic autodiff path.

For f(x) = m^{-1/2} a^T relu(W x^) with only W (m x d) trained and a in {-1,+1}^{m x C},
the gradient of output c with respect to w_r is m^{-1/2} a_rc 1[w_r.x^ > 0] x^, so

    Theta_m[i, c, j, c'] = <x^_i, x^'_j> (1/m) sum_r a_rc a_rc' s_ir s'_jr,    S = 1[X^ W^T > 0]

and for a single output block (c = c', a_rc^2 = 1) it is the two matrix products

    Theta_m = (X^ X^'^T) * (S S'^T) / m                                   (N, N2).

:func:`empirical_ntk` computes that in float64 with memory O(N N2 + (N + N2) m), never
O(N m d). :func:`empirical_ntk_autodiff` is the generic reference: the per-example
parameter Jacobians from ``torch.func.jacrev`` contracted over all parameters, (N, C, N2, C),
for any model whose trainable parameters are in ``model.parameters()``.

As m grows Theta_m -> :func:`linattn.kernels.ntk_inf` at the Monte Carlo rate m^{-1/2}
(an average of m i.i.d. bounded terms); :func:`ntk_error_vs_width` and
:func:`fit_power_law` measure that rate and its constant, and :func:`bernstein_bound` gives
the constant matrix Bernstein predicts. How large the error E = Theta_m - Theta_inf is, is
measured three ways: ||E||_op against lambda_min (Weyl's worst case), the whitened error
||Theta_inf^{-1/2} E Theta_inf^{-1/2}||_op (:func:`whitened_error`), and the error of the kernel
solve itself (:func:`solve_error`); :func:`ntk_errors_vs_width` measures several at once, and
:func:`fit_power_law_seeds` extrapolates a width with the range a free-slope fit implies.
Every width obtained this way is *sufficient* for its criterion; :func:`measured_bracket`
gives the only lower bound here, an empirical one. :func:`empirical_ntk_wide` builds Theta_m at widths
whose W would not fit in memory.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import torch
from torch.func import functional_call, jacrev

from ._validation import as_tensor, check_int, check_option, check_range, check_seed, check_square_symmetric
from .kernels import features64, ntk_inf, ntk_relu, unit_angle

__all__ = [
    "empirical_ntk",
    "empirical_ntk_wide",
    "param_jacobian",
    "empirical_ntk_autodiff",
    "ntk_error_vs_width",
    "ntk_errors_vs_width",
    "error_measures",
    "whitened_error",
    "solve_error",
    "ntk_variance",
    "Bernstein",
    "bernstein_bound",
    "fit_power_law",
    "PowerLawFit",
    "fit_power_law_seeds",
    "Bracket",
    "measured_bracket",
    "width_for_error",
    "log10_width_for_error",
]


def _two_layer_parts(model) -> tuple[torch.Tensor, torch.Tensor]:
    W = getattr(model, "W", None)
    a = getattr(model, "a", None)
    if not isinstance(W, torch.Tensor) or not isinstance(a, torch.Tensor) or W.ndim != 2 or a.ndim != 2:
        raise TypeError(
            "empirical_ntk needs a two-layer model with W (m, d) and a (m, C) "
            "(linattn.models.TwoLayerNet); use empirical_ntk_autodiff for other models"
        )
    if W.shape[0] < 1 or a.shape[0] != W.shape[0]:
        raise ValueError(f"inconsistent model: W has shape {tuple(W.shape)}, a has shape {tuple(a.shape)}")
    return W.detach().to(torch.float64), a.detach().to(torch.float64)


def empirical_ntk(model, X, X2=None, *, full: bool = False) -> torch.Tensor:
    """The empirical NTK of a :class:`~linattn.models.TwoLayerNet` by its closed form, float64.

    ``X`` (N, d) and ``X2`` (N2, d, default ``X``) are raw inputs; the features x^ are the
    model's own (``model.features``, computed in float64), and the activation pattern
    S = 1[X^ W^T > 0] is taken in float64 from the model's current W (at initialisation
    or after training).

    - ``full=False``: Theta_m = (X^ X^'^T) * (S S'^T) / m, shape (N, N2) — every diagonal
      output block Theta[:, c, :, c] (they are equal, a_rc^2 = 1).
    - ``full=True``: the (N, C, N2, C) tensor with cross-output blocks,
      Theta[i, c, j, c'] = <x^_i, x^'_j> (1/m) sum_r a_rc a_rc' s_ir s'_jr.

    Memory O(N N2 C^2 + (N + N2) m C).
    """
    W, a = _two_layer_parts(model)
    m = W.shape[0]
    A = features64(model, X)
    B = A if X2 is None else features64(model, X2)
    U = A @ B.T
    S = (A @ W.T > 0).to(torch.float64)
    S2 = S if X2 is None else (B @ W.T > 0).to(torch.float64)
    if not full:
        T = U * (S @ S2.T) / m
        return (T + T.T) / 2 if X2 is None else T
    C = a.shape[1]
    SA = S[:, None, :] * a.T[None]  # (N, C, m): s_ir a_rc
    SA2 = SA if X2 is None else S2[:, None, :] * a.T[None]
    P = (SA.reshape(-1, m) @ SA2.reshape(-1, m).T).reshape(A.shape[0], C, B.shape[0], C)
    return U[:, None, :, None] * P / m


def empirical_ntk_wide(model, X, width: int, *, block: int = 8192) -> torch.Tensor:
    """The empirical NTK (N, N), float64, of ``model``'s network at width ``width``, without holding W.

    ``model`` is a :class:`~linattn.models.TwoLayerNet` of any width: its features x^ and its ``seed``
    are used. The width-``width`` net of that seed draws W = randn(width, d) from
    ``torch.Generator().manual_seed(seed)``; the same numbers are drawn here in row blocks of
    ``block``, and Theta_m = (X^ X^^T) * (S S^T) / m accumulates S S^T block by block. For a float64
    model the result equals :func:`empirical_ntk` of the width-``width`` net (up to the rounding of
    X^ W^T), with memory O(N^2 + (N + d) block) instead of O(width d) (width 2^20 on d = 784 is
    6.6 GB of W). The scale of W does not enter (only the signs of X^ W^T do).
    """
    _two_layer_parts(model)
    seed = getattr(model, "seed", None)
    if seed is None:
        raise TypeError("empirical_ntk_wide needs a linattn.models.TwoLayerNet, whose seed fixes W")
    seed = check_seed(seed)
    width = check_int(width, "width")
    block = check_int(block, "block")
    A = features64(model, X)
    gen = torch.Generator().manual_seed(seed)
    SS = torch.zeros(A.shape[0], A.shape[0], dtype=torch.float64)
    done = 0
    while done < width:
        b = min(block, width - done)
        S = (A @ torch.randn(b, A.shape[1], generator=gen, dtype=torch.float64).T > 0).to(torch.float64)
        SS += S @ S.T
        done += b
    T = (A @ A.T) * SS / width
    return (T + T.T) / 2


def param_jacobian(model, X, *, chunk_size: int = 8) -> torch.Tensor:
    """Per-example Jacobians df_c(x_i)/dtheta (N, C, P) of ``model`` over all its parameters.

    P is the total number of trainable parameters (``model.parameters()`` with
    requires_grad, flattened and concatenated in ``named_parameters`` order). Computed
    with ``torch.func.jacrev`` of ``functional_call`` on row blocks of ``chunk_size``
    (jacrev vmaps the backward pass over the block's N_b * C outputs, each a backward
    pass through the whole block, so the work grows like N_b^2: small blocks are
    cheaper per row, down to where per-call overhead dominates); in the model's
    dtype, returned as float64. ``model(X)`` must map (N, d) to (N, C) (or (N,)).
    Memory O(N C P): mind it (N = 1000, P = 3.2e6 is 26 GB).
    """
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters")
    chunk_size = check_int(chunk_size, "chunk_size")
    dtype = next(iter(params.values())).dtype
    x = as_tensor(X, "X", ndim=2, min_rows=1).to(dtype)

    def f(p, xb):
        out = functional_call(model, p, (xb,))
        return out if out.ndim == 2 else out.reshape(xb.shape[0], -1)

    out = None
    for start in range(0, x.shape[0], chunk_size):
        xb = x[start : start + chunk_size]
        jac = jacrev(f)(params, xb)  # name -> (b, C, *shape): d f[i, c] / d p
        parts = [jac[name].reshape(xb.shape[0], -1, jac[name][0, 0].numel()) for name in params]
        if out is None:  # preallocate (N, C, P) once: no second copy of the Jacobians
            C = parts[0].shape[1]
            out = torch.empty(x.shape[0], C, sum(p.shape[2] for p in parts), dtype=torch.float64)
        col = 0
        for p in parts:
            out[start : start + xb.shape[0], :, col : col + p.shape[2]] = p
            col += p.shape[2]
        del jac, parts
    return out


def empirical_ntk_autodiff(model, X, X2=None, *, chunk_size: int = 8) -> torch.Tensor:
    """Theta[i, c, j, c'] = <df_c(x_i)/dtheta, df_c'(x'_j)/dtheta> (N, C, N2, C), float64.

    The generic path: per-example Jacobians over every trainable parameter of ``model``
    (:func:`param_jacobian`, torch.func) contracted over parameters. Works for any model
    whose outputs for a row depend on that row only; the reference the closed form
    :func:`empirical_ntk` is tested against. Memory O((N + N2) C P).
    """
    J = param_jacobian(model, X, chunk_size=chunk_size)
    J2 = J if X2 is None else param_jacobian(model, X2, chunk_size=chunk_size)
    N, C, P = J.shape
    N2 = J2.shape[0]
    return (J.reshape(N * C, P) @ J2.reshape(N2 * C, P).T).reshape(N, C, N2, C)


def ntk_error_vs_width(
    make_model: Callable[[int, int], torch.nn.Module],
    X,
    widths,
    seeds,
    *,
    norm: str = "fro",
) -> torch.Tensor:
    """||Theta_m - Theta_inf|| for every width and seed, shape (len(widths), len(seeds)), float64.

    ``make_model(width, seed)`` returns a two-layer model (e.g.
    ``lambda m, s: relu_net(d, m, seed=s)``); ``X`` (N, d) raw inputs. Theta_m is
    :func:`empirical_ntk` (one output block), Theta_inf is :func:`linattn.kernels.ntk_inf`.
    ``norm``: "fro" (Frobenius) or "op" (spectral norm, the one a width bound against
    lambda_min is about).
    """
    check_option(norm, "norm", ("fro", "op"))
    ord_ = "fro" if norm == "fro" else 2
    measure = {norm: lambda T, inf: float(torch.linalg.matrix_norm(T - inf, ord=ord_))}
    return ntk_errors_vs_width(make_model, X, widths, seeds, measure)[norm]


def fit_power_law(widths, errors, *, slope: float | None = None) -> tuple[float, float]:
    """Least-squares fit of log10(err) = log10(c) + slope * log10(m); returns (slope, c).

    ``widths`` (W,) and ``errors`` (W,) or (W, S) (S seeds, averaged in the mean of the
    errors before the log). With ``slope`` given (e.g. -0.5, the Monte Carlo rate), only
    c is fitted: log10(c) = mean(log10(err) - slope * log10(m)). At least two distinct
    widths; errors positive.
    """
    m = as_tensor(widths, "widths", ndim=1, min_rows=2)
    e = as_tensor(errors, "errors", ndim=(1, 2))
    if e.shape[0] != m.shape[0]:
        raise ValueError(f"errors has {e.shape[0]} rows for {m.shape[0]} widths")
    if e.ndim == 2:
        e = e.mean(dim=1)
    if bool((m <= 0).any()) or bool((e <= 0).any()):
        raise ValueError("widths and errors must be positive for a log-log fit")
    x, y = torch.log10(m), torch.log10(e)
    if float(x.max() - x.min()) == 0:
        raise ValueError("need at least two distinct widths")
    if slope is not None:
        s = check_range(slope, "slope", -math.inf, math.inf)
        return s, float(10 ** (y - s * x).mean())
    A = torch.stack([torch.ones_like(x), x], dim=1)
    coef = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    return float(coef[1]), float(10 ** coef[0])


def width_for_error(c: float, slope: float, target: float) -> float:
    """The width m at which c m^slope = target (slope < 0): m = (target / c)^(1 / slope).

    Returns a float (inf if it overflows float64); see :func:`log10_width_for_error`.
    """
    v = log10_width_for_error(c, slope, target)
    return math.inf if v >= 308 else 10.0**v


def log10_width_for_error(c: float, slope: float, target: float) -> float:
    """log10 of the width at which c m^slope = target: (log10 target - log10 c) / slope."""
    c = check_range(c, "c", 0.0, math.inf, lo_open=True, hi_open=True)
    target = check_range(target, "target", 0.0, math.inf, lo_open=True, hi_open=True)
    slope = check_range(slope, "slope", -math.inf, math.inf)
    if slope >= 0:
        raise ValueError(f"slope must be negative (the error must fall with width), got {slope}")
    return (math.log10(target) - math.log10(c)) / slope


# --------------------------------------------------------------------------- how big is the error?
#
# ||E||_op <= eps lambda_min(Theta_inf) (Weyl's inequality) is the worst case over directions. What
# a kernel solve feels is the error whitened by the kernel itself; and the solve's own error is
# what the criterion is a proxy for. Both are measured here, beside the operator norm.


def _kernel_pair(T_m, T_inf) -> tuple[torch.Tensor, torch.Tensor]:
    A = as_tensor(T_m, "T_m", ndim=2, min_rows=1)
    B = as_tensor(T_inf, "T_inf", ndim=2, min_rows=1)
    check_square_symmetric(B, "T_inf")
    check_square_symmetric(A, "T_m")
    if A.shape != B.shape:
        raise ValueError(f"T_m has shape {tuple(A.shape)} for the {tuple(B.shape)} of T_inf; pass kernels on the same points")
    return A, B


def _ridge_eigh(T_inf: torch.Tensor, ridge: float, name: str = "T_inf") -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of T_inf + ridge I, refusing a singular one."""
    mu, V = torch.linalg.eigh(T_inf)
    mu = mu + ridge
    top = max(float(mu[-1]), 0.0)
    tol = T_inf.shape[0] * float(torch.finfo(torch.float64).eps) * top
    if float(mu[0]) <= tol:
        raise ValueError(
            f"{name} + ridge I is singular in float64: smallest eigenvalue {float(mu[0]):.3g} against a largest of "
            f"{top:.3g} (ridge = {ridge:.3g}); add a ridge (e.g. ridge={1e-6 * top if top > 0 else 1.0:.1g}) "
            "or use fewer, less similar points"
        )
    return mu, V


def whitened_error(T_m, T_inf, *, ridge: float = 0.0) -> float:
    """delta = ||(Theta_inf + ridge I)^{-1/2} (Theta_m - Theta_inf) (Theta_inf + ridge I)^{-1/2}||_op, float64.

    ``T_m`` and ``T_inf`` (N, N) symmetric; ``Theta_inf + ridge I`` positive definite (``ridge``
    >= 0, absolute). With Theta_inf + ridge I = V diag(mu) V^T (float64 eigendecomposition) the
    whitened error is the largest |eigenvalue| of D^{-1/2} V^T E V D^{-1/2}, E = Theta_m - Theta_inf,
    D = diag(mu): the largest |nu| of the generalised eigenproblem E v = nu (Theta_inf + ridge I) v.

    It is the relative accuracy of Theta_m as a kernel, direction by direction:
    (1 - delta) (Theta_inf + ridge I) <= Theta_m + ridge I <= (1 + delta) (Theta_inf + ridge I),
    and it lies between ||E||_op / mu_max and ||E||_op / mu_min; the upper end, Weyl's criterion
    ||E||_op <= eps lambda_min, is reached only when E points along the smallest eigenvectors.
    """
    A, B = _kernel_pair(T_m, T_inf)
    ridge = check_range(ridge, "ridge", 0.0, math.inf)
    mu, V = _ridge_eigh(B, ridge)
    s = mu.rsqrt()
    M = s[:, None] * (V.T @ (A - B) @ V) * s[None, :]
    return float(torch.linalg.eigvalsh((M + M.T) / 2).abs().max())


def solve_error(T_m, T_inf, y, *, ridge: float = 0.0, on: str = "alpha") -> float:
    """Relative error of the kernel solve with Theta_m instead of Theta_inf, float64.

    alpha_m = (Theta_m + ridge I)^{-1} y and alpha_inf = (Theta_inf + ridge I)^{-1} y for targets
    ``y`` (N,) or (N, C); ``T_m``, ``T_inf`` (N, N) symmetric, ``ridge`` >= 0 (absolute; both
    matrices plus ridge I must be nonsingular).

    - ``on="alpha"``: ||alpha_m - alpha_inf||_F / ||alpha_inf||_F, the coefficients (they set the
      predictor f(x) = Theta(x, X) alpha everywhere off the training points);
    - ``on="fit"``: ||Theta_m alpha_m - Theta_inf alpha_inf||_F / ||Theta_inf alpha_inf||_F, the fitted
      values on the training points. Theta alpha = y - ridge alpha, so this is
      ridge ||alpha_m - alpha_inf||_F / ||y - ridge alpha_inf||_F: zero up to round-off with ``ridge = 0``
      (both fits interpolate y), small with a small ridge.

    If delta = :func:`whitened_error` (with the same ridge) is below 1, the alpha error measured in
    the norm of Theta_inf + ridge I is at most delta / (1 - delta).
    """
    A, B = _kernel_pair(T_m, T_inf)
    check_option(on, "on", ("alpha", "fit"))
    ridge = check_range(ridge, "ridge", 0.0, math.inf)
    Y = as_tensor(y, "y", ndim=(1, 2))
    if Y.shape[0] != B.shape[0]:
        raise ValueError(f"y has {Y.shape[0]} rows for the {B.shape[0]} points of T_inf; pass one target per point")
    if float(torch.linalg.matrix_norm(Y.reshape(Y.shape[0], -1))) == 0:
        raise ValueError("y is all zeros, so the solve is zero for any kernel and its relative error is undefined")
    mu, V = _ridge_eigh(B, ridge)
    alpha = V @ ((V.T @ Y.reshape(Y.shape[0], -1)) / mu[:, None])
    nu, U = _ridge_eigh(A, ridge, "T_m")
    alpha_m = U @ ((U.T @ Y.reshape(Y.shape[0], -1)) / nu[:, None])
    if on == "fit":
        alpha, alpha_m = B @ alpha, A @ alpha_m
    return float(torch.linalg.matrix_norm(alpha_m - alpha) / torch.linalg.matrix_norm(alpha))


def ntk_errors_vs_width(
    make_model: Callable[[int, int], torch.nn.Module],
    X,
    widths,
    seeds,
    measures: Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]],
    *,
    block: int | None = None,
) -> dict[str, torch.Tensor]:
    """Several error measures of Theta_m against Theta_inf, each (len(widths), len(seeds)), float64.

    Like :func:`ntk_error_vs_width`, but every Theta_m is built once and handed to each
    ``measures[name](T_m, T_inf)`` (a float), e.g. ``{"op": lambda A, B: float(torch.linalg.matrix_norm(A - B, 2)),
    "whitened": whitened_error}`` (see :func:`error_measures`). Returns ``{name: errors}`` in the order of
    ``measures``. With ``block``, W is never built: Theta_m is :func:`empirical_ntk_wide` of
    ``make_model(1, seed)`` in row blocks of ``block`` (the same draws, for widths beyond memory).
    """
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable (width, seed) -> model, got {type(make_model).__name__}")
    if not isinstance(measures, Mapping) or not measures:
        raise TypeError(f"measures must be a non-empty dict name -> callable (T_m, T_inf) -> float, got {measures!r}")
    for k, f in measures.items():
        if not callable(f):
            raise TypeError(f"measures[{k!r}] must be a callable (T_m, T_inf) -> float, got {type(f).__name__}")
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a list of widths, got {widths!r}")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a list of seeds, got {seeds!r}")
    ws = [check_int(w, "width") for w in widths]
    ss = [check_seed(s) for s in seeds]
    if not ws or not ss:
        raise ValueError("give at least one width and one seed")
    if block is not None:
        block = check_int(block, "block")
    out = {k: torch.empty(len(ws), len(ss), dtype=torch.float64) for k in measures}
    inf = None
    for i, w in enumerate(ws):
        for j, s in enumerate(ss):
            model = make_model(w if block is None else 1, s)
            if inf is None:
                inf = ntk_inf(model, X)
            T = empirical_ntk(model, X) if block is None else empirical_ntk_wide(model, X, w, block=block)
            for k, f in measures.items():
                out[k][i, j] = float(f(T, inf))
    return out


def error_measures(y=None, *, ridge: float = 1e-3) -> dict[str, Callable[[torch.Tensor, torch.Tensor], float]]:
    """The measures of Theta_m against Theta_inf that Part I compares, for :func:`ntk_errors_vs_width`.

    ``"op"`` ||E||_op and ``"fro"`` ||E||_F (E = Theta_m - Theta_inf); ``"whitened"``
    :func:`whitened_error` (no ridge); with targets ``y`` (N,) or (N, C): ``"solve"``
    :func:`solve_error` of alpha with no ridge and ``"solve_ridge"`` with ``ridge`` (> 0, absolute).
    """
    ridge = check_range(ridge, "ridge", 0.0, math.inf, lo_open=True)
    out: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
        "op": lambda A, B: float(torch.linalg.matrix_norm(A - B, ord=2)),
        "fro": lambda A, B: float(torch.linalg.matrix_norm(A - B, ord="fro")),
        "whitened": whitened_error,
    }
    if y is not None:
        Y = as_tensor(y, "y", ndim=(1, 2))
        out["solve"] = lambda A, B: solve_error(A, B, Y)
        out["solve_ridge"] = lambda A, B: solve_error(A, B, Y, ridge=ridge)
    return out


# --------------------------------------------------------------------------- matrix Bernstein


def ntk_variance(Xh) -> torch.Tensor:
    """V = E[(Theta^(r) - Theta_inf)^2] (N, N), float64: the variance of one unit's kernel.

    Theta_m = (1/m) sum_r Theta^(r) with Theta^(r) = U * (s s^T), U = X^ X^^T, s = 1[X^ w_r > 0],
    w_r ~ N(0, I_d), for unit rows ``Xh`` (N, d). Exactly, with theta the angles between rows,

        E[(Theta^(r))^2]_ij = sum_k U_ik U_kj P(s_i = s_j = s_k = 1),
        P(s_i = s_j = s_k = 1) = 1/2 - (theta_ij + theta_ik + theta_jk) / (4 pi)

    (the Gaussian orthant probability of three unit directions; with k = j it is k0 = 1/2 - theta_ij / (2 pi)),
    and V = E[(Theta^(r))^2] - Theta_inf^2. Cost O(N^3). sigma^2 = ||V||_op is the variance
    parameter of matrix Bernstein (:func:`bernstein_bound`).
    """
    A = as_tensor(Xh, "Xh", ndim=2, min_rows=1)
    th = unit_angle(A)  # checks unit rows
    U = torch.cos(th)
    UT = U * th
    second = (0.5 - th / (4 * math.pi)) * (U @ U) - (UT @ U + U @ UT) / (4 * math.pi)
    T = U * (math.pi - th) / (2 * math.pi)
    V = second - T @ T
    return (V + V.T) / 2


class Bernstein(NamedTuple):
    """Matrix Bernstein for Theta_m - Theta_inf = (1/m) sum_r (Theta^(r) - Theta_inf) (see :func:`bernstein_bound`)."""

    sigma2: float  # ||E[(Theta^(r) - Theta_inf)^2]||_op
    L: float       # ||U||_op >= ||Theta^(r) - Theta_inf||_op for every draw
    n: int         # the matrix size N
    lambda_max: float  # of Theta_inf

    def bound(self, m: int) -> float:
        """sqrt(2 sigma^2 log(2N) / m) + L log(2N) / (3 m): the bound on E||Theta_m - Theta_inf||_op."""
        m = check_int(m, "m")
        lg = math.log(2 * self.n)
        return math.sqrt(2 * self.sigma2 * lg / m) + self.L * lg / (3 * m)

    @property
    def c(self) -> float:
        """sqrt(2 sigma^2 log(2N)): the constant of the m^{-1/2} term, the bound's prediction for c."""
        return math.sqrt(2 * self.sigma2 * math.log(2 * self.n))


def bernstein_bound(Xh) -> Bernstein:
    """The matrix Bernstein constants of the empirical NTK on unit rows ``Xh`` (N, d), float64.

    For independent, centred, symmetric N x N matrices Z_r with ||Z_r||_op <= L_Z (Tropp 2015, Thm 6.1.1
    and Cor. 6.1.2), E||sum_r Z_r||_op <= sqrt(2 v log(2N)) + L_Z log(2N) / 3, v = ||sum_r E Z_r^2||_op.
    With Z_r = (Theta^(r) - Theta_inf) / m: v = sigma^2 / m, sigma^2 = ||:func:`ntk_variance`||_op, and
    L_Z = L / m with L = ||U||_op (both Theta^(r) = D_s U D_s and Theta_inf are PSD with norm at most
    ||U||, so ||Theta^(r) - Theta_inf|| <= ||U||). Hence

        E||Theta_m - Theta_inf||_op <= sqrt(2 sigma^2 log(2N) / m) + ||U|| log(2N) / (3 m).

    Since E[(Theta^(r))^2] <= ||U|| Theta_inf, sigma^2 <= ||U|| lambda_max(Theta_inf); for nearly parallel
    features ||U|| ~ N and lambda_max ~ N / 2, so the constant grows like lambda_max sqrt(log N), not
    lambda_max sqrt(N log N). Returns :class:`Bernstein`.
    """
    A = as_tensor(Xh, "Xh", ndim=2, min_rows=1)
    V = ntk_variance(A)
    U = A @ A.T
    T = ntk_relu(A)
    return Bernstein(float(torch.linalg.eigvalsh(V).abs().max()), float(torch.linalg.eigvalsh((U + U.T) / 2)[-1]),
                     int(A.shape[0]), float(torch.linalg.eigvalsh(T)[-1]))


# --------------------------------------------------------------------------- extrapolating a width


class PowerLawFit(NamedTuple):
    """A free-slope fit log10(err) = y0 + slope (log10 m - x0), one fit per seed, pooled over seeds.

    ``slope`` and ``y0`` are the means over seeds of each seed's least-squares fit (pivoted at the
    common x0 = mean log10 width, where slope and intercept are uncorrelated); ``slope_se`` and
    ``y0_se`` their standard errors (sd / sqrt(S)); ``seeds`` = S. Seeds are independent draws,
    the widths of one seed need not be (a seed's narrow network can be a sub-network of its wide one).
    """

    slope: float
    slope_se: float
    x0: float
    y0: float
    y0_se: float
    seeds: int

    @property
    def c(self) -> float:
        """The constant c of err = c m^slope."""
        return 10 ** (self.y0 - self.slope * self.x0)

    def _corners(self, level: float) -> list[tuple[float, float]]:
        """The four (slope, y0) at +- t SE each, t the Student quantile for ``level``, S - 1 dof."""
        lv = check_range(level, "level", 0.0, 1.0, lo_open=True, hi_open=True)
        if self.seeds < 2:
            raise ValueError(f"a range needs at least two seeds, got {self.seeds}")
        from scipy.stats import t as student

        q = float(student.ppf(0.5 + lv / 2, self.seeds - 1))
        return [(b, y) for b in (self.slope - q * self.slope_se, self.slope + q * self.slope_se)
                for y in (self.y0 - q * self.y0_se, self.y0 + q * self.y0_se)]

    def log10_error(self, widths, level: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lo, mid, hi) of the fitted log10 error at ``widths`` (K,), each (K,) float64.

        With ``level``, lo and hi are the least and largest over the same four fits as
        :meth:`log10_width` (a band that widens away from x0); without it, lo = hi = mid.
        """
        x = torch.log10(as_tensor(widths, "widths", ndim=1, min_rows=1)) - self.x0
        mid = self.y0 + self.slope * x
        if level is None:
            return mid, mid, mid
        lines = torch.stack([y + b * x for b, y in self._corners(level)])
        return lines.min(0).values, mid, lines.max(0).values

    def log10_width(self, target: float, level: float | None = None) -> tuple[float, float, float]:
        """(lo, mid, hi) of log10 m at which the fit reaches ``target`` > 0.

        ``mid`` uses the mean fit. With ``level`` (e.g. 0.95), lo and hi are the least and largest
        log10 m over the four fits with slope +- t SE and y0 +- t SE (t the Student quantile with
        S - 1 degrees of freedom): the range the free-slope fit implies. A slope interval that reaches 0
        (the error may not fall at all) gives hi = inf. Without ``level``, lo = hi = mid.
        """
        t_ = check_range(target, "target", 0.0, math.inf, lo_open=True, hi_open=True)
        if self.slope >= 0:
            raise ValueError(f"the fitted slope is {self.slope:.3g} >= 0: the error does not fall with width")
        lt = math.log10(t_)
        mid = self.x0 + (lt - self.y0) / self.slope
        if level is None:
            return mid, mid, mid
        ends = [math.inf if b >= 0 else self.x0 + (lt - y) / b for b, y in self._corners(level)]
        return min(ends), mid, max(ends)


def fit_power_law_seeds(widths, errors) -> PowerLawFit:
    """Fit log10(err) = y0 + slope (log10 m - x0) to each seed's column of ``errors`` (W, S), pooled.

    ``widths`` (W,) positive, at least two distinct; ``errors`` (W, S) positive, S >= 1 seeds
    (columns). Each seed gets its own least-squares slope; :class:`PowerLawFit` holds their mean
    and standard error. The mean slope equals the slope :func:`fit_power_law` fits to the mean of
    log10 errors over seeds.
    """
    m = as_tensor(widths, "widths", ndim=1, min_rows=2)
    e = as_tensor(errors, "errors", ndim=2)
    if e.shape[0] != m.shape[0]:
        raise ValueError(f"errors has {e.shape[0]} rows for {m.shape[0]} widths; pass one row per width, one column per seed")
    if bool((m <= 0).any()) or bool((e <= 0).any()):
        raise ValueError("widths and errors must be positive for a log-log fit")
    x, Y = torch.log10(m), torch.log10(e)
    x0 = float(x.mean())
    xc = x - x0
    sxx = float((xc**2).sum())
    if sxx == 0:
        raise ValueError("need at least two distinct widths")
    slopes = (xc[:, None] * Y).sum(0) / sxx  # (S,)
    y0s = Y.mean(0)
    S = int(e.shape[1])
    se = (lambda v: float(v.std(unbiased=True)) / math.sqrt(S) if S > 1 else math.nan)
    return PowerLawFit(float(slopes.mean()), se(slopes), x0, float(y0s.mean()), se(y0s), S)


class Bracket(NamedTuple):
    """Measured widths around the width a criterion needs (see :func:`measured_bracket`); None where absent."""

    lower: int | None  # the largest measured width at which every seed's error exceeds the target
    upper: int | None  # the smallest measured width at which every seed's error is at most the target


def measured_bracket(widths, errors, target: float) -> Bracket:
    """What the measurements alone say about the width at which the error reaches ``target``.

    ``widths`` (W,), ``errors`` (W, S) for S seeds. ``lower``: the largest measured width at which every
    seed's error exceeds ``target``: no seed meets the criterion there, so on this data the width it needs
    is larger (an empirical lower bound, valid for the data, the seeds and the widths measured, not beyond
    them). ``upper``: the smallest measured width at which every seed meets it (an empirical sufficient width).
    """
    m = as_tensor(widths, "widths", ndim=1, min_rows=1)
    e = as_tensor(errors, "errors", ndim=2)
    if e.shape[0] != m.shape[0]:
        raise ValueError(f"errors has {e.shape[0]} rows for {m.shape[0]} widths; pass one row per width, one column per seed")
    t_ = check_range(target, "target", 0.0, math.inf, lo_open=True, hi_open=True)
    above = [int(w) for w, row in zip(m.tolist(), e) if bool((row > t_).all())]
    below = [int(w) for w, row in zip(m.tolist(), e) if bool((row <= t_).all())]
    return Bracket(max(above) if above else None, min(below) if below else None)
