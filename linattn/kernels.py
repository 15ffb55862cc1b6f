"""Kernels of Part I: the Gram matrix, its powers, and the infinite-width NTK.

Everything here is float64 (a spectrum spanning kappa^3 ~ 1e10 is below float32
resolution). Inputs so large that a product overflows float64 (G^p of X with entries ~1e50,
attention over keys ~1e100) are a :class:`linattn._validation.ScaleError` (a ValueError naming
the argument to rescale), never an inf or NaN kernel. Shapes: a data matrix ``X`` is (N, d), one input a row; a kernel between
``X`` (N, d) and ``X2`` (N2, d) is (N, N2).

- ``gram(X) = X X^T``; ``gram_power(X, p) = G^p``; ``gram_cubed(X) = (G X)(G X)^T = G^3``.
- ``attention_kernel(X, X2, X_keys) = X C^2 X2^T`` with ``C = X_keys^T X_keys`` (the linear
  kernel of linearized attention features, as a function of two inputs).
- ``attention_feature_gram(X) = D^{-1/2} G^3 D^{-1/2}``, ``D = diag(G^3)``: the Gram of the
  unit-normalised attention features x^ that MLP-Attn feeds to its hidden layer.
- ``unit_angle``: angles between unit vectors, theta = 2 arcsin(||x - x'|| / 2).
- ``arccos0``: the order-0 arc-cosine kernel E_w[1[w.x > 0] 1[w.x' > 0]] = (pi - theta) / (2 pi).
- ``ntk_relu``: the infinite-width NTK of f(x) = m^{-1/2} a^T relu(W x^) with only W trained,
  K(x, x') = u (pi - theta) / (2 pi), u = <x^, x^'>.
- ``ntk_inf``: ntk_relu on a model's own features; ``data_kernel``: the kernels above as
  functions (X, X_train) -> K of raw pixel rows, for a kernel without a network.
- ``hadamard_lower_bound``: lambda_min of ntk_relu from its Hadamard expansion in the feature
  Gram U, U / 4 + (1 / 2 pi) sum_k c_k U^{o(2k+2)}: why the NTK's conditioning is set by the
  closest pair of features, not by kappa(U).

Example
-------
>>> import torch
>>> from linattn.kernels import gram, gram_cubed
>>> X = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
>>> torch.allclose(gram_cubed(X), torch.linalg.matrix_power(gram(X), 3))
True
"""
from __future__ import annotations

import math
from typing import Callable, Literal, NamedTuple

import torch

from ._validation import (
    as_tensor,
    check_finite_result,
    check_int,
    check_no_underflow,
    check_option,
    check_range,
    check_seed,
    power_of_two_scale,
    symmetrize,
)

#: the largest power p of gram_power (G^p of any X whose G is not exactly a projection leaves
#: float64 long before; the cap keeps a mistyped p from running for ever)
MAX_POWER = 10_000

__all__ = [
    "gram",
    "gram_power",
    "gram_cubed",
    "attention_kernel",
    "attention_feature_gram",
    "sensitivity_bound",
    "unit_angle",
    "arccos0",
    "arccos0_monte_carlo",
    "ntk_relu",
    "ntk_inf",
    "features64",
    "data_kernel",
    "HadamardBound",
    "hadamard_lower_bound",
]

#: how far a row norm may be from 1 before a "unit-row" input is refused
UNIT_TOL = 1e-6


def _data(X, name: str = "X", *, min_rows: int = 1) -> torch.Tensor:
    return as_tensor(X, name, ndim=2, min_rows=min_rows)


def _pair(X, X2, name: str = "X", name2: str = "X2") -> tuple[torch.Tensor, torch.Tensor]:
    A = _data(X, name)
    B = A if X2 is None else _data(X2, name2)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"{name} has d = {A.shape[1]} columns but {name2} has d = {B.shape[1]}")
    return A, B


def _check_unit_rows(Xh: torch.Tensor, name: str) -> None:
    norms = Xh.norm(dim=1)
    worst = float((norms - 1).abs().max()) if norms.numel() else 0.0
    if worst > UNIT_TOL:
        raise ValueError(
            f"{name} must have unit-norm rows (max | ||x|| - 1 | = {worst:.3g} > {UNIT_TOL}); "
            "normalise with linattn.models.unit_rows first"
        )


