"""Statistics a reader can trust: intervals for rates and ratios, bootstraps, trends.

- :func:`wilson_interval`, :func:`pooled_rate`: a binomial proportion k/n (a flip rate)
  with its Wilson score interval, which keeps its coverage near 0 and 1 where the
  normal (Wald) interval collapses to a point;
- :func:`rate_ratio`: p1/p2 with the Katz log interval;
- :func:`bootstrap_ci`, :func:`bootstrap_ratio`: percentile bootstrap over a few values
  (one per seed), deterministic for a seed;
- :func:`trend`, :func:`trend_by`, :func:`significant_direction`: Spearman rank
  correlation of a value with, e.g., width, and what it says in words;
  :func:`spearman_critical`: the smallest |rho| that is significant for n pairs.

Non-finite values follow the package's NaN rule (:mod:`linattn.tables`): they are left out.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats as _sps

from ._validation import check_int, check_range
from .tables import as_keys, grouped_values, numeric

__all__ = [
    "z_value",
    "wilson_interval",
    "pooled_rate",
    "rate_ratio",
    "bootstrap_ci",
    "bootstrap_ratio",
    "trend",
    "trend_by",
    "significant_direction",
    "spearman_critical",
]


def _level(level: Any) -> float:
    return check_range(level, "level", 0.0, 1.0, lo_open=True, hi_open=True)


def z_value(level: float = 0.95) -> float:
    """The two-sided normal quantile ``z = Phi^{-1}((1 + level) / 2)`` (1.95996... at 0.95)."""
    return float(_sps.norm.ppf(0.5 + _level(level) / 2))


def _counts(k: Any, n: Any, kname: str = "k", nname: str = "n", *, n_min: int = 1) -> tuple[int, int]:
    n = check_int(n, nname, minimum=n_min)
    k = check_int(k, kname, minimum=0)
    if k > n:
        raise ValueError(f"{kname} must be at most {nname} = {n} (k successes out of n trials), got {kname} = {k}")
    return k, n


# --------------------------------------------------------------------------- rates


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion p = k/n.

    With ``z = Phi^{-1}((1 + level)/2)``::

        centre = (p + z^2 / (2n)) / (1 + z^2/n)
        half   = z sqrt(p (1 - p) / n + z^2 / (4 n^2)) / (1 + z^2/n)
        (lo, hi) = (centre - half, centre + half)

    k = 0 gives lo = 0 and k = n gives hi = 1 exactly. ``0 <= k <= n``, ``n >= 1``, level in (0, 1).
    """
    k, n = _counts(k, n)
    z = z_value(level)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def pooled_rate(ks: Iterable[int], ns: Iterable[int], level: float = 0.95) -> dict[str, float | int]:
    """A rate pooled over groups (e.g. flip counts over seeds): ``rate = sum k_i / sum n_i``.

    Returns ``dict(rate, k, n, lo, hi)`` with (lo, hi) the :func:`wilson_interval` of the
    pooled counts. ``ks`` and ``ns`` have one integer per group, ``0 <= k_i <= n_i``,
    ``sum n_i >= 1``. (Pooling treats the trials as independent; a spread between seeds
    is better shown with :func:`bootstrap_ci` over the per-seed rates.)
    """
    ks, ns = list(ks), list(ns)
    if len(ks) != len(ns):
        raise ValueError(f"ks and ns must have one count per group, got {len(ks)} and {len(ns)}")
    if not ks:
        raise ValueError("ks and ns are empty; pass one (k, n) pair per group")
    for i, (k, n) in enumerate(zip(ks, ns)):
        _counts(k, n, f"ks[{i}]", f"ns[{i}]", n_min=0)
    k, n = int(sum(int(k) for k in ks)), int(sum(int(n) for n in ns))
    if n < 1:
        raise ValueError(f"ns must hold at least one trial in all, got sum(ns) = {n}")
    lo, hi = wilson_interval(k, n, level)
    return {"rate": k / n, "k": k, "n": n, "lo": lo, "hi": hi}


