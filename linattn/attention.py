"""Parameter-free linearized attention and its variants.

Linearizing dot-product attention with W_Q = W_K = W_V = I (replace exp(a) by 1 + a,
drop the normaliser, the 1/sqrt(d) temperature and the constant term) leaves

    f_att(X) = X X^T X = G X,          G = X X^T  (n x n),

so row i is x~_i = sum_k (x_i . x_k) x_k. Attention runs over the whole training set
(it is transductive). The test-time rule of this book (a choice the paper does not
state) is

    f_att(x) = C x,                    C = X_train^T X_train  (d x d),

which agrees with row i of G X on a training point and makes the induced kernel a
function of two inputs: K(x, x') = x^T C^2 x'.

Variants (Part I):

- ``softmax_attention``: the standard row-softmax attention with W_Q = W_K = W_V = I
  (weights from a max-subtracted logsumexp, :func:`softmax_weights`), and
  ``SoftmaxAttention``, its test-time feature map over fixed keys (Part IV).
- ``stacked_cross(X, k)``: k layers that attend to the original X as keys and values,
  X_{l+1} = X_l X^T X, so X_k = X C^k and the induced linear kernel is G^{2k+1}.
- ``stacked_self(X, k)``: k layers of true self-attention, X_{l+1} = X_l X_l^T X_l, whose
  Gram G_{l+1} = G_l^3 gives G^{3^k}.
- ``truncated_attention_matrix(X, r)``: C_r = V_r diag(s_r^2) V_r^T from the top r of the
  spectrum of X^T X (equivalently of G): the induced kernel keeps only the top r
  eigenvalues of G, cubed.
- ``qkv_attention_gram``: trainable Q, K, V at standard initialisation, linearized.
- ``FixedLinearMap`` and the ``*_map`` constructors: the test-time feature maps x -> x M of
  these variants, to put under a :class:`linattn.models.TwoLayerNet`.

Everything is float64. Inputs or keys so large that a product overflows float64 (C = X^T X of keys
~1e160, k stacked layers, softmax scores <x, k> / T beyond 1.8e308) raise
:class:`linattn._validation.ScaleError` (a ValueError and an OverflowError) naming the argument to
scale down, never an inf or NaN result. A softmax temperature that is not a positive finite number
is a ValueError (:func:`check_temperature`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ._validation import (
    ScaleError,
    as_tensor,
    check_finite_result,
    check_int,
    check_no_underflow,
    check_range,
    check_seed,
    symmetrize,
)

#: the most layers of stacked_cross (each multiplies by C) and of stacked_self (each cubes the Gram):
#: any X whose spectrum is not exactly 1 leaves float64 long before; the caps stop a mistyped k
MAX_CROSS_LAYERS = 10_000
MAX_SELF_LAYERS = 64

__all__ = [
    "attention_matrix",
    "linearized_attention",
    "LinearizedAttention",
    "check_temperature",
    "softmax_weights",
    "softmax_attention",
    "SoftmaxAttention",
    "SoftmaxExpansion",
    "softmax_expansion",
    "stacked_cross",
    "stacked_self",
    "truncated_attention_matrix",
    "QKVAttention",
    "qkv_attention_gram",
    "FixedLinearMap",
    "stacked_cross_map",
    "stacked_self_map",
    "truncated_attention_map",
]


def attention_matrix(X_keys) -> torch.Tensor:
    """C = X^T X (d x d, float64) for keys/values ``X_keys`` of shape (n, d)."""
    X = as_tensor(X_keys, "X_keys", ndim=2, min_rows=1)
    return check_finite_result(X.T @ X, "C = X_keys^T X_keys", "scale X_keys down")


def linearized_attention(X, X_keys=None) -> torch.Tensor:
    """f_att(X) = X C with C = X_keys^T X_keys (float64, shape (N, d)).

    With ``X_keys=None`` the keys are ``X`` itself, and the result is G X = X X^T X.
    """
    Xq = as_tensor(X, "X", ndim=2)
    C = attention_matrix(Xq if X_keys is None else X_keys)
    if C.shape[0] != Xq.shape[1]:
        raise ValueError(f"X has d = {Xq.shape[1]} columns but the keys have d = {C.shape[0]}")
    return check_finite_result(Xq @ C, "X C (C = X_keys^T X_keys)", "scale X or X_keys down")  # C symmetric: X C = (C X^T)^T


class LinearizedAttention(torch.nn.Module):
    """The feature map x -> C x with C = X_keys^T X_keys held as a fixed buffer.

    ``C`` is stored in float64 and applied in the input's dtype. Build a new module
    from perturbed keys to recompute the attention (the model as defined), or keep
    this one to hold C fixed while only the inputs move.
    """

    def __init__(self, X_keys) -> None:
        super().__init__()
        self.register_buffer("C", attention_matrix(X_keys))

    @property
    def d(self) -> int:
        return int(self.C.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
            got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"the input x must be a floating tensor (N, {self.d}), got {got}")
        if x.shape[-1] != self.d:
            raise ValueError(f"the input x has {x.shape[-1]} features, the attention expects d = {self.d}")
        return check_finite_result(x @ self.C.to(x.dtype), "the attention features x C of the input",
                                   "scale the input or the keys down, or use float64")


def _data(X, name: str = "X") -> torch.Tensor:
    return as_tensor(X, name, ndim=2, min_rows=1)


def check_temperature(temperature, name: str = "temperature") -> float:
    """A softmax temperature T as a float: a positive finite number (scores are <x, k> / T).

    A string, a boolean or a non-number is a TypeError; zero, a negative number, NaN or an
    infinity a ValueError; both say what to pass instead.
    """
    fix = f"pass a positive finite number, e.g. {name}=1.0 (or None for the usual sqrt(d))"
    if isinstance(temperature, (str, bytes, bool, np.bool_)) or temperature is None:
        raise TypeError(f"{name} must be a positive finite number (attention scores are <x, k> / {name}), "
                        f"got {temperature!r}; {fix}")
    try:
        T = float(temperature)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a positive finite number (attention scores are <x, k> / {name}), "
                        f"got {temperature!r}; {fix}") from None
    if not math.isfinite(T) or T <= 0:
        raise ValueError(f"{name} must be a positive finite number (attention scores are <x, k> / {name}), "
                         f"got {T!r}; {fix}")
    return T


def _queries_keys_temperature(X, X_keys, temperature) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Validated queries (N, d), keys (n, d) (default the queries) and temperature (default sqrt(d))."""
    Q = _data(X)
    Kx = Q if X_keys is None else _data(X_keys, "X_keys")
    if Kx.shape[1] != Q.shape[1]:
        raise ValueError(f"X has d = {Q.shape[1]} columns but the keys have d = {Kx.shape[1]}")
    T = math.sqrt(Q.shape[1]) if temperature is None else check_temperature(temperature)
    return Q, Kx, T