def gram(X) -> torch.Tensor:
    """G = X X^T, the (N, N) float64 Gram matrix of the rows of ``X`` (N, d)."""
    A = _data(X)
    G = A @ A.T
    check_finite_result(G, "G = X X^T", "scale X down")
    check_no_underflow(A, G, "G = X X^T")
    return symmetrize(G)  # exactly symmetric


def gram_power(X, p: int) -> torch.Tensor:
    """G^p (N, N, float64) for the Gram G = X X^T of ``X`` (N, d); ``p >= 1``.

    Computed without multiplying n x n matrices p times, as a product of two factors
    so that the result is symmetric positive semidefinite by construction:
    for p = 2k + 1, G^p = (X C^k)(X C^k)^T; for p = 2k, G^p = (X C^{k-1} X^T)(...)^T,
    with C = X^T X (d x d).
    """
    A = _data(X)
    p = check_int(p, "p", minimum=1, maximum=MAX_POWER)
    C = A.T @ A
    k = p // 2
    Y = A @ torch.linalg.matrix_power(C, k) if p % 2 == 1 else A @ torch.linalg.matrix_power(C, k - 1) @ A.T
    P = Y @ Y.T
    check_finite_result(P, f"G^p of X (p = {p})", "scale X down (e.g. X / torch.linalg.matrix_norm(X, 2)) or lower p")
    check_no_underflow(A, P, f"G^p of X (p = {p})")
    return symmetrize(P)


def gram_cubed(X) -> torch.Tensor:
    """G^3 (N, N, float64) computed as (G X)(G X)^T for ``X`` (N, d).

    This is the linear kernel of the linearized-attention features G X (Theorem 4.1 of
    v1): (G X)(G X)^T = X X^T X X^T X X^T = G^3 = X C^2 X^T. Forming it as a product of
    the (N, d) factor G X with itself keeps it symmetric and positive semidefinite in
    floating point, which a plain G @ G @ G does not guarantee.
    """
    A = _data(X)
    F = A @ (A.T @ A)  # G X = X C
    K = F @ F.T
    check_finite_result(K, "G^3 of X", "scale X down")
    check_no_underflow(A, K, "G^3 of X")
    return symmetrize(K)


def attention_kernel(X, X2=None, *, X_keys=None) -> torch.Tensor:
    """K(x, x') = x^T C^2 x' (N, N2, float64), C = X_keys^T X_keys (d x d).

    ``X`` (N, d) and ``X2`` (N2, d, default ``X``); ``X_keys`` (n, d) defaults to ``X``.
    With ``X_keys = X = X2`` this is G^3. It is the linear kernel of the test-time
    attention features f_att(x) = C x.
    """
    A, B = _pair(X, X2)
    keys = A if X_keys is None else _data(X_keys, "X_keys")
    if keys.shape[1] != A.shape[1]:
        raise ValueError(f"X_keys has d = {keys.shape[1]} columns but X has d = {A.shape[1]}")
    C = keys.T @ keys
    K = (A @ C) @ (B @ C).T
    return check_finite_result(K, "the attention kernel X C^2 X2^T (C = X_keys^T X_keys)",
                               "scale X, X2 or X_keys down")


def attention_feature_gram(X, normalize: bool = True) -> torch.Tensor:
    """D^{-1/2} G^3 D^{-1/2} (N, N, float64), D = diag(G^3), for ``X`` (N, d).

    The Gram of the unit-normalised attention features x^_i = (G X)_i / ||(G X)_i||, which
    is what the hidden layer of MLP-Attn sees. With ``normalize=False`` this is G^3 itself.
    A row whose attention feature is zero (D_ii = 0) is an error.
    """
    A = _data(X)
    if normalize:  # the normalised Gram does not depend on the scale of X: keep G X in range
        A = power_of_two_scale(A)
    F = A @ (A.T @ A)
    check_finite_result(F, "the attention features G X of X", "scale X down")
    check_no_underflow(A, F, "the attention features G X of X")
    if normalize:
        norms = F.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError(
                f"X has {int((norms == 0).sum())} rows with a zero attention feature G x_i (D_ii = 0: zero rows "
                "of X?); drop them before normalising"
            )
        F = F / norms
    K = F @ F.T
    return symmetrize(K)


