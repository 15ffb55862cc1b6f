"""MLP-Attn with trainable Q, K, V: the model, its induced Gram, its empirical NTK and the NTK's limit.

v2 of the paper says that "the structural argument extends to trainable QKV attention under standard
initialization" (DIGEST section 2.7); this module builds that model and the quantities the book needs
to test the sentence (Part IV, ``book/part4/trainable_qkv.ipynb``).

**The model** (:class:`QKVNet`, built by :func:`qkv_net`). Linearized attention with query, key and
value maps W_Q, W_K (d x d_h) and W_V (d x d_v), keys and values the training set X_keys (n, d)
(transductive, as MLP-Attn), at test time [ours, as :mod:`linattn.attention`]:

    h(x) = x^T W_Q W_K^T C W_V / sqrt(d_h)        (d_v,),   C = X_keys^T X_keys  (d x d),

which on a training row x_i is row i of F = (X W_Q)(X W_K)^T (X W_V) / sqrt(d_h) (n, d_v). Then the
two-layer net of MLP-Attn on the unit-normalised features: f(x) = m^{-1/2} a^T relu(W z(x)),
z = h / ||h||, W (m, d_v), a in {-1,+1}^{m x C} fixed. Trained: W, W_Q, W_K and W_V. Standard
initialisation: W_Q, W_K, W_V with i.i.d. N(0, 1/d) entries (the draws of
:func:`linattn.attention.qkv_attention_gram` for the same seed), W with N(0, 1) entries (the draws of
:func:`linattn.models.mlp_attn` for the same seed, so the two models share their head). Defaults
d_h = d_v = d [ours: the paper states no dimensions]. The temperature 1/sqrt(d_h) cancels in z
(and so in f, its gradients and its NTK); it is kept so that M below is the usual one.

The C part of the attention is the model's ``feature_map`` (a :class:`linattn.attention.LinearizedAttention`,
fixed, not trained), so the library's malleability protocol rebuilds it from a perturbed training set
(``attention="recompute"``, :func:`linattn.models.with_attention_keys`) or holds it fixed, exactly as
for MLP-Attn. The model has no ``features`` / ``forward_features`` pair, so :func:`linattn.train.train`
differentiates the whole forward pass (W_Q, W_K, W_V are trained), and no ``W`` attribute, so the
W-only closed form :func:`linattn.ntk.empirical_ntk` refuses it (use :func:`qkv_ntk`).

**The induced Gram.** F F^T = (X M X^T)(X N X^T)(X M^T X^T) with M = W_Q W_K^T / sqrt(d_h) and
N = W_V W_V^T (n x n): with M = N = I (d_h = d_v = d, no temperature) it is G^3. With X = U S V^T
(thin SVD, rank r0 = min(n, d)), F F^T = U (S M~ S^2 N~ S^2 M~^T S) U^T, M~ = V^T M V, N~ = V^T N V
(r0 x r0), so its rank is at most min(n, d, d_h, d_v) and, when d_h, d_v >= r0,

    kappa(F F^T) <= kappa(G)^3 kappa(M~)^2 kappa(N~)                      (:func:`qkv_gram_spectrum`).

Over the initialisation, E[F F^T] = (d_v tr(G^2) / d^3) G (:func:`qkv_expected_gram`): the *mean*
induced Gram has kappa(G), not kappa(G)^3; every draw has a cubed-like spectrum.

**The empirical NTK** (:func:`qkv_ntk`, closed form; the generic torch.func path is
:func:`linattn.ntk.empirical_ntk_autodiff`, and the tests hold them together in float64). With
x~ the input after the model's input map, q = W_Q^T x~ (d_h), p = C W_K q / sqrt(d_h) (d), h = W_V^T p,
z = h / ||h||, s = 1[W z > 0], g_c = W^T (s * a_c) / sqrt(m) (d_v) the gradient of output c in z, and
v_c = (I - z z^T) g_c / ||h|| its gradient in h,

    Theta[x, c; x', c'] = <z, z'> (1/m) sum_r a_rc a_rc' s_r s'_r                    (W)
                        + <x~, x~'> <B v_c, B v'_c'> / d_h,     B = W_K^T C W_V      (W_Q)
                        + <q, q'> <E v_c, E v'_c'> / d_h,       E = C W_V            (W_K)
                        + <p, p'> <v_c, v'_c'>                                     (W_V).

One kernel for all outputs (what kernel ridge on C targets needs, ``full=False``): the mean of the C
diagonal blocks [ours]; unlike the W part, the Q, K, V parts differ between outputs at finite width.

**Its limit as the width m grows** (Q, K, V fixed). The W part tends to Theta_inf = ntk_relu(z, z').
The Q, K, V parts do not tend to a constant: g_c(x) is a sum of m independent terms over sqrt(m),
so it tends to a Gaussian process, with E[g_c(x) g_c'(x')^T] = delta_cc' Sigma(z, z'),

    Sigma(u, v) = E_w[1[w.u > 0] 1[w.v > 0] w w^T]
                = k0 I + (u v^T + v u^T - cos(theta) (u u^T + v v^T)) / (2 pi sin(theta)),

k0 = (pi - theta) / (2 pi) (:func:`gate_moment`, derived by :func:`gate_moment_derivation`). The
attention layer's own width (d_h, d_v) is fixed, so widening the MLP leaves a random kernel, whose
mean :func:`qkv_ntk_limit` computes in closed form: E[v_c^T R v'_c] = tr(P R P' Sigma) / (||h|| ||h'||),
P = I - z z^T, which reduces to [k0 (tr R - u.Ru - v.Rv + cos(theta) u.Rv)
+ (v - cos(theta) u).R(u - cos(theta) v) / (2 pi sin(theta))] / (||h|| ||h'||), u = z, v = z'.
:func:`qkv_ntk_errors_vs_width` measures the distance of Theta_m to that mean (or of its W part to
Theta_inf) with the readings of :mod:`linattn.ntk`.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Mapping, NamedTuple

import torch

from ._validation import ScaleError, as_tensor, check_finite_result, check_int, check_option, check_seed
from .attention import LinearizedAttention
from .kernels import ntk_relu, unit_angle
from .models import InputMap, TwoLayerNet, unit_rows

__all__ = [
    "QKVNet",
    "qkv_net",
    "qkv_weights",
    "qkv_features",
    "QKVKernel",
    "qkv_ntk_parts",
    "qkv_ntk",
    "qkv_ntk_limit_parts",
    "qkv_ntk_limit",
    "qkv_ntk_errors_vs_width",
    "gate_moment",
    "gate_moment_derivation",
    "QKVSpectrum",
    "qkv_gram_spectrum",
    "qkv_expected_gram",
    "qkv_gram_forms",
    "qkv_expected_gram_symbolic",
]

PARTS = ("W", "Q", "K", "V")


# --------------------------------------------------------------------------- weights and the model


def _check_dim(value, name: str, what: str, d: int) -> int:
    """A head or value dimension: None -> d, else an integer >= 1 (one message style: argument, value, fix)."""
    if value is None:
        return d
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1 ({what}), got {value!r}; pass a positive integer "
                        f"or None (the default, {name} = d = {d})")
    if int(value) < 1:
        raise ValueError(f"{name} must be at least 1 ({what}), got {value}; pass a positive integer "
                         f"or None (the default, {name} = d = {d})")
    return check_int(int(value), name)


def qkv_weights(d: int, seed: int, *, d_head: int | None = None,
                d_value: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W_Q, W_K (d, d_h) and W_V (d, d_v), i.i.d. N(0, 1/d) entries, float64, drawn from ``seed``.

    The same numbers as :func:`linattn.attention.qkv_attention_gram` draws for that seed (in the order
    W_Q, W_K, W_V from ``torch.Generator().manual_seed(seed)``). d_h, d_v default to d; below 1 is an error.
    """
    d = check_int(d, "d")
    dh = _check_dim(d_head, "d_head", "the head dimension of W_Q and W_K", d)
    dv = _check_dim(d_value, "d_value", "the value dimension of W_V", d)
    gen = torch.Generator().manual_seed(check_seed(seed))
    sd = 1.0 / math.sqrt(d)
    WQ = torch.randn(d, dh, generator=gen, dtype=torch.float64) * sd
    WK = torch.randn(d, dh, generator=gen, dtype=torch.float64) * sd
    WV = torch.randn(d, dv, generator=gen, dtype=torch.float64) * sd
    return WQ, WK, WV