def _scores(Q: torch.Tensor, Kx: torch.Tensor, T: float, queries: str = "X", keys: str = "X_keys") -> torch.Tensor:
    """S = Q Kx^T / T (N, n) in the inputs' dtype; an overflow is a ScaleError naming the argument,
    the value it reached and the fix (never an inf or NaN score)."""
    P = Q @ Kx.T
    big = torch.finfo(P.dtype).max
    dt = str(P.dtype).replace("torch.", "")
    if not bool(torch.isfinite(P).all()):
        raise ScaleError(
            f"the attention scores <x, k> overflow {dt} (largest {big:.3g}): {queries} has entries up to "
            f"{float(Q.detach().abs().max()):.3g} and {keys} up to {float(Kx.detach().abs().max()):.3g}; scale {queries} "
            f"and {keys} down (softmax attention of unit rows, as in linattn.softmax, keeps |<x, k>| <= 1)"
        )
    S = P / T
    if not bool(torch.isfinite(S).all()):
        top = float(P.detach().abs().max())
        raise ScaleError(
            f"the attention scores <x, k> / temperature overflow {dt}: dot products up to {top:.3g} over "
            f"temperature = {T:.3g} exceed its largest number {big:.3g}; raise temperature to at least "
            f"{top / big:.3g} (or scale {queries} and {keys} down{', or use float64' if P.dtype != torch.float64 else ''})"
        )
    return S