def sensitivity_bound(x_j, eps: float, *, X_keys) -> float:
    """eps ||C^2 x_j||_1: the typed form of Proposition 4.5 (v1) for ``x_j`` (d,).

    With the keys X held fixed, K(x_i + delta, x_j) - K(x_i, x_j) = delta^T C^2 x_j exactly
    (K is bilinear), so Hoelder's inequality gives
    |K(x_i + delta, x_j) - K(x_i, x_j)| <= ||delta||_inf ||C^2 x_j||_1 <= eps ||C^2 x_j||_1,
    with equality at delta = eps sign(C^2 x_j). (v1 prints eps ||G x_j||_1, which is
    ill-typed: G is n x n and x_j is in R^d.) ``eps`` must lie in [0, 1].
    """
    keys = _data(X_keys, "X_keys")
    xj = as_tensor(x_j, "x_j", ndim=1)
    if xj.shape[0] != keys.shape[1]:
        raise ValueError(f"x_j has {xj.shape[0]} entries but the keys have d = {keys.shape[1]}")
    eps = check_range(eps, "eps", 0.0, 1.0)
    C = keys.T @ keys
    v = C @ (C @ xj)
    check_finite_result(v, "C^2 x_j (C = X_keys^T X_keys)", "scale X_keys or x_j down")
    total = check_finite_result(v.abs().sum(), "||C^2 x_j||_1 (C = X_keys^T X_keys)", "scale X_keys or x_j down")
    return eps * float(total)


def unit_angle(Xh, Xh2=None) -> torch.Tensor:
    """theta_ij = 2 arcsin(||x^_i - x^'_j|| / 2) in [0, pi] (N, N2, float64).

    ``Xh`` (N, d) and ``Xh2`` (N2, d, default ``Xh``) must have unit rows. The angle is taken
    from the distance, not from arccos(<x^, x^'>), which loses half the digits near
    theta = 0 (arccos(1 - t) ~ sqrt(2 t)). Distances are computed directly (not by the
    ||x||^2 + ||x'||^2 - 2 <x, x'> expansion, which cancels for close vectors).
    """
    A, B = _pair(Xh, Xh2, "Xh", "Xh2")
    _check_unit_rows(A, "Xh")
    _check_unit_rows(B, "Xh2")
    D = torch.cdist(A, B, compute_mode="donot_use_mm_for_euclid_dist")
    return 2 * torch.asin((D / 2).clamp(0.0, 1.0))


def arccos0(Xh, Xh2=None) -> torch.Tensor:
    """The order-0 arc-cosine kernel (N, N2, float64) of unit rows ``Xh`` (N, d), ``Xh2`` (N2, d).

    k0(x, x') = E_{w ~ N(0, I_d)}[1[w.x > 0] 1[w.x' > 0]] = (pi - theta) / (2 pi),
    theta the angle between x and x' (Cho & Saul 2009; derived in linattn.symbolic).
    """
    return (math.pi - unit_angle(Xh, Xh2)) / (2 * math.pi)