class QKVNet(torch.nn.Module):
    """MLP-Attn with trainable Q, K, V: f(x) = m^{-1/2} a^T relu(W z(x)), z = h / ||h|| (module docstring).

    Shapes: x (N, d) -> f (N, C). Parameters ``W_Q``, ``W_K`` (d, d_h), ``W_V`` (d, d_v) and the head's
    ``head.W`` (m, d_v); buffers: the head's signs ``head.a`` (m, C) and the attention's
    ``feature_map.C`` (d, d) = X_keys^T X_keys. ``input_map``: an optional
    :class:`linattn.models.InputMap` applied to the pixels first. ``kind`` = "qkv" (the label of
    malleability rows). Build it with :func:`qkv_net`.
    """

    def __init__(self, attention: LinearizedAttention, W_Q, W_K, W_V, head: TwoLayerNet, *,
                 input_map: InputMap | None = None, seed: int = 0, attention_seed: int = 0) -> None:
        super().__init__()
        if not isinstance(attention, LinearizedAttention):
            raise TypeError(f"attention must be a LinearizedAttention (the fixed C of the keys), got {type(attention).__name__}")
        if not isinstance(head, TwoLayerNet) or head.feature_map is not None or head.input_map is not None:
            raise TypeError("head must be a plain linattn.models.TwoLayerNet (no feature or input map)")
        dtype = head.W.dtype
        self.W_Q = torch.nn.Parameter(torch.as_tensor(W_Q).to(dtype).clone())
        self.W_K = torch.nn.Parameter(torch.as_tensor(W_K).to(dtype).clone())
        self.W_V = torch.nn.Parameter(torch.as_tensor(W_V).to(dtype).clone())
        d = attention.d
        if self.W_Q.shape[0] != d or self.W_K.shape != self.W_Q.shape or self.W_V.shape[0] != d:
            raise ValueError(f"W_Q {tuple(self.W_Q.shape)}, W_K {tuple(self.W_K.shape)} and W_V {tuple(self.W_V.shape)} "
                             f"must be (d, d_h), (d, d_h) and (d, d_v) with d = {d}, the keys' dimension")
        if head.d != self.W_V.shape[1]:
            raise ValueError(f"the head expects {head.d} features, W_V gives d_v = {self.W_V.shape[1]}")
        self.feature_map = attention
        self.input_map = input_map
        self.head = head
        self.kind = "qkv"
        self.seed = seed
        self.attention_seed = attention_seed

    @property
    def d(self) -> int:
        return int(self.W_Q.shape[0])

    @property
    def d_head(self) -> int:
        return int(self.W_Q.shape[1])

    @property
    def d_value(self) -> int:
        return int(self.W_V.shape[1])

    @property
    def width(self) -> int:
        return self.head.width

    @property
    def n_outputs(self) -> int:
        return self.head.n_outputs

    @property
    def dtype(self) -> torch.dtype:
        return self.head.W.dtype

    def attention(self, x) -> torch.Tensor:
        """h = x~ W_Q W_K^T C W_V / sqrt(d_h) (N, d_v), x~ = input_map(x), in the model's dtype (differentiable)."""
        x = as_tensor(x, "x", ndim=2, dtype=self.dtype)
        if x.shape[1] != self.d:
            raise ValueError(f"x has {x.shape[1]} features, the model expects d = {self.d}")
        if self.input_map is not None:
            x = self.input_map(x)
        N, d, dh, dv = x.shape[0], self.d, self.d_head, self.d_value
        if N * d * (d + dh + dv) <= dh * d * (d + dv):  # rows first: x W_Q, W_K^T, C, W_V
            h = self.feature_map((x @ self.W_Q) @ self.W_K.T) @ self.W_V
        else:  # B = W_K^T C W_V (d_h, d_v) first: cheaper for batches larger than about d_h
            h = (x @ self.W_Q) @ (self.feature_map(self.W_K.T) @ self.W_V)
        h = h / math.sqrt(dh)
        return check_finite_result(h, "the QKV attention x W_Q W_K^T C W_V of the input",
                                   "scale the input or the keys down, or build the model with dtype=torch.float64")

    def forward(self, x) -> torch.Tensor:
        h = self.attention(x)
        if bool((h == 0).all(dim=1).any()):
            raise ValueError("the QKV attention of some nonzero rows of x is zero, so it cannot be unit-normalised: "
                             "x is orthogonal to the attention (keys or W_Q); use other keys or float64")
        return self.head.forward_features(unit_rows(h))


