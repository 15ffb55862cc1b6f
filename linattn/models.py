"""The two networks of the paper, in NTK parametrisation.

Both are f(x) = m^{-1/2} a^T relu(W x^) with a fixed sign head a in {-1,+1}^{m x C}
(one column a class) and only W = (w_r) in R^{m x d} trained; w_r ~ N(0, I_d) at
initialisation (the standard NTK initialisation; the paper does not state one).

- 2L-ReLU:  x^ = x / ||x||_2                  (unit-normalised raw input)
- MLP-Attn: x^ = C x / ||C x||_2, C = X^T X    (unit-normalised linearized attention)
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._validation import as_tensor, check_int
from .attention import LinearizedAttention

__all__ = ["unit_rows", "TwoLayerNet", "relu_net", "mlp_attn"]


def unit_rows(X: torch.Tensor) -> torch.Tensor:
    """x / ||x||_2 for every row of X (N, d); a zero row is an error."""
    norms = X.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        bad = int((norms == 0).sum())
        raise ValueError(f"{bad} input rows have zero norm and cannot be unit-normalised")
    return X / norms


class TwoLayerNet(torch.nn.Module):
    """f(x) = m^{-1/2} relu(x^ W^T) a, with x^ = unit_rows(feature_map(x)).

    Shapes: x (N, d) -> f (N, C). ``W`` (m, d) is the only parameter; ``a`` (m, C) is
    a buffer of fixed signs. ``kind`` is a label ("relu" or "attn") for tables.
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
    ) -> None:
        super().__init__()
        d = check_int(d, "d")
        width = check_int(width, "width")
        n_outputs = check_int(n_outputs, "n_outputs")
        gen = torch.Generator().manual_seed(int(seed))
        W = torch.randn(width, d, generator=gen, dtype=torch.float64)
        a = torch.randint(0, 2, (width, n_outputs), generator=gen).to(torch.float64) * 2 - 1
        self.W = torch.nn.Parameter(W.to(dtype))
        self.register_buffer("a", a.to(dtype))
        self.feature_map = feature_map
        self.kind = kind
        self.seed = int(seed)

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
        h = x if self.feature_map is None else self.feature_map(x)
        return unit_rows(h)

    def forward_features(self, xh: torch.Tensor) -> torch.Tensor:
        """The network applied to features x^ that are already computed: (N, d) -> (N, C)."""
        return torch.relu(xh @ self.W.T) @ self.a / math.sqrt(self.width)

    def forward(self, x) -> torch.Tensor:
        return self.forward_features(self.features(x))


def relu_net(d: int, width: int, n_outputs: int = 1, *, seed: int = 0, dtype=torch.float32) -> TwoLayerNet:
    """The 2L-ReLU baseline: the two-layer net on the unit-normalised raw input."""
    return TwoLayerNet(d, width, n_outputs, feature_map=None, kind="relu", seed=seed, dtype=dtype)


def mlp_attn(X_keys, width: int, n_outputs: int = 1, *, seed: int = 0, dtype=torch.float32) -> TwoLayerNet:
    """MLP-Attn: the two-layer net on unit-normalised linearized attention C x, C = X_keys^T X_keys.

    ``X_keys`` (n, d) is the training set the attention runs over (transductive).
    """
    att = LinearizedAttention(X_keys)
    return TwoLayerNet(att.d, width, n_outputs, feature_map=att, kind="attn", seed=seed, dtype=dtype)