def softmax_weights(X, X_keys=None, temperature: float | None = None) -> torch.Tensor:
    """The attention weights A (N, n, float64): A_ik = exp(s_ik - logsumexp_l s_il), s = X X_keys^T / T.

    Queries ``X`` (N, d), keys ``X_keys`` (n, d) (default ``X``), temperature T (default sqrt(d);
    :func:`check_temperature`). The logsumexp is max-subtracted, logsumexp_l s_il =
    m_i + log sum_l exp(s_il - m_i) with m_i = max_l s_il, so every exponent is at most 0: finite
    scores never overflow, however large (a large score only makes the weights one-hot). Scores
    that are themselves beyond float64 (|<x, k>| / T > 1.8e308) raise
    :class:`~linattn._validation.ScaleError` with the value reached and the fix. Rows sum to 1.
    """
    Q, Kx, T = _queries_keys_temperature(X, X_keys, temperature)
    S = _scores(Q, Kx, T)
    return torch.exp(S - torch.logsumexp(S, dim=1, keepdim=True))


def softmax_attention(X, X_keys=None, temperature: float | None = None) -> torch.Tensor:
    """Standard dot-product attention with W_Q = W_K = W_V = I (float64, shape (N, d)).

    out = A X_keys with A = :func:`softmax_weights` (row-softmax of X X_keys^T / T, by a
    max-subtracted logsumexp), queries ``X`` (N, d), keys and values ``X_keys`` (n, d) (default
    ``X``) and temperature T (default sqrt(d), the usual 1/sqrt(d) scaling; a positive finite
    number, :func:`check_temperature`). Linearizing exp(a) ~ 1 + a, dropping the normaliser, T
    and the constant term gives :func:`linearized_attention`. Scores beyond float64 raise
    :class:`~linattn._validation.ScaleError` (argument, value, fix), never a NaN.
    """
    Q, Kx, T = _queries_keys_temperature(X, X_keys, temperature)
    A = softmax_weights(Q, Kx, T)
    return check_finite_result(A @ Kx, "softmax attention (the weighted keys A X_keys)", "scale X_keys down")