def qkv_net(X_keys, width: int, n_outputs: int = 1, *, d_head: int | None = None, d_value: int | None = None,
            seed: int = 0, attention_seed: int | None = None, dtype: torch.dtype = torch.float32,
            input_map: InputMap | None = None) -> QKVNet:
    """MLP-Attn with trainable W_Q, W_K, W_V at standard initialisation (see :class:`QKVNet`).

    ``X_keys`` (n, d): the training set the attention runs over, in the space it sees (as for
    :func:`linattn.models.mlp_attn`: ``attention_keys(X_train, input_map=input_map)``). ``d_head`` and
    ``d_value`` (default d; at least 1): the head dimension of W_Q, W_K and the value dimension of
    W_V. The head W (width, d_v) is drawn from ``seed`` (the draws of ``mlp_attn`` when d_v = d);
    W_Q, W_K, W_V from ``attention_seed`` (default ``seed``; the draws of
    :func:`linattn.attention.qkv_attention_gram`).
    """
    att = LinearizedAttention(X_keys)
    seed = check_seed(seed)
    aseed = seed if attention_seed is None else check_seed(attention_seed, "attention_seed")
    WQ, WK, WV = qkv_weights(att.d, aseed, d_head=d_head, d_value=d_value)
    head = TwoLayerNet(WV.shape[1], width, n_outputs, kind="qkv", seed=seed, dtype=dtype)
    return QKVNet(att, WQ, WK, WV, head, input_map=input_map, seed=seed, attention_seed=aseed)


