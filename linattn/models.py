"""The two networks of the paper, in NTK parametrisation.

Both are f(x) = m^{-1/2} a^T relu(W x^) with a fixed sign head a in {-1,+1}^{m x C}
(one column a class) and only W = (w_r) in R^{m x d} trained; w_r ~ N(0, I_d) at
initialisation (the standard NTK initialisation; the paper does not state one).

- 2L-ReLU:  x^ = x / ||x||_2                  (unit-normalised raw input)
- MLP-Attn: x^ = C x / ||C x||_2, C = X^T X    (unit-normalised linearized attention)

The keys X (n, d) of MLP-Attn are the training set it attends over: by default (the paper's
preprocessing) its unit-normalised rows, :func:`attention_keys`. :func:`with_attention_keys`
rebuilds the attention of a model from other keys (same W and head), and
:func:`check_attention_keys` checks that a model's C was built from a given training set.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from ._validation import ScaleError, as_tensor, check_bool, check_int, check_range, check_seed
from .attention import LinearizedAttention

__all__ = [
    "INPUT_MAPS",
    "InputMap",
    "unit_rows",
    "TwoLayerNet",
    "relu_net",
    "mlp_attn",
    "network",
    "attention_keys",
    "model_keys",
    "with_attention_keys",
    "check_attention_keys",
]


def unit_rows(X: torch.Tensor) -> torch.Tensor:
    """x / ||x||_2 for every row of X (N, d); a zero row is an error, and so are NaN or inf entries.

    A row whose norm overflows its dtype (float32 entries ~1e20) is first divided by its largest
    entry, so its direction is kept (never a silent zero row)."""
    if not isinstance(X, torch.Tensor):
        X = as_tensor(X, "X", dtype=None)
    if not X.is_floating_point():
        X = X.to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise ScaleError(f"{int((~torch.isfinite(X)).sum())} entries of the rows to unit-normalise are NaN or inf "
                         "(an overflow upstream: scale the inputs or attention keys down, or use float64)")
    norms = X.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        bad = int((norms == 0).sum())
        raise ValueError(f"X has {bad} rows of zero norm (zero input rows?), which cannot be unit-normalised; drop them")
    if not bool(torch.isfinite(norms).all()):  # ||x|| overflows the dtype: rescale those rows first
        X = X / X.abs().amax(dim=-1, keepdim=True)
        norms = X.norm(dim=-1, keepdim=True)
    return X / norms


INPUT_MAPS = ("none", "center", "standardize")

#: the most weights W (m x d) a TwoLayerNet may ask for (2^34, 128 GiB in float64): a mistyped width
#: is an error, not an out-of-memory crash (the book's largest is 16,384 x 3,072 = 5e7)
MAX_WEIGHTS = 2**34


class InputMap(torch.nn.Module):
    """A fixed affine map of the pixels, x -> (x - mu) / sigma (mu, sigma: (d,) buffers).

    The paper scales pixels to [0, 1] and unit-normalises the rows; it does not say whether it
    centres them. :meth:`fit` builds ``"center"`` (mu = the training set's mean image,
    sigma = 1) or ``"standardize"`` (per-pixel mean and standard deviation, sigma floored at
    ``floor`` so constant pixels stay finite). The map is part of the network: attacks still move
    raw pixels in [0, 1], and the statistics stay those of the original training set.
    """

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor, kind: str = "center") -> None:
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float64))
        self.register_buffer("sigma", torch.as_tensor(sigma, dtype=torch.float64))
        self.kind = kind

    @classmethod
    def fit(cls, X_train, kind: str, *, floor: float = 1e-2) -> "InputMap | None":
        """The map of ``kind`` ("none" gives None) from a training set X_train (n, d) of pixels."""
        from ._validation import check_option

        check_option(kind, "input_map", INPUT_MAPS)
        floor = check_range(floor, "floor", 0.0, float("inf"), lo_open=True)
        if kind == "none":
            return None
        X = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
        mu = X.mean(0)
        sigma = X.std(0).clamp_min(floor) if kind == "standardize" else torch.ones_like(mu)
        return cls(mu, sigma, kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu.to(x.dtype)) / self.sigma.to(x.dtype)


class TwoLayerNet(torch.nn.Module):
    """f(x) = m^{-1/2} relu(x^ W^T) a, with x^ = unit_rows(feature_map(input_map(x))).

    Shapes: x (N, d) -> f (N, C). ``W`` (m, d) is the only parameter, initialised
    w_r ~ N(0, init_scale^2 I) (1: the NTK initialisation; a small scale, e.g. 0.01, is the
    "standard parametrisation with small initialisation" alternative: the kernel at
    initialisation is the same, since only the signs of w_r . x^ enter it, but Adam steps and
    the L2 penalty move small weights much further relative to their size). ``a`` (m, C) is a
    buffer of fixed signs. ``input_map``: an optional :class:`InputMap` (centring or
    standardising the pixels first). ``kind`` is a label ("relu" or "attn") for tables.
    """

    def __init__(
        self,
        d: int,
        width: int,
        n_outputs: int = 1,
        *,
        feature_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
        kind: str = "relu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        init_scale: float = 1.0,
        input_map: InputMap | None = None,
    ) -> None:
        super().__init__()
        d = check_int(d, "d")
        width = check_int(width, "width")
        n_outputs = check_int(n_outputs, "n_outputs")
        init_scale = check_range(init_scale, "init_scale", 0.0, float("inf"), lo_open=True)
        if width * d > MAX_WEIGHTS:
            raise ValueError(f"width = {width} with d = {d} asks for {width * d:.3g} weights, more than {MAX_WEIGHTS:.3g} "
                             f"({8 * MAX_WEIGHTS / 2**30:.0f} GiB in float64); choose a smaller width")
        seed = check_seed(seed)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch dtype (torch.float32 or torch.float64), got {dtype!r}")
        if feature_map is not None and not callable(feature_map):
            raise TypeError(f"feature_map must be a callable (N, d) -> (N, d') or None, got {type(feature_map).__name__}")
        if input_map is not None and not callable(input_map):
            raise TypeError(f"input_map must be an InputMap (InputMap.fit) or None, got {type(input_map).__name__}")
        gen = torch.Generator().manual_seed(seed)
        W = torch.randn(width, d, generator=gen, dtype=torch.float64)
        if init_scale != 1.0:
            W = W * init_scale
        a = torch.randint(0, 2, (width, n_outputs), generator=gen).to(torch.float64) * 2 - 1
        self.W = torch.nn.Parameter(W.to(dtype))
        self.register_buffer("a", a.to(dtype))
        self.feature_map = feature_map
        self.input_map = input_map
        self.kind = kind
        self.seed = seed

    @property
    def width(self) -> int:
        return int(self.W.shape[0])

    @property
    def d(self) -> int:
        return int(self.W.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.a.shape[1])

    def features(self, x) -> torch.Tensor:
        """x^ (N, d): the unit-normalised input of the hidden layer."""
        x = as_tensor(x, "x", ndim=2, dtype=self.W.dtype)
        if x.shape[1] != self.d:
            raise ValueError(f"x has {x.shape[1]} features, the model expects d = {self.d}")
        if self.input_map is not None:
            x = self.input_map(x)
        h = x if self.feature_map is None else self.feature_map(x)
        if not bool(torch.isfinite(h).all()):
            raise ScaleError(
                f"the model's features of x overflow {h.dtype} (inf or NaN; max |x| = {float(x.abs().max()):.3g}); "
                "scale x (and the attention keys) down, or build the model with dtype=torch.float64"
            )
        lost = (x != 0).any(dim=1) & ~(h != 0).any(dim=1)
        if h is not x and bool(lost.any()):
            raise ValueError(
                f"the model's features of {int(lost.sum())} nonzero rows of x are zero, so they cannot be "
                "unit-normalised: x is orthogonal to the attention keys, or C x is below the range of "
                f"{h.dtype} (tiny keys: scale the keys up or build the model with dtype=torch.float64)"
            )
        return unit_rows(h)

    def forward_features(self, xh: torch.Tensor) -> torch.Tensor:
        """The network applied to features x^ that are already computed: (N, d) -> (N, C)."""
        return torch.relu(xh @ self.W.T) @ self.a / math.sqrt(self.width)

    def forward(self, x) -> torch.Tensor:
        return self.forward_features(self.features(x))


def relu_net(d: int, width: int, n_outputs: int = 1, *, seed: int = 0, dtype=torch.float32,
             init_scale: float = 1.0, input_map: InputMap | None = None) -> TwoLayerNet:
    """The 2L-ReLU baseline: the two-layer net on the unit-normalised raw input."""
    return TwoLayerNet(d, width, n_outputs, feature_map=None, kind="relu", seed=seed, dtype=dtype,
                       init_scale=init_scale, input_map=input_map)


def mlp_attn(X_keys, width: int, n_outputs: int = 1, *, seed: int = 0, dtype=torch.float32,
             init_scale: float = 1.0, input_map: InputMap | None = None) -> TwoLayerNet:
    """MLP-Attn: the two-layer net on unit-normalised linearized attention C x, C = X_keys^T X_keys.

    ``X_keys`` (n, d) is the training set the attention runs over (transductive), already in the
    space the attention sees: with an ``input_map``, build them as
    ``attention_keys(X_train, input_map=input_map)``.
    """
    att = LinearizedAttention(X_keys)
    return TwoLayerNet(att.d, width, n_outputs, feature_map=att, kind="attn", seed=seed, dtype=dtype,
                       init_scale=init_scale, input_map=input_map)


def network(kind: str, X_train, width: int, n_outputs: int = 1, *, input_map: str = "none", seed: int = 0,
            dtype=torch.float32, init_scale: float = 1.0) -> TwoLayerNet:
    """One of the paper's two networks for a training set X_train (n, d) of pixels, untrained.

    ``kind``: ``"relu"`` (2L-ReLU, :func:`relu_net`) or ``"attn"`` (MLP-Attn, :func:`mlp_attn` over
    the keys ``attention_keys(X_train, input_map=...)``). ``input_map`` ("none" [v1], "center",
    "standardize") is fitted on X_train (:meth:`InputMap.fit`) and becomes part of the network, so
    the network still takes raw pixels. Width m, ``n_outputs`` C, ``seed``, ``dtype`` and
    ``init_scale``: see :class:`TwoLayerNet`.
    """
    from ._validation import check_option

    check_option(kind, "kind", ("relu", "attn"))
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    im = InputMap.fit(X_train, input_map)
    if kind == "relu":
        return relu_net(X_train.shape[1], width, n_outputs, seed=seed, dtype=dtype, init_scale=init_scale,
                        input_map=im)
    return mlp_attn(attention_keys(X_train, input_map=im), width, n_outputs, seed=seed, dtype=dtype,
                    init_scale=init_scale, input_map=im)


def attention_keys(X, *, unit_keys: bool = True, input_map: InputMap | None = None) -> torch.Tensor:
    """The keys (n, d) an MLP-Attn model attends over, from a training set X (n, d) of pixels.

    The rows are first mapped by ``input_map`` (if any, e.g. centred), then, with
    ``unit_keys=True`` (the paper's preprocessing), unit-normalised, x_i / ||x_i||_2
    (:func:`unit_rows`; a zero row is an error); ``False``: kept as they are (float64).
    Build the model with ``mlp_attn(attention_keys(X_train), width, C)``.
    """
    X = as_tensor(X, "X", ndim=2, min_rows=1)
    unit_keys = check_bool(unit_keys, "unit_keys")
    if input_map is not None:
        X = input_map(X)
    return unit_rows(X) if unit_keys else X


def model_keys(model: torch.nn.Module, X, *, unit_keys: bool = True) -> torch.Tensor:
    """:func:`attention_keys` of X through the model's own input map (the keys it would attend over
    had it been built on X)."""
    return attention_keys(X, unit_keys=unit_keys, input_map=getattr(model, "input_map", None))


def with_attention_keys(model: torch.nn.Module, X_keys) -> torch.nn.Module:
    """A copy of an MLP-Attn model whose attention is rebuilt from ``X_keys`` (n', d): C = X_keys^T X_keys.

    W and the head a are copied unchanged, so only the feature map x -> C x / ||C x|| moves.
    A model without attention (``feature_map`` None, the 2L-ReLU) is returned unchanged.
    """
    if getattr(model, "feature_map", None) is None:
        return model
    if not isinstance(model.feature_map, LinearizedAttention):
        raise TypeError(
            "with_attention_keys needs a model whose feature_map is a LinearizedAttention, got "
            f"{type(model.feature_map).__name__}; build the model with mlp_attn"
        )
    new = copy.deepcopy(model)
    new.feature_map = LinearizedAttention(X_keys)
    return new


def check_attention_keys(model: torch.nn.Module, X_train, *, unit_keys: bool = True) -> None:
    """Refuse a model whose attention C (d, d) is not U^T U, U = attention_keys(X_train, unit_keys=...).

    X_train (n, d). Checks C V = U^T (U V) for a fixed random V (d, 4) (relative tolerance 1e-5),
    without forming U^T U. A model without attention (the 2L-ReLU) passes.
    """
    fm = getattr(model, "feature_map", None)
    if fm is None:
        return
    keys = model_keys(model, X_train, unit_keys=unit_keys)
    V = torch.randn(keys.shape[1], 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    CV = keys.T @ (keys @ V)  # C V without forming C
    if fm.C.shape != (keys.shape[1], keys.shape[1]) or not torch.allclose(
        fm.C.to(torch.float64) @ V, CV, rtol=1e-5, atol=1e-8 * float(CV.abs().max())
    ):
        raise ValueError(
            f"the model's attention C was not built from X_train with unit_keys={unit_keys}; build it with "
            f"mlp_attn(attention_keys(X_train, unit_keys={unit_keys}), ...), flip unit_keys, or keep C "
            "as it is (attention='fixed' in linattn.malleability)"
        )
