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
:func:`fit_power_law` measure that rate and its constant.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.func import functional_call, jacrev

from ._validation import as_tensor, check_int, check_option, check_range, check_seed
from .kernels import features64, ntk_inf

__all__ = [
    "empirical_ntk",
    "param_jacobian",
    "empirical_ntk_autodiff",
    "ntk_error_vs_width",
    "fit_power_law",
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
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable (width, seed) -> model, got {type(make_model).__name__}")
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a list of widths, got {widths!r}")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a list of seeds, got {seeds!r}")
    ws = [check_int(w, "width") for w in widths]
    ss = [check_seed(s) for s in seeds]
    if not ws or not ss:
        raise ValueError("give at least one width and one seed")
    out = torch.empty(len(ws), len(ss), dtype=torch.float64)
    inf = None
    for i, w in enumerate(ws):
        for j, s in enumerate(ss):
            model = make_model(w, s)
            if inf is None:
                inf = ntk_inf(model, X)
            E = empirical_ntk(model, X) - inf
            out[i, j] = torch.linalg.matrix_norm(E, ord="fro" if norm == "fro" else 2)
    return out


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