# --------------------------------------------------------------------------- the pieces of the NTK


class _Pieces(NamedTuple):
    x: torch.Tensor  # x~ = input_map(x)          (N, d)
    q: torch.Tensor  # x~ W_Q                      (N, d_h)
    p: torch.Tensor  # x~ W_Q W_K^T C / sqrt(d_h)  (N, d)
    h: torch.Tensor  # p W_V                       (N, d_v)
    z: torch.Tensor  # h / ||h||                   (N, d_v)


def _check_model(model) -> QKVNet:
    if not isinstance(model, QKVNet):
        raise TypeError(f"model must be a linattn.qkv.QKVNet (build it with qkv_net), got {type(model).__name__}")
    return model


def _pieces(model: QKVNet, X) -> _Pieces:
    x = as_tensor(X, "X", ndim=2, min_rows=1)
    if x.shape[1] != model.d:
        raise ValueError(f"X has {x.shape[1]} features, the model expects d = {model.d}")
    if model.input_map is not None:
        x = model.input_map(x)
    WQ, WK, WV = (w.detach().to(torch.float64) for w in (model.W_Q, model.W_K, model.W_V))
    C = model.feature_map.C.to(torch.float64)
    q = x @ WQ
    p = (q @ WK.T) @ C / math.sqrt(model.d_head)
    h = p @ WV
    check_finite_result(h, "the QKV attention of X", "scale X or the keys down")
    return _Pieces(x, q, p, h, unit_rows(h))


def qkv_features(model: QKVNet, X) -> torch.Tensor:
    """z = h / ||h|| (N, d_v), float64: the unit-normalised QKV attention features of X (N, d), the
    input of the model's hidden layer (computed from the model's current W_Q, W_K, W_V)."""
    return _pieces(_check_model(model), X).z


def _gradients_in_h(model: QKVNet, P: _Pieces) -> torch.Tensor:
    """v[i, c] = (I - z_i z_i^T) g_c(x_i) / ||h_i|| (N, C, d_v), g_c = W^T (s * a_c) / sqrt(m)."""
    W = model.head.W.detach().to(torch.float64)
    a = model.head.a.detach().to(torch.float64)
    S = (P.z @ W.T > 0).to(torch.float64)  # (N, m)
    g = torch.einsum("nr,rc,rd->ncd", S, a, W) / math.sqrt(W.shape[0])
    g = g - P.z[:, None, :] * (g * P.z[:, None, :]).sum(-1, keepdim=True)
    return g / P.h.norm(dim=1)[:, None, None]


class QKVKernel(NamedTuple):
    """The empirical NTK of a :class:`QKVNet` split by parameter: W (the head), Q, K, V (the attention).

    Each part (N, N2) or (N, C, N2, C) float64; ``total`` is their sum, ``attention`` the Q + K + V part.
    """

    W: torch.Tensor
    Q: torch.Tensor
    K: torch.Tensor
    V: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.W + self.Q + self.K + self.V

    @property
    def attention(self) -> torch.Tensor:
        return self.Q + self.K + self.V


def _block_products(v: torch.Tensor, v2: torch.Tensor, full: bool) -> torch.Tensor:
    """<v[i, c], v2[j, c']> as (N, C, N2, C) (full) or the mean over c of <v[i, c], v2[j, c]> (N, N2)."""
    N, C, k = v.shape
    N2 = v2.shape[0]
    if full:
        return (v.reshape(N * C, k) @ v2.reshape(N2 * C, k).T).reshape(N, C, N2, C)
    return torch.einsum("ick,jck->ij", v, v2) / C