def arccos0_monte_carlo(Xh, Xh2=None, *, n_samples: int = 100_000, seed: int = 0) -> torch.Tensor:
    """Monte Carlo estimate (N, N2, float64) of E_w[1[w.x > 0] 1[w.x' > 0]], w ~ N(0, I_d).

    The average over ``n_samples`` seeded Gaussian w of the products of step functions:
    S S'^T / n_samples with S = 1[Xh w^T > 0]. Its standard error is at most
    0.5 / sqrt(n_samples). An independent check of :func:`arccos0`.
    """
    A, B = _pair(Xh, Xh2, "Xh", "Xh2")
    n_samples = check_int(n_samples, "n_samples")
    gen = torch.Generator().manual_seed(check_seed(seed))
    total = torch.zeros(A.shape[0], B.shape[0], dtype=torch.float64)
    done = 0
    block = max(1024, 2**22 // (A.shape[0] + B.shape[0]))  # memory O(2^22) floats a block
    while done < n_samples:
        b = min(block, n_samples - done)
        w = torch.randn(b, A.shape[1], generator=gen, dtype=torch.float64)
        total += (A @ w.T > 0).to(torch.float64) @ (B @ w.T > 0).to(torch.float64).T
        done += b
    return total / n_samples


def ntk_relu(Xh, Xh2=None) -> torch.Tensor:
    """Infinite-width NTK (N, N2, float64) of f(x) = m^{-1/2} a^T relu(W x^), only W trained.

    K(x^, x^') = u (pi - theta) / (2 pi), u = <x^, x^'>, theta = 2 arcsin(||x^ - x^'|| / 2),
    for unit rows ``Xh`` (N, d) and ``Xh2`` (N2, d, default ``Xh``), w_r ~ N(0, I_d) and
    a_r = +-1. It is the m -> infinity limit of the empirical NTK
    Theta_m = (X^ X^'^T) * (S S'^T) / m, S = 1[X^ W^T > 0] (Theorem 4.2 of v1), one output
    block; distinct outputs are uncorrelated in the limit (E[a_rc a_rc'] = 0 for c != c').
    """
    A, B = _pair(Xh, Xh2, "Xh", "Xh2")
    theta = unit_angle(A, B)
    u = torch.cos(theta)  # = <x^, x^'> for unit rows, consistent with theta
    return u * (math.pi - theta) / (2 * math.pi)


def features64(model, X) -> torch.Tensor:
    """The model's hidden-layer input x^ (N, d) computed in float64, whatever the model's dtype.

    ``model`` is a :class:`linattn.models.TwoLayerNet`; ``X`` (N, d) raw inputs. Uses the
    model's ``input_map`` and ``feature_map`` (if any) on float64 inputs, then unit-normalises the rows.
    """
    from .models import unit_rows  # local import: models imports attention, not kernels

    W = getattr(model, "W", None)
    if not isinstance(W, torch.Tensor) or W.ndim != 2:
        raise TypeError(f"model must be a two-layer network with weights W (m, d) (linattn.models.TwoLayerNet), "
                        f"got {type(model).__name__}")
    x = _data(X)
    d = int(W.shape[1])
    if x.shape[1] != d:
        raise ValueError(f"x has {x.shape[1]} features, the model expects d = {d}")
    im = getattr(model, "input_map", None)
    if im is not None:
        x = im(x.to(torch.float64))
    fm = getattr(model, "feature_map", None)
    h = x if fm is None else fm(x)
    check_finite_result(h, "the model's features of X", "scale X (or the attention keys) down")
    return unit_rows(h.to(torch.float64))


def ntk_inf(model, X, X2=None) -> torch.Tensor:
    """ntk_relu(x^, x^') (N, N2, float64) on the model's own features x^ = model.features(x).

    ``X`` (N, d) and ``X2`` (N2, d, default ``X``) raw inputs; the features are computed in
    float64 (see :func:`features64`). The model's weights W do not enter: this is the
    m -> infinity limit of :func:`linattn.ntk.empirical_ntk` for that feature map.
    """
    A = features64(model, X)
    B = A if X2 is None else features64(model, X2)
    return ntk_relu(A, B)


class HadamardBound(NamedTuple):
    """The Hadamard-expansion lower bound on lambda_min(ntk_relu) (see :func:`hadamard_lower_bound`)."""

    bound: float            # lambda_min(U) / 4 + (1 / 2 pi) sum_{k < k_max} c_k lambda_min(U^{o(2k+2)}) (step lower bound)
    linear_term: float      # lambda_min(U) / 4: what the expansion's first term alone gives
    powers: list[int]       # the Hadamard powers p = 2k + 2 at which lambda_min was evaluated
    lmins: list[float]      # lambda_min(U^{o p}) at those powers (non-decreasing in p)
    weight: float           # (1 / 2 pi) sum_{k < k_max} c_k, against the full series' 1/4


def _arcsin_coefficients(k_max: int) -> torch.Tensor:
    """c_k (k < k_max, float64) of arcsin(u) = sum_k c_k u^{2k+1}: c_0 = 1, c_{k+1} / c_k = (2k+1)^2 / ((2k+2)(2k+3))."""
    k = torch.arange(k_max - 1, dtype=torch.float64)
    ratios = (2 * k + 1) ** 2 / ((2 * k + 2) * (2 * k + 3))
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(ratios, 0)])


