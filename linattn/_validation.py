"""Input validation shared by every public function of :mod:`linattn`.

Each helper either returns a clean value or raises an error in one style: the argument's
name, the value it got, and the fix (the scikit-learn convention), e.g.
``intervention must be 'transformed', 'adversarial' or 'curated', got 'poisoned'``.

Bad input is a :class:`TypeError` (the wrong kind of thing: a float seed, a string where a
tuple goes, an integer image where float pixels go) or a :class:`ValueError` (the right kind,
a wrong value: NaN, out of range, inconsistent lengths); both name the argument. An input whose
*scale* takes a result beyond the floating-point range (G^p of huge X, attention over huge
keys) raises :class:`ScaleError`, a ValueError that is also an OverflowError, naming the
argument to rescale -- never an inf or NaN result.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "ScaleError",
    "as_tensor",
    "check_bool",
    "check_seed",
    "check_clip",
    "check_pixels",
    "check_labels",
    "check_finite_result",
    "check_no_underflow",
    "power_of_two_scale",
    "symmetrize",
    "check_names",
    "check_int",
    "check_range",
    "check_square_symmetric",
    "check_option",
    "check_consistent_length",
]


class ScaleError(ValueError, OverflowError):
    """The input's scale takes a result beyond the floating-point range (or below its resolution).

    A ValueError (bad input: the message names the argument and says how to rescale it) that is
    also an OverflowError, so code catching either sees it.
    """


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def as_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array (a tensor detached and moved to the CPU); a string, or a ragged or
    unconvertible object, is a TypeError that names ``name``."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array or a tensor of numbers, got the string {x!r}")
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged nested lists, unconvertible objects
        raise TypeError(
            f"{name} must be an array or a tensor of numbers (a rectangular nested list at most), "
            f"got {type(x).__name__}: {exc}"
        ) from None


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
        arr = as_numpy(x, name)
        if arr.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an object array (ragged or None entries?)")
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    if t.dtype == torch.bool:
        raise TypeError(f"{name} must be numeric, got a boolean tensor")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(t.shape)}")
    if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf entries; clean the input first")
    if dtype is not None and t.dtype != dtype:
        src = t
        t = t.to(dtype)
        if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            big = float(src.detach().abs().max().to(torch.float64))
            raise ScaleError(
                f"{name} has entries up to {_fmt(big)}, beyond the range of {dtype} "
                f"(largest {_fmt(float(torch.finfo(dtype).max))}); scale {name} down or use float64"
            )
    if min_rows is not None and (t.ndim == 0 or t.shape[0] < min_rows):
        rows = 0 if t.ndim == 0 else t.shape[0]
        raise ValueError(f"{name} needs at least {min_rows} rows, got {rows}")
    return t


def check_int(value: Any, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int, refusing non-integers (a float is never truncated) and values
    outside [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        hint = f"; pass int({value!r}) if you mean it" if isinstance(value, (float, np.floating)) and float(value).is_integer() else ""
        raise TypeError(f"{name} must be an integer, got {value!r}{hint}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
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
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError) as exc:
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


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, refusing anything but True and False (a string is always truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


#: seeds are non-negative integers below 2^63 (torch.Generator and numpy both take them)
SEED_MAX = 2**63 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """Return ``seed`` as an int in [0, 2^63 - 1]; a float seed is refused, never truncated."""
    return check_int(seed, name, minimum=0, maximum=SEED_MAX)


def check_clip(clip: Any, name: str = "clip") -> tuple[float, float] | None:
    """``None`` or a pair (low, high) of numbers with low < high (either end may be infinite)."""
    if clip is None:
        return None
    if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
        raise TypeError(f"{name} must be a pair (low, high) or None, got {clip!r}")
    lo, hi = clip
    vals = []
    for v in (lo, hi):
        if isinstance(v, (str, bytes, bool, np.bool_)):
            raise TypeError(f"{name} must be a pair of numbers (low, high), got {clip!r}")
        try:
            vals.append(float(v))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a pair of numbers (low, high), got {clip!r}") from None
    lo, hi = vals
    if np.isnan(lo) or np.isnan(hi) or not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {clip!r}")
    return lo, hi


def check_pixels(x: torch.Tensor, name: str, clip: tuple[float, float] | None) -> torch.Tensor:
    """Refuse inputs an attack cannot perturb within both its eps ball and the clip box.

    ``x`` must hold floating-point values (an integer image, e.g. uint8 0-255, is a TypeError: scale
    it to the clip range first), and, when ``clip`` is given, lie inside it: an input outside the
    box would be moved into it by the projection, by more than eps (a silent wrong perturbation).
    """
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must hold floating-point pixels, got dtype {x.dtype}; scale integer images to "
            f"the clip range first (e.g. x / 255.0 for 0-255 pixels and clip=(0, 1))"
        )
    if clip is not None and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < clip[0] or hi > clip[1]:
            raise ValueError(
                f"{name} has values in [{_fmt(lo)}, {_fmt(hi)}], outside clip = ({clip[0]:g}, {clip[1]:g}): "
                "projecting it into the clip box would move it by more than eps. Pass inputs inside clip "
                "(pixels in [0, 1]: x / 255 for 0-255 images; put any standardisation inside the model), "
                "or give the clip box the inputs live in (clip=None for none)"
            )
    return x


def check_labels(
    y: Any,
    name: str = "y",
    *,
    n: int | None = None,
    n_classes: int | None = None,
    rows_of: str = "X",
) -> torch.Tensor:
    """Class indices as an int64 tensor (N,): integers >= 0 (below ``n_classes`` if given), one a row.

    Floats are accepted only when they hold integers (never truncated); booleans, NaN and
    non-integers are refused. ``n``: the required length (the rows of ``rows_of``).
    """
    t = as_tensor(y, name, ndim=1, dtype=None)
    if t.is_floating_point():
        if not bool((t == t.round()).all()):
            bad = t[t != t.round()][0].item()
            raise ValueError(
                f"{name} must hold class indices (integers), got {bad!r}; round or map the labels first "
                "(a non-integer label is never truncated)"
            )
    t = t.to(torch.int64)
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} labels for the {n} rows of {rows_of}; pass one per row")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0:
            raise ValueError(f"{name} must hold class indices >= 0, got {lo}; relabel the classes 0..C-1")
        if n_classes is not None and hi >= n_classes:
            raise ValueError(
                f"{name} holds class {hi} but there are {n_classes} classes (0..{n_classes - 1}); "
                "relabel the classes or give the model more outputs"
            )
    return t


def check_finite_result(t: torch.Tensor, what: str, fix: str) -> torch.Tensor:
    """Refuse a computed tensor holding inf or NaN (an overflow of finite inputs): :class:`ScaleError`.

    ``what`` names the result and the arguments it came from, ``fix`` says what to change, e.g.
    ``check_finite_result(P, "G^p of X (p = 9)", "scale X down or lower p")``.
    """
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ScaleError(f"{what} overflows {t.dtype} (inf or NaN entries); {fix}")
    return t


def check_no_underflow(inp: torch.Tensor, out_rows: torch.Tensor, what: str, name: str = "X") -> torch.Tensor:
    """Refuse a result whose row i is all zero although row i of the input ``inp`` is not.

    For results whose row i cannot vanish for a nonzero x_i (x_i C^k, G^p, X X^T) such a row is an
    underflow below the float64 range (inputs ~1e-100 and smaller): :class:`ScaleError`.
    """
    if inp.numel() and out_rows.numel():
        lost = (inp != 0).reshape(inp.shape[0], -1).any(dim=1) & ~(out_rows != 0).reshape(out_rows.shape[0], -1).any(dim=1)
        if bool(lost.any()):
            big = float(inp.abs().max())
            raise ScaleError(
                f"{what} underflows to zero for {int(lost.sum())} nonzero rows of {name} (max |{name}| = {_fmt(big)}); "
                f"scale {name} up, e.g. {name} / {name}.abs().max()"
            )
    return out_rows


def symmetrize(P: torch.Tensor) -> torch.Tensor:
    """(P + P^T) / 2, exactly symmetric; near the top of the float range, where P + P^T would
    overflow, P / 2 + P^T / 2 (the same number wherever both are finite)."""
    S = (P + P.T) / 2
    if not bool(torch.isfinite(S).all()) and bool(torch.isfinite(P).all()):
        S = P / 2 + P.T / 2
    return S


def power_of_two_scale(t: torch.Tensor, lo: float = 1e-30, hi: float = 1e30) -> torch.Tensor:
    """``t`` times a power of two (exact) that brings max |t| near 1 when it lies outside [lo, hi];
    ``t`` itself otherwise (so results on inputs of ordinary scale do not change by a bit)."""
    big = float(t.abs().max()) if t.numel() else 0.0
    if big == 0.0 or lo <= big <= hi:
        return t
    return torch.ldexp(t, torch.tensor(-math.frexp(big)[1], dtype=torch.int64))


def check_names(value: Any, name: str, options: Sequence[str] | None = None) -> tuple:
    """A list or tuple of names (``options``, if given, lists the allowed ones); a bare string is
    refused with the fix, since iterating it would give its letters (``tasks="mnist"`` -> 'm')."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list or tuple of names, got the string {value!r}; write ({value!r},)")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a list or tuple of names, got {value!r}") from None
    if options is not None:
        for v in items:
            if v not in options:
                raise ValueError(f"{name} has {v!r}, which is not one of {_alternatives(list(options))}")
    return items