def qkv_ntk_parts(model: QKVNet, X, X2=None, *, full: bool = False) -> QKVKernel:
    """The empirical NTK of a :class:`QKVNet` by its closed form (module docstring), split by parameter, float64.

    ``X`` (N, d), ``X2`` (N2, d, default X) raw inputs. ``full=False``: one (N, N2) kernel a part, the
    mean over outputs c of the diagonal blocks Theta[:, c, :, c]; ``full=True``: the (N, C, N2, C)
    tensors with the cross-output blocks. The W part is :func:`linattn.ntk.empirical_ntk` of the
    head on the features z. Memory O((N + N2) C (d + m)) besides the kernels.
    """
    from .ntk import empirical_ntk

    model = _check_model(model)
    A = _pieces(model, X)
    B = A if X2 is None else _pieces(model, X2)
    vA = _gradients_in_h(model, A)
    vB = vA if X2 is None else _gradients_in_h(model, B)
    WK, WV = (w.detach().to(torch.float64) for w in (model.W_K, model.W_V))
    C = model.feature_map.C.to(torch.float64)
    E = C @ WV  # (d, d_v)
    Bm = WK.T @ E  # (d_h, d_v)
    dh = model.d_head

    def scaled(inner: torch.Tensor, outer: torch.Tensor) -> torch.Tensor:
        return inner[:, None, :, None] * outer if full else inner * outer

    KW = empirical_ntk(model.head, A.z, None if X2 is None else B.z, full=full)
    KQ = scaled(A.x @ B.x.T / dh, _block_products(vA @ Bm.T, vB @ Bm.T, full))
    KK = scaled(A.q @ B.q.T / dh, _block_products(vA @ E.T, vB @ E.T, full))
    KV = scaled(A.p @ B.p.T, _block_products(vA, vB, full))
    if X2 is None and not full:
        KQ, KK, KV = ((K + K.T) / 2 for K in (KQ, KK, KV))
    return QKVKernel(KW, KQ, KK, KV)


def qkv_ntk(model: QKVNet, X, X2=None, *, full: bool = False) -> torch.Tensor:
    """The empirical NTK of a :class:`QKVNet` over all its parameters (W, W_Q, W_K, W_V), float64.

    (N, N2) (``full=False``: the mean of the diagonal output blocks, the kernel the malleability
    protocol uses, ``kernel_fn=qkv_ntk``) or (N, C, N2, C) (``full=True``, equal to
    :func:`linattn.ntk.empirical_ntk_autodiff`). See :func:`qkv_ntk_parts`.
    """
    return qkv_ntk_parts(model, X, X2, full=full).total


# --------------------------------------------------------------------------- the limit m -> infinity


def gate_moment(u, v) -> torch.Tensor:
    """Sigma(u, v) = E_w[1[w.u > 0] 1[w.v > 0] w w^T] (k, k), float64, for unit u, v (k,) and w ~ N(0, I_k).

    Sigma = k0 I + (u v^T + v u^T - cos(theta) (u u^T + v v^T)) / (2 pi sin(theta)), k0 = (pi - theta) / (2 pi),
    theta the angle between u and v (:func:`linattn.kernels.unit_angle`); Sigma(u, u) = I / 2.
    """
    A = as_tensor(u, "u", ndim=1, min_rows=1)[None]
    B = as_tensor(v, "v", ndim=1, min_rows=1)[None]
    th = float(unit_angle(A, B)[0, 0])
    k = A.shape[1]
    S = (math.pi - th) / (2 * math.pi) * torch.eye(k, dtype=torch.float64)
    if math.sin(th) > 0:
        u_, v_ = A[0], B[0]
        S = S + (torch.outer(u_, v_) + torch.outer(v_, u_)
                 - math.cos(th) * (torch.outer(u_, u_) + torch.outer(v_, v_))) / (2 * math.pi * math.sin(th))
    return S


def _mean_quadratic(R: torch.Tensor, zA: torch.Tensor, zB: torch.Tensor, th: torch.Tensor,
                    hA: torch.Tensor, hB: torch.Tensor) -> torch.Tensor:
    """E[v_i^T R v'_j] (N, N2) for v = (I - z z^T) g / ||h||, E[g g'^T] = Sigma(z, z')  (R symmetric)."""
    c, s = torch.cos(th), torch.sin(th)
    k0 = (math.pi - th) / (2 * math.pi)
    ra = ((zA @ R) * zA).sum(1)[:, None]  # u.Ru
    rb = ((zB @ R) * zB).sum(1)[None, :]  # v.Rv
    ruv = zA @ R @ zB.T  # u.Rv
    tr_ppr = torch.trace(R) - ra - rb + c * ruv
    cross = ruv - c * rb - c * ra + c * c * ruv  # (v - c u).R(u - c v)
    safe = torch.where(s > 1e-12, s, torch.ones_like(s))
    cross = torch.where(s > 1e-12, cross / (2 * math.pi * safe), torch.zeros_like(cross))
    return (k0 * tr_ppr + cross) / (hA.norm(dim=1)[:, None] * hB.norm(dim=1)[None, :])