def hadamard_lower_bound(Xh, *, k_max: int = 1_000_000, n_eval: int = 60) -> HadamardBound:
    """A lower bound on lambda_min of the infinite-width NTK :func:`ntk_relu` of unit rows ``Xh`` (N, d).

    With U = Xh Xh^T (unit diagonal) and (pi - arccos u) / (2 pi) = 1/4 + arcsin(u) / (2 pi),

        Theta_inf = U o k0(U) = U / 4 + (1 / 2 pi) sum_{k >= 0} c_k U^{o(2k+2)},

    c_k = (2k)! / (4^k (k!)^2 (2k+1)) > 0 the Taylor coefficients of arcsin (sum_k c_k = pi/2),
    o the Hadamard (entrywise) product. Every term is positive semi-definite (Schur product
    theorem), so lambda_min(Theta_inf) >= lambda_min(U) / 4 + (1 / 2 pi) sum_k c_k lambda_min(U^{o(2k+2)}),
    and dropping the terms k >= ``k_max`` keeps it a lower bound. Schur's inequality
    lambda_min(A o U) >= lambda_min(A) min_i U_ii = lambda_min(A) makes lambda_min(U^{o p})
    non-decreasing in p, so it is evaluated at ``n_eval`` log-spaced powers and held constant
    until the next one: still a lower bound, with N x N eigenvalue problems only ``n_eval`` times.

    The mechanism it shows: lambda_min(U) may be tiny (U of attention features inherits the
    conditioning of G^3) while the high Hadamard powers, whose off-diagonal entries u_ij^p
    shrink towards 0, approach the identity and lift lambda_min; how fast is set by the largest
    off-diagonal |u_ij|, the closest pair of features.
    """
    A = _data(Xh, "Xh", min_rows=2)
    _check_unit_rows(A, "Xh")
    k_max = check_int(k_max, "k_max", minimum=1)
    n_eval = check_int(n_eval, "n_eval", minimum=1)
    U = symmetrize(A @ A.T)
    c = _arcsin_coefficients(k_max)
    ks = sorted({0, *(int(round(v)) - 1 for v in torch.logspace(0, math.log10(k_max), n_eval, dtype=torch.float64).tolist())})
    ks = [k for k in ks if 0 <= k < k_max]
    lmin = lambda M: float(torch.linalg.eigvalsh(symmetrize(M))[0])
    lmins = [max(lmin(U ** (2 * k + 2)), 0.0) for k in ks]
    for i in range(1, len(lmins)):      # enforce the monotonicity that Schur's inequality guarantees (rounding aside)
        lmins[i] = max(lmins[i], lmins[i - 1])
    bounds = ks[1:] + [k_max]
    series = sum(float(c[k:hi].sum()) * lm for k, hi, lm in zip(ks, bounds, lmins)) / (2 * math.pi)
    linear = max(lmin(U), 0.0) / 4
    return HadamardBound(bound=linear + series, linear_term=linear, powers=[2 * k + 2 for k in ks],
                         lmins=lmins, weight=float(c.sum()) / (2 * math.pi))


DataKernelKind = Literal["linear", "attention", "ntk_relu", "ntk_attn"]


def data_kernel(kind: DataKernelKind) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A kernel function (X (N, d), X_train (n, d)) -> K (N, n), float64, of unit-normalised rows.

    The second argument is always the training set, so the attention kernels take their keys from it
    (the attention is recomputed whenever the training set changes); x^ = x / ||x|| and X^ the unit
    rows (:func:`linattn.models.attention_keys`):

    - ``"linear"``: K = X^ X_train^^T, the Gram G on the training set;
    - ``"attention"``: K = X^ C^2 X_train^^T with C = X_train^^T X_train^, which is G^3 on the training
      set (Theorem 4.1 of v1; :func:`attention_kernel`);
    - ``"ntk_relu"``: the infinite-width NTK of the 2L-ReLU, :func:`ntk_relu` of x^;
    - ``"ntk_attn"``: the infinite-width NTK of MLP-Attn, ntk_relu of the unit attention features
      C x / ||C x|| (:func:`ntk_inf` of an MLP-Attn model with keys X_train^).

    Used by :func:`linattn.malleability.kernel_malleability`.
    """
    from .models import attention_keys, mlp_attn  # local import: models does not import kernels

    def unit(Z):
        return attention_keys(Z, unit_keys=True)

    def linear(X, X2):
        A, B = _pair(X, X2, "X", "X_train")
        return unit(A) @ unit(B).T

    def attention(X, X2):
        _pair(X, X2, "X", "X_train")
        K2 = unit(X2)
        return attention_kernel(unit(X), K2, X_keys=K2)

    def ntk_relu_(X, X2):
        A, B = _pair(X, X2, "X", "X_train")
        return ntk_relu(unit(A), unit(B))

    def ntk_attn(X, X2):
        _pair(X, X2, "X", "X_train")
        model = mlp_attn(unit(X2), 1, dtype=torch.float64)
        return ntk_inf(model, X, X2)

    table = {"linear": linear, "attention": attention, "ntk_relu": ntk_relu_, "ntk_attn": ntk_attn}
    check_option(kind, "kind", sorted(table))
    kernel = table[kind]
    kernel.__name__ = kind  # the label kernel_malleability writes in its rows
    return kernel
