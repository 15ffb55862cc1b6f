"""Input validation shared by every public function of :mod:`linattn`.

Each helper either returns a clean value or raises an error in one style: the argument's
name, the value it got, and the fix (the scikit-learn convention), e.g.
``intervention must be 'transformed', 'adversarial' or 'curated', got 'poisoned'``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "check_int",
    "check_range",
    "check_square_symmetric",
    "check_option",
    "check_consistent_length",
]


def as_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: torch.dtype | None = torch.float64,
    finite: bool = True,
    min_rows: int | None = None,
) -> torch.Tensor:
    """Convert ``x`` (array-like or tensor) to a tensor and validate it.

    Parameters
    ----------
    x : array-like or torch.Tensor
    name : the argument's name, used in error messages.
    ndim : required number of dimensions (an int or a tuple of allowed ints).
    dtype : the floating dtype to cast to; ``None`` keeps the input's dtype.
    finite : refuse NaN and inf.
    min_rows : the least allowed size of the first dimension.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - numpy's own message is clear
            raise TypeError(f"{name} must be an array or a tensor, got {type(x).__name__}") from exc
        if arr.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an object array")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    if t.dtype == torch.bool:
        raise TypeError(f"{name} must be numeric, got a boolean tensor")
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(t.shape)}")
    if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf entries; clean the input first")
    if min_rows is not None and (t.ndim == 0 or t.shape[0] < min_rows):
        rows = 0 if t.ndim == 0 else t.shape[0]
        raise ValueError(f"{name} needs at least {min_rows} rows, got {rows}")
    return t


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, refusing non-integers and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_range(
    value: Any,
    name: str,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a float, refusing values outside [lo, hi] (ends open as asked)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {value!r}") from exc
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    below = v <= lo if lo_open else v < lo
    above = v >= hi if hi_open else v > hi
    if below or above:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {v}")
    return v


def check_square_symmetric(K: torch.Tensor, name: str, *, rtol: float = 1e-8) -> torch.Tensor:
    """Refuse a matrix that is not square, or not symmetric to relative tolerance ``rtol``."""
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(K.shape)}")
    scale = float(K.abs().max()) if K.numel() else 0.0
    asym = float((K - K.T).abs().max()) if K.numel() else 0.0
    if asym > rtol * max(scale, 1e-300):
        raise ValueError(
            f"{name} must be symmetric: max |K - K^T| = {asym:.3g} against max |K| = {scale:.3g}"
        )
    return K


def _alternatives(options: Sequence[Any]) -> str:
    """'a', 'b' or 'c' (the repr of each option)."""
    names = [repr(o) for o in options]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_option(value: Any, name: str, options: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``options``; otherwise an error listing them.

    The message: ``{name} must be 'a', 'b' or 'c', got {value!r}``.
    """
    if not options:
        raise ValueError(f"check_option needs at least one option for {name}")
    try:
        ok = value in options
    except TypeError:  # an unhashable value tested against a set
        ok = False
    if not ok:
        raise ValueError(f"{name} must be {_alternatives(list(options))}, got {value!r}")
    return value


def check_consistent_length(*arrays: Any, names: Sequence[str], what: str = "rows") -> int:
    """Return n, the common size of the first dimension of ``arrays`` (tensors or arrays).

    ``names`` names each array; a mismatch is reported against the first one:
    ``{names[i]} has m {what} for the n rows of {names[0]}; pass one per row``.
    """
    if len(names) != len(arrays) or not arrays:
        raise TypeError(f"check_consistent_length needs one name an array, got {len(names)} for {len(arrays)}")
    n = int(arrays[0].shape[0])
    for a, name in zip(arrays[1:], names[1:]):
        m = int(a.shape[0])
        if m != n:
            raise ValueError(f"{name} has {m} {what} for the {n} rows of {names[0]}; pass one per row")
    return n