def qkv_ntk_limit_parts(model: QKVNet, X, X2=None) -> QKVKernel:
    """The m -> infinity limit of :func:`qkv_ntk_parts` in mean, for the model's W_Q, W_K, W_V (N, N2 each).

    W part: Theta_inf = ntk_relu(z, z') (the limit itself). Q, K, V parts: their expectation over the
    head (w_r ~ N(0, I), random signs a), which is their limit in mean; the parts themselves stay
    random as m grows (module docstring). Every output block has the same expectation.
    """
    model = _check_model(model)
    A = _pieces(model, X)
    B = A if X2 is None else _pieces(model, X2)
    th = unit_angle(A.z, B.z)
    WK, WV = (w.detach().to(torch.float64) for w in (model.W_K, model.W_V))
    C = model.feature_map.C.to(torch.float64)
    E = C @ WV
    Bm = WK.T @ E
    dh = model.d_head
    eye = torch.eye(model.d_value, dtype=torch.float64)
    mq = lambda R: _mean_quadratic(R, A.z, B.z, th, A.h, B.h)
    KW = ntk_relu(A.z, B.z)
    KQ = (A.x @ B.x.T / dh) * mq(Bm.T @ Bm)
    KK = (A.q @ B.q.T / dh) * mq(E.T @ E)
    KV = (A.p @ B.p.T) * mq(eye)
    if X2 is None:
        KW, KQ, KK, KV = ((K + K.T) / 2 for K in (KW, KQ, KK, KV))
    return QKVKernel(KW, KQ, KK, KV)


def qkv_ntk_limit(model: QKVNet, X, X2=None) -> torch.Tensor:
    """The mean of the m -> infinity limit of :func:`qkv_ntk` (N, N2), float64 (:func:`qkv_ntk_limit_parts`)."""
    return qkv_ntk_limit_parts(model, X, X2).total


def qkv_ntk_errors_vs_width(
    make_model: Callable[[int, int], QKVNet],
    X,
    widths,
    seeds,
    measures: Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]],
    *,
    part: str = "total",
) -> dict[str, torch.Tensor]:
    """Distances of the empirical NTK of a QKV model to its limit, each (len(widths), len(seeds)), float64.

    ``make_model(width, seed)`` returns a :class:`QKVNet` (keep its ``attention_seed`` fixed, so that the
    limit is the same for every seed: the seeds then draw only the head). ``part``: ``"total"``
    (:func:`qkv_ntk` against :func:`qkv_ntk_limit`, the mean of its random limit), ``"W"`` (the head's
    part against Theta_inf, the part that does converge) or ``"attention"`` (the Q + K + V part against its
    mean). ``measures`` as for :func:`linattn.ntk.ntk_errors_vs_width` (e.g. :func:`linattn.ntk.error_measures`).
    """
    check_option(part, "part", ("total", "W", "attention"))
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable (width, seed) -> QKVNet, got {type(make_model).__name__}")
    ws = [check_int(w, "width") for w in widths]
    ss = [check_seed(s) for s in seeds]
    if not ws or not ss:
        raise ValueError("give at least one width and one seed")
    pick = {"total": lambda k: k.total, "W": lambda k: k.W, "attention": lambda k: k.attention}[part]
    out = {k: torch.empty(len(ws), len(ss), dtype=torch.float64) for k in measures}
    limits: dict[int, torch.Tensor] = {}
    for i, w in enumerate(ws):
        for j, s in enumerate(ss):
            model = _check_model(make_model(w, s))
            key = model.attention_seed
            if key not in limits:
                limits[key] = pick(qkv_ntk_limit_parts(model, X))
            T = pick(qkv_ntk_parts(model, X))
            for name, f in measures.items():
                out[name][i, j] = float(f(T, limits[key]))
    return out


# --------------------------------------------------------------------------- the induced Gram


class QKVSpectrum(NamedTuple):
    """The spectrum of the QKV-induced Gram F F^T of one draw (see :func:`qkv_gram_spectrum`)."""

    n: int
    d: int
    d_head: int
    d_value: int
    seed: int
    r: int  # min(n, d, d_h, d_v): the rank of F F^T at most
    kappa_d_G: float  # lambda_1 / lambda_min(n, d) of G
    kappa_r_G: float  # lambda_1 / lambda_r of G
    kappa_F: float  # lambda_1 / lambda_r of F F^T
    kappa_M: float | None  # kappa(V^T M V) (r0 x r0), None when d_h < r0
    kappa_N: float | None  # kappa(V^T N V), None when d_v < r0
    kappa_F_unit: float  # lambda_1 / lambda_r of the Gram of the unit rows of F

    @property
    def bound(self) -> float | None:
        """kappa_d(G)^3 kappa(M~)^2 kappa(N~), the upper bound on kappa_F (when d_h, d_v >= min(n, d))."""
        if self.kappa_M is None or self.kappa_N is None:
            return None
        return self.kappa_d_G**3 * self.kappa_M**2 * self.kappa_N