def rate_ratio(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> dict[str, float]:
    """Ratio of two binomial proportions ``p1 / p2 = (k1/n1) / (k2/n2)`` with the Katz log interval::

        log(p1/p2) -+ z sqrt(1/k1 - 1/n1 + 1/k2 - 1/n2),   z = Phi^{-1}((1 + level)/2).

    Haldane correction: when k1 or k2 is 0 the interval uses k + 0.5 and n + 0.5 for
    every k and n (both groups), so that it exists; a zero count then gives a wide,
    finite interval. The ``ratio`` returned is the plain p1/p2 of the uncorrected counts
    (inf when p2 = 0 < p1, nan when both are 0); ``lo, hi`` come from the (corrected)
    counts, and the dict says ``corrected`` (True when the correction was applied).
    """
    k1, n1 = _counts(k1, n1, "k1", "n1")
    k2, n2 = _counts(k2, n2, "k2", "n2")
    z = z_value(level)
    p1, p2 = k1 / n1, k2 / n2
    if p2 > 0:
        ratio = p1 / p2
    else:
        ratio = math.inf if p1 > 0 else math.nan
    corrected = k1 == 0 or k2 == 0
    a1, m1, a2, m2 = (k1 + 0.5, n1 + 0.5, k2 + 0.5, n2 + 0.5) if corrected else (k1, n1, k2, n2)
    centre = math.log((a1 / m1) / (a2 / m2))
    se = math.sqrt(1 / a1 - 1 / m1 + 1 / a2 - 1 / m2)
    return {"ratio": float(ratio), "lo": math.exp(centre - z * se), "hi": math.exp(centre + z * se),
            "corrected": corrected}


def rate_difference(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> dict[str, float]:
    """Difference of two binomial proportions ``d = p1 - p2 = k1/n1 - k2/n2`` with Newcombe's hybrid
    score interval (his method 10), built from the two :func:`wilson_interval` (l_i, u_i)::

        lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2),   hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2).

    It stays inside [-1, 1] and behaves at counts of 0 or n, where the Wald interval collapses.
    Returns ``dict(diff, lo, hi)``.
    """
    k1, n1 = _counts(k1, n1, "k1", "n1")
    k2, n2 = _counts(k2, n2, "k2", "n2")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    return {"diff": d, "lo": d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            "hi": d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)}


# --------------------------------------------------------------------------- bootstrap


def _finite_1d(values: Any, name: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from exc
    if v.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per seed), got shape {v.shape}")
    return v


def _need(v: np.ndarray, name: str, least: int = 2) -> None:
    if v.size < least:
        raise ValueError(f"{name} has {v.size} finite values; a bootstrap needs at least {least} (more seeds)")


def _apply(stat: Callable, samples: np.ndarray) -> np.ndarray:
    """``stat`` of each row of ``samples`` (shape (b, m)) -> shape (b,)."""
    try:
        takes_axis = "axis" in inspect.signature(stat).parameters
    except (TypeError, ValueError):
        takes_axis = False
    if takes_axis:
        out = np.asarray(stat(samples, axis=1), dtype=float)
        if out.shape == (samples.shape[0],):
            return out
    return np.array([float(stat(s)) for s in samples])


def _resample(rng: np.random.Generator, m: int, n_boot: int) -> Iterable[np.ndarray]:
    """Index arrays of shape (b, m), b rows at a time, n_boot rows in all (bounded memory)."""
    chunk = max(1, 2_000_000 // m)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        yield rng.integers(0, m, size=(b, m))
        done += b


def _percentile(boot: np.ndarray, level: float) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of ``boot`` (shape (n_boot,)); linear
    interpolation, or order statistics when some entries are inf (inf - inf is undefined)."""
    alpha = 1.0 - level
    method = "linear" if np.isfinite(boot).all() else "inverted_cdf"
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], method=method)
    return float(lo), float(hi)


def _boot_args(level: Any, n_boot: Any, seed: Any) -> tuple[float, int, int]:
    return _level(level), check_int(n_boot, "n_boot", minimum=1), check_int(seed, "seed", minimum=0)


def bootstrap_ci(values: Sequence[float], stat: Callable[..., float] = np.mean, *, level: float = 0.95,
                 n_boot: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(values)``.

    Draw ``n_boot`` resamples of the m finite values (shape (m,), one per seed; non-finite
    values are left out) with replacement, take ``stat`` of each and return the
    ``(1 - level)/2`` and ``(1 + level)/2`` quantiles. ``stat`` is called with ``axis=1``
    on a (b, m) array when it takes ``axis`` (np.mean, np.median), else once per resample.
    Deterministic for a ``seed`` (numpy's default_rng). Needs m >= 2.
    """
    level, n_boot, seed = _boot_args(level, n_boot, seed)
    if not callable(stat):
        raise TypeError(f"stat must be a function of an array (e.g. np.mean), got {stat!r}")
    v = _finite_1d(values, "values")
    v = v[np.isfinite(v)]
    _need(v, "values")
    rng = np.random.default_rng(seed)
    boot = np.concatenate([_apply(stat, v[idx]) for idx in _resample(rng, v.size, n_boot)])
    return _percentile(boot, level)


def bootstrap_ratio(a: Sequence[float], b: Sequence[float], *, paired: bool = False, level: float = 0.95,
                    n_boot: int = 10000, seed: int = 0) -> dict[str, float]:
    """``ratio = mean(a) / mean(b)`` with a percentile bootstrap interval.

    ``paired=True`` (a[i] and b[i] come from the same seed; needs len(a) == len(b)):
    resample the seeds jointly, dropping pairs with a non-finite member. Otherwise
    resample a and b independently, each without its non-finite values. Each side needs
    at least 2 values. Resamples with mean(b) = 0 give inf or nan ratios, which the
    quantiles then reflect (an unbounded interval). Returns ``dict(ratio, lo, hi)``.
    """
    level, n_boot, seed = _boot_args(level, n_boot, seed)
    if not isinstance(paired, (bool, np.bool_)):
        raise TypeError(f"paired must be True or False, got {paired!r}")
    a, b = _finite_1d(a, "a"), _finite_1d(b, "b")
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        if paired:
            if a.size != b.size:
                raise ValueError(f"paired=True needs one b per a (same seeds), got len(a) = {a.size} and "
                                 f"len(b) = {b.size}; pass paired=False for independent samples")
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            _need(a, "a and b (finite pairs)")
            boot = np.concatenate([a[idx].mean(axis=1) / b[idx].mean(axis=1)
                                   for idx in _resample(rng, a.size, n_boot)])
        else:
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            _need(a, "a")
            _need(b, "b")
            ma = np.concatenate([a[idx].mean(axis=1) for idx in _resample(rng, a.size, n_boot)])
            mb = np.concatenate([b[idx].mean(axis=1) for idx in _resample(rng, b.size, n_boot)])
            boot = ma / mb
        ratio = float(np.float64(a.mean()) / np.float64(b.mean()))
    lo, hi = _percentile(boot, level) if not np.isnan(boot).any() else (math.nan, math.nan)
    return {"ratio": ratio, "lo": lo, "hi": hi}


# --------------------------------------------------------------------------- trends


def trend(x: Sequence[float], y: Sequence[float]) -> dict[str, float | int]:
    """Spearman rank correlation of ``y`` with ``x`` (both shape (m,)) over the finite pairs.

    ``rho`` = Pearson correlation of the ranks (ties get mean ranks), ``p`` its two-sided
    p-value (:func:`scipy.stats.spearmanr`), ``n`` the number of finite pairs. rho = p =
    NaN when n < 3 or x or y is constant over the finite pairs. rho > 0: y rises with x.
    """
    xa = np.array([numeric(v, f"x[{i}]") for i, v in enumerate(x)], float)
    ya = np.array([numeric(v, f"y[{i}]") for i, v in enumerate(y)], float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must pair up, got {xa.size} x values and {ya.size} y values")
    return _trend(xa, ya)


def _trend(x: np.ndarray, y: np.ndarray) -> dict[str, float | int]:
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"rho": math.nan, "p": math.nan, "n": n}
    res = _sps.spearmanr(x[ok], y[ok])
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": n}


def trend_by(rows: Sequence[Mapping], by: str | Iterable[str], x: str = "width", y: str = "value") -> list[dict[str, Any]]:
    """:func:`trend` of field ``y`` with field ``x`` within each group of ``rows`` by ``by``.

    Returns one row per group (order of first appearance): the ``by`` fields, then
    ``rho, p, n``. With ``by=("task", "model", "distance")`` this is the old
    ``experiments.width_trend``: how each distance moves with width, over all seeds.
    """
    by = as_keys(by, "by")
    xs = grouped_values(rows, by, x, name="x")
    ys = grouped_values(rows, by, y, name="y")
    return [{**dict(zip(by, key)), **_trend(xs[key], ys[key])} for key in xs]


def significant_direction(rho: float, p: float, alpha: float = 0.05) -> Literal["rises", "falls", "no trend"]:
    """In words: ``"rises"`` when p < alpha and rho > 0, ``"falls"`` when p < alpha and rho < 0,
    else ``"no trend"`` (NaN rho or p included)."""
    alpha = check_range(alpha, "alpha", 0.0, 1.0, lo_open=True, hi_open=True)
    rho, p = numeric(rho, "rho"), numeric(p, "p")
    if not (math.isfinite(rho) and math.isfinite(p)) or p >= alpha or rho == 0:
        return "no trend"
    return "rises" if rho > 0 else "falls"


def spearman_critical(n: int, alpha: float = 0.05) -> float:
    """The smallest |rho| with two-sided p < alpha for ``n`` pairs under :func:`trend`'s test.

    scipy's p-value treats t = rho sqrt((n - 2) / (1 - rho^2)) as Student-t with n - 2 degrees
    of freedom, so the threshold is rho* = t* / sqrt(n - 2 + t*^2) with t* = t_{1 - alpha/2, n-2}.
    With nine widths and one seed (n = 9) rho* = 0.67; with three seeds (n = 27) 0.38.
    """
    n = check_int(n, "n", minimum=3)
    alpha = check_range(alpha, "alpha", 0.0, 1.0, lo_open=True, hi_open=True)
    t = float(_sps.t.ppf(1 - alpha / 2, n - 2))
    return t / math.sqrt(n - 2 + t * t)