class SoftmaxAttention(torch.nn.Module):
    """The feature map x -> softmax(q K^T / T) K over fixed keys K (n, d), held as a float64 buffer.

    The test-time form of softmax attention over a training set (the keys and values, rows k_j):
    a query x (N, d) attends to every key, out = A K with A_ij = exp(s_ij - logsumexp_l s_il),
    s_ij = <q_i, k_j> / T (:func:`softmax_weights`). With ``unit_queries=True`` (the default)
    q = x / ||x|| (a zero row stays zero and attends uniformly), so the features do not depend on
    the scale of x, like the linearized map x -> C x once its output is unit-normalised, and on a
    training row x_i (keys = the unit training rows) the feature is row i of
    ``softmax_attention(K, K, T)``. ``temperature`` is a positive finite number (None: sqrt(d)).
    Applied in the input's dtype (gradients flow to x, for attacks); an overflow of the scores in
    that dtype is a :class:`~linattn._validation.ScaleError`. Build a new module from perturbed keys
    to recompute the attention, or keep this one to hold the keys fixed.
    """

    def __init__(self, X_keys, temperature: float | None = None, *, unit_queries: bool = True) -> None:
        super().__init__()
        keys = _data(X_keys, "X_keys")
        self.register_buffer("keys", keys)
        self.temperature = math.sqrt(keys.shape[1]) if temperature is None else check_temperature(temperature)
        if not isinstance(unit_queries, (bool, np.bool_)):
            raise TypeError(f"unit_queries must be True or False, got {unit_queries!r}")
        self.unit_queries = bool(unit_queries)

    @property
    def d(self) -> int:
        return int(self.keys.shape[1])

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights A (N, n) of the queries x (N, d), in x's dtype."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"the input x must be a floating tensor (N, {self.d}), got {got}")
        if x.shape[-1] != self.d:
            raise ValueError(f"the input x has {x.shape[-1]} features, the attention expects d = {self.d}")
        q = x
        if self.unit_queries:
            q = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        S = _scores(q, self.keys.to(x.dtype), self.temperature, "the input x", "the keys")
        return torch.exp(S - torch.logsumexp(S, dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return check_finite_result(self.weights(x) @ self.keys.to(x.dtype), "the softmax attention features of the input",
                                   "scale the keys down, or use float64")

    def extra_repr(self) -> str:
        return f"n={self.keys.shape[0]}, d={self.d}, temperature={self.temperature:.4g}, unit_queries={self.unit_queries}"


class SoftmaxExpansion(NamedTuple):
    """Softmax attention split as out = constant + first_order + remainder (see :func:`softmax_expansion`)."""

    exact: torch.Tensor  # softmax attention (N, d)
    constant: torch.Tensor  # xbar = mean of the values, broadcast (N, d)
    first_order: torch.Tensor  # [(X K^T) K - (X K^T 1) xbar^T] / (n T)  (N, d)
    linearized: torch.Tensor  # X K^T K = f_att(X), what the paper keeps (N, d)
    centring: torch.Tensor  # (X K^T 1) xbar^T: the part of the first order the paper drops (N, d)
    remainder: torch.Tensor  # exact - constant - first_order, O(1/T^2) (N, d)


def softmax_expansion(X, X_keys=None, temperature: float | None = None) -> SoftmaxExpansion:
    """The first-order expansion of softmax attention in 1/T, and what linearization keeps.

    With scores a_ik = <x_i, k_k> / T, softmax weights exp(a_ik) / sum_k exp(a_ik) and values
    k_k (n keys), expanding exp(a) = 1 + a + O(a^2) in numerator and normaliser gives

        out_i = xbar + [ (G X)_i - (G 1)_i xbar ] / (n T) + O(1/T^2),     G = X K^T,

    xbar the mean key. Linearized attention keeps (G X)_i only: it drops the constant xbar,
    the normaliser n, the temperature T and the centring term (G 1)_i xbar. Shapes (N, d),
    float64; ``X`` (N, d) queries, ``X_keys`` (n, d) (default ``X``), T default sqrt(d).
    """
    Q, Kx, T = _queries_keys_temperature(X, X_keys, temperature)
    n = Kx.shape[0]
    exact = softmax_attention(Q, Kx, T)
    xbar = Kx.mean(dim=0)
    S = Q @ Kx.T
    lin = check_finite_result(S @ Kx, "the linearized attention X X_keys^T X_keys", "scale X or X_keys down")
    cen = check_finite_result(S.sum(dim=1, keepdim=True) * xbar[None], "the centring term", "scale X or X_keys down")
    const = xbar.expand_as(exact).clone()
    first = (lin - cen) / (n * T)
    return SoftmaxExpansion(exact, const, first, lin, cen, exact - const - first)


def stacked_cross(X, k: int) -> torch.Tensor:
    """k layers attending to the original X: X_{l+1} = X_l X^T X, X_0 = X (float64, (n, d)).

    X_k = X C^k with C = X^T X, so the induced linear kernel is
    X_k X_k^T = X C^{2k} X^T = G^{2k+1} and its condition number kappa(G)^{2k+1}
    (the stacking remark of v1). ``k >= 0`` (k = 0 returns X, k = 1 is f_att(X) = G X).
    """
    A = _data(X)
    k = check_int(k, "k", minimum=0, maximum=MAX_CROSS_LAYERS)
    C = A.T @ A
    out = A
    for layer in range(k):
        what = f"layer {layer + 1} of stacked_cross (X C^{layer + 1}) of X"
        out = check_finite_result(out @ C, what, "scale X down (e.g. X / ||X||_2) or use fewer layers")
        check_no_underflow(A, out, what)
    return out


def stacked_self(X, k: int) -> torch.Tensor:
    """k layers of self-attention: X_{l+1} = X_l X_l^T X_l, X_0 = X (float64, (n, d)).

    The Gram of the next layer is G_{l+1} = X_l X_l^T X_l X_l^T X_l X_l^T = G_l^3, so the
    induced linear kernel of X_k is G^{3^k} and its condition number kappa(G)^{3^k}.
    Entries grow like lambda_1^{(3^k)/2}; an overflow to inf is an error (rescale X).
    """
    A = _data(X)
    k = check_int(k, "k", minimum=0, maximum=MAX_SELF_LAYERS)
    out = A
    for layer in range(k):
        out = out @ (out.T @ out)
        check_no_underflow(A, out, f"layer {layer + 1} of stacked_self of X")
        if not bool(torch.isfinite(out).all()):
            raise ScaleError(
                f"layer {layer + 1} of stacked_self overflowed float64 (G^(3^{layer + 1})); "
                "scale X down (e.g. X / ||X||_2) or use fewer layers"
            )
    return out


def truncated_attention_matrix(X, r: int) -> torch.Tensor:
    """C_r = V_r diag(s_r^2) V_r^T (d x d, float64): the top-r part of C = X^T X.

    ``X`` (n, d) = U diag(s) V^T (thin SVD); C = V diag(s^2) V^T. Truncated attention uses
    f(x) = C_r x, so its induced kernel X C_r^2 X^T = U_r diag(s_r^6) U_r^T keeps the top r
    eigenvalues of G = X X^T cubed and sets the rest to zero: on its range its condition
    number is (lambda_1 / lambda_r)^3. ``1 <= r <= min(n, d)``; an r beyond the numerical
    rank of X (s_r <= max(n, d) eps s_1) is an error.
    """
    A = _data(X)
    r = check_int(r, "r")
    n, d = A.shape
    if r > min(n, d):
        raise ValueError(f"r = {r} exceeds min(n, d) = {min(n, d)}")
    _, s, Vh = torch.linalg.svd(A, full_matrices=False)
    tol = max(n, d) * torch.finfo(torch.float64).eps * float(s[0])
    rank = int((s > tol).sum())
    if r > rank:
        raise ValueError(f"r = {r} exceeds the numerical rank {rank} of X; choose r <= {rank}")
    V = Vh[:r].T
    Cr = check_finite_result((V * s[:r] ** 2) @ V.T, "C_r (the top r of X^T X) of X", "scale X down")
    return symmetrize(Cr)


class QKVAttention(NamedTuple):
    """Linearized attention with random Q, K, V (see :func:`qkv_attention_gram`)."""

    features: torch.Tensor  # F = (X W_Q)(X W_K)^T (X W_V), (n, d_v)
    gram: torch.Tensor  # F F^T, (n, n)
    W_Q: torch.Tensor  # (d, d_head)
    W_K: torch.Tensor  # (d, d_head)
    W_V: torch.Tensor  # (d, d_v)


def qkv_attention_gram(
    X, seed: int, *, d_head: int | None = None, d_value: int | None = None
) -> QKVAttention:
    """Linearized attention with trainable Q, K, V at standard initialisation (float64).

    W_Q, W_K (d x d_head) and W_V (d x d_value) have i.i.d. N(0, 1/d) entries drawn from
    ``seed`` (d_head and d_value default to d). The linearized layer is
    F = (X W_Q)(X W_K)^T (X W_V) (n, d_value), and its induced Gram is
    F F^T = (X M X^T)(X N X^T)(X M^T X^T), M = W_Q W_K^T, N = W_V W_V^T (n, n), to compare
    with G^3 (the case W_Q = W_K = W_V = I).
    """
    A = _data(X)
    d = A.shape[1]
    dh = d if d_head is None else check_int(d_head, "d_head")
    dv = d if d_value is None else check_int(d_value, "d_value")
    gen = torch.Generator().manual_seed(check_seed(seed))
    sd = 1.0 / math.sqrt(d)
    WQ = torch.randn(d, dh, generator=gen, dtype=torch.float64) * sd
    WK = torch.randn(d, dh, generator=gen, dtype=torch.float64) * sd
    WV = torch.randn(d, dv, generator=gen, dtype=torch.float64) * sd
    F = (A @ WQ) @ ((A @ WK).T @ (A @ WV))
    K = F @ F.T
    check_finite_result(K, "the QKV attention Gram F F^T of X", "scale X down")
    return QKVAttention(F, symmetrize(K), WQ, WK, WV)


class FixedLinearMap(torch.nn.Module):
    """The feature map x -> x M for a fixed (d, d_out) matrix M, held in float64.

    The test-time form of every attention variant here (M = C, C^k, C_r, ...); use it as
    the ``feature_map`` of a :class:`linattn.models.TwoLayerNet`. Applied in the input's dtype.
    """

    def __init__(self, M, label: str = "linear map") -> None:
        super().__init__()
        self.register_buffer("M", as_tensor(M, "M", ndim=2, min_rows=1))
        self.label = label

    @property
    def d(self) -> int:
        return int(self.M.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
            got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"the input x must be a floating tensor (N, {self.d}), got {got}")
        if x.shape[-1] != self.d:
            raise ValueError(f"the input x has {x.shape[-1]} features, the {self.label} expects d = {self.d}")
        return check_finite_result(x @ self.M.to(x.dtype), f"the {self.label} x M of the input",
                                   "scale the input or the keys down, or use float64")


def stacked_cross_map(X_keys, k: int) -> FixedLinearMap:
    """x -> x C^k: the test-time rule of :func:`stacked_cross` (keys X_keys (n, d), k >= 1)."""
    A = _data(X_keys, "X_keys")
    k = check_int(k, "k", maximum=MAX_CROSS_LAYERS)
    M = check_finite_result(torch.linalg.matrix_power(A.T @ A, k), f"C^k of X_keys (k = {k})",
                            "scale X_keys down or use fewer layers")
    check_no_underflow(A, A @ M, f"C^k of X_keys (k = {k})", "X_keys")
    return FixedLinearMap(M, f"stacked cross-attention (k={k})")


def stacked_self_map(X_keys, k: int) -> FixedLinearMap:
    """x -> x C_0 C_1 ... C_{k-1}, C_l = X_l^T X_l: the test-time rule of :func:`stacked_self`.

    Layer l attends over the training set's own layer-l representation X_l; on a training
    row the map reproduces the row of :func:`stacked_self`. ``k >= 1``.
    """
    A = _data(X_keys, "X_keys")
    k = check_int(k, "k", maximum=MAX_SELF_LAYERS)
    M = torch.eye(A.shape[1], dtype=torch.float64)
    Xl = A
    for layer in range(k):
        Cl = Xl.T @ Xl
        M = M @ Cl
        Xl = Xl @ Cl
        if not bool(torch.isfinite(M).all()) or not bool(torch.isfinite(Xl).all()):
            raise ScaleError(f"layer {layer + 1} of stacked_self_map of X_keys overflowed float64; scale X_keys down "
                             "or use fewer layers")
        check_no_underflow(A, Xl, f"layer {layer + 1} of stacked_self_map of X_keys", "X_keys")
    return FixedLinearMap(M, f"stacked self-attention (k={k})")


def truncated_attention_map(X_keys, r: int) -> FixedLinearMap:
    """x -> C_r x (:func:`truncated_attention_matrix`): truncated attention at test time."""
    return FixedLinearMap(truncated_attention_matrix(X_keys, r), f"truncated attention (r={r})")