def qkv_gram_spectrum(X, seed: int, *, d_head: int | None = None, d_value: int | None = None) -> QKVSpectrum:
    """Condition numbers of the induced Gram F F^T of one draw of W_Q, W_K, W_V (``seed``), float64.

    ``X`` (n, d) of rank min(n, d) (e.g. unit-normalised images, n <= 700 for MNIST). F is
    :func:`linattn.attention.qkv_attention_gram`'s features (the temperature does not change a
    condition number); kappa_F = lambda_1 / lambda_r of F F^T over its r = min(n, d, d_h, d_v) possibly
    nonzero eigenvalues (:func:`linattn.spectra.kappa_top`, from the singular values of F), against
    kappa_d(G) and lambda_1 / lambda_r of G. kappa_M, kappa_N: the condition numbers of the compressions
    M~ = V^T M V, N~ = V^T N V onto the row space of X (X = U S V^T, r0 = min(n, d) columns of V), which
    give kappa_F <= kappa_d(G)^3 kappa_M^2 kappa_N when d_h, d_v >= r0. A numerically singular
    F F^T or G is a :class:`linattn.spectra.RankDeficientError`.
    """
    from .attention import qkv_attention_gram
    from .spectra import kappa_d, kappa_top

    A = as_tensor(X, "X", ndim=2, min_rows=2)
    n, d = A.shape
    dh = _check_dim(d_head, "d_head", "the head dimension of W_Q and W_K", d)
    dv = _check_dim(d_value, "d_value", "the value dimension of W_V", d)
    qa = qkv_attention_gram(A, seed, d_head=dh, d_value=dv)
    r0 = min(n, d)
    r = min(r0, dh, dv)
    _, _, Vh = torch.linalg.svd(A, full_matrices=False)
    V = Vh[:r0].T  # (d, r0)
    kM = kN = None
    if dh >= r0:
        sM = torch.linalg.svdvals((V.T @ qa.W_Q) @ (qa.W_K.T @ V))
        kM = float(sM[0] / sM[-1])
    if dv >= r0:
        sN = torch.linalg.svdvals(V.T @ qa.W_V)
        kN = float((sN[0] / sN[-1]) ** 2)
    return QKVSpectrum(n, d, dh, dv, check_seed(seed), r, kappa_d(A), kappa_top(A, r), kappa_top(qa.features, r),
                       kM, kN, kappa_top(unit_rows(qa.features), r))


def qkv_expected_gram(X, *, d_value: int | None = None) -> torch.Tensor:
    """E[F F^T] over W_Q, W_K, W_V with i.i.d. N(0, 1/d) entries: (d_v tr(G^2) / d^3) G (n, n), float64.

    F = (X W_Q)(X W_K)^T (X W_V) / sqrt(d_h) (as :class:`QKVNet`; the d_h of E[M A M^T] = tr(A) I / d^2
    cancels against the temperature). Derivation: E[N] = (d_v / d) I, E[M A M^T] = tr(A) / d^2 I, so
    E[F F^T] = X E[M C E[N] C M^T] X^T = (d_v / d) tr(C^2) / d^2 X X^T, tr(C^2) = tr(G^2).
    """
    A = as_tensor(X, "X", ndim=2, min_rows=1)
    n, d = A.shape
    dv = _check_dim(d_value, "d_value", "the value dimension of W_V", d)
    G = A @ A.T
    return check_finite_result(dv * float((G * G).sum()) / d**3 * G, "E[F F^T] of X", "scale X down")


# --------------------------------------------------------------------------- sympy


def qkv_gram_forms(n: int = 2, d: int = 2, d_head: int = 1, d_value: int = 1) -> dict:
    """The induced Gram for explicit symbols (sympy): X (n, d), W_Q, W_K (d, d_h), W_V (d, d_v).

    Returns ``X``, ``W_Q``, ``W_K``, ``W_V``, ``M`` = W_Q W_K^T / sqrt(d_h), ``N`` = W_V W_V^T, ``FFt`` =
    F F^T with F = (X W_Q)(X W_K)^T (X W_V) / sqrt(d_h), ``chain`` = (X M X^T)(X N X^T)(X M^T X^T) and
    ``holds`` (their difference expands to zero). Exact but slow beyond n = d = 2.
    """
    import sympy as sp

    from .symbolic import is_zero_matrix, symbolic_data

    n, d = check_int(n, "n"), check_int(d, "d")
    dh = _check_dim(d_head, "d_head", "the head dimension of W_Q and W_K", d)
    dv = _check_dim(d_value, "d_value", "the value dimension of W_V", d)
    X = symbolic_data(n, d)
    WQ, WK, WV = symbolic_data(d, dh, "q"), symbolic_data(d, dh, "k"), symbolic_data(d, dv, "v")
    t = sp.sqrt(dh)
    F = (X * WQ) * (X * WK).T * (X * WV) / t
    M, N = WQ * WK.T / t, WV * WV.T
    FFt = F * F.T
    chain = (X * M * X.T) * (X * N * X.T) * (X * M.T * X.T)
    return {"X": X, "W_Q": WQ, "W_K": WK, "W_V": WV, "M": M, "N": N, "FFt": FFt, "chain": chain,
            "holds": is_zero_matrix(FFt - chain)}


def _gaussian_expectation(expr, symbols, var):
    """E[expr] for a polynomial ``expr`` in independent N(0, var) ``symbols`` (Isserlis: E[w^k] = var^(k/2) (k-1)!!)."""
    import sympy as sp

    poly = sp.Poly(sp.expand(expr), *symbols)
    total = sp.Integer(0)
    for monom, coeff in poly.terms():
        if any(k % 2 for k in monom):
            continue
        term = coeff
        for k in monom:
            term *= var ** (k // 2) * sp.factorial2(k - 1) if k else 1
        total += term
    return sp.expand(total)


def qkv_expected_gram_symbolic(n: int = 2, d: int = 2, d_head: int = 1, d_value: int = 1) -> dict:
    """E[F F^T] over Gaussian W_Q, W_K, W_V (N(0, 1/d) entries) for explicit symbols X (n, d), by sympy.

    Returns ``X``, ``expected`` (n x n, the exact expectation of every entry), ``formula`` =
    (d_v tr(G^2) / d^3) G and ``holds`` (they agree identically in X): the mean induced Gram is a
    multiple of G, not G^3. Exact but slow beyond n = d = 2.
    """
    import sympy as sp

    f = qkv_gram_forms(n, d, d_head, d_value)
    X = f["X"]
    ws = [s for W in (f["W_Q"], f["W_K"], f["W_V"]) for s in W]
    var = sp.Rational(1, d)
    expected = f["FFt"].applyfunc(lambda e: _gaussian_expectation(e, ws, var))
    G = X * X.T
    dv = f["W_V"].shape[1]
    formula = (sp.Integer(dv) * (G * G).trace() / sp.Integer(d) ** 3) * G
    from .symbolic import is_zero_matrix

    return {"X": X, "expected": expected, "formula": formula, "holds": is_zero_matrix(expected - formula)}


def gate_moment_derivation() -> dict:
    """Sigma(u, v) = E[1[w.u > 0] 1[w.v > 0] w w^T] in the plane of u, v, by sympy (polar coordinates).

    With u = e_1, v = (cos theta, sin theta) and w = r (cos phi, sin phi), r^2 ~ chi^2_2 (mean 2)
    independent of phi uniform on [0, 2 pi), both gates are open for phi in (theta - pi/2, pi/2). Returns
    ``in_plane`` (2 x 2, the integral), ``formula`` (k0 I + (u v^T + v u^T - cos theta (u u^T + v v^T)) /
    (2 pi sin theta) in these coordinates) and ``holds`` (they agree), for 0 < theta < pi. Directions
    orthogonal to the plane contribute k0 I (independent of the gates).
    """
    import sympy as sp

    th = sp.Symbol("theta", positive=True)
    phi = sp.Symbol("phi", real=True)
    e = sp.Matrix([sp.cos(phi), sp.sin(phi)])
    in_plane = (2 / (2 * sp.pi)) * (e * e.T).applyfunc(lambda f: sp.integrate(f, (phi, th - sp.pi / 2, sp.pi / 2)))
    u = sp.Matrix([1, 0])
    v = sp.Matrix([sp.cos(th), sp.sin(th)])
    k0 = (sp.pi - th) / (2 * sp.pi)
    formula = k0 * sp.eye(2) + (u * v.T + v * u.T - sp.cos(th) * (u * u.T + v * v.T)) / (2 * sp.pi * sp.sin(th))
    holds = all(sp.simplify(sp.trigsimp(x)) == 0 for x in (in_plane - formula))
    return {"theta": th, "in_plane": in_plane.applyfunc(sp.simplify), "formula": formula.applyfunc(sp.simplify),
            "holds": holds}
