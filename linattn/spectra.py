"""Spectra, condition numbers and the width bounds of Part I.

Conventions (float64 throughout):

- Eigenvalues are sorted in descending order, lambda_1 >= lambda_2 >= ... >= lambda_N.
- **Numerical rank** of a PSD matrix K (N x N): the number of eigenvalues above
  ``tol = rtol * lambda_1`` with the default ``rtol = N * eps`` (eps = 2.2e-16, the float64
  machine epsilon): numpy's ``matrix_rank`` rule. Eigenvalues below it cannot be told
  from rounding error of a matrix whose largest eigenvalue is lambda_1.
- **kappa(K)** = lambda_1 / lambda_N; a matrix whose lambda_N is below the tolerance is
  rank-deficient and asking for its condition number raises :class:`RankDeficientError`
  (with the numerical rank), never a silent 1e17.
- **kappa_d(G)** = lambda_1 / lambda_k with k = min(n, d): the condition number of the rank-
  min(n, d) truncation of G = X X^T (v2's "effective condition number", as we read it).
  From a data matrix X (n x d) the eigenvalues of G are the squared singular values of X,
  which are accurate to eps * s_1 in the singular values, i.e. the eigenvalue ratio is
  resolvable up to about 1 / (max(n, d) eps)^2 rather than 1 / (n eps) (rank rule on s).
- Width bounds: v1 m = kappa^6 / eps^2; v2 m = kappa_d^6 n ln n. Both overflow float64
  for realistic kappa, so every bound also has a ``log10_`` form. The paper writes them as
  Omega(...), but the argument behind them (concentration of Theta_m, then Weyl's inequality
  against lambda_min) gives a width that *suffices*, an upper bound on the width needed; no
  lower bound is derived (see :mod:`linattn.ntk` for the measured widths and the one empirical
  lower bound).

Inputs of another floating dtype are computed in float64 but judged with *their own* machine
epsilon (a float32 matrix is only known to about 1.2e-7 of its largest entry, so its eigenvalues
below N eps32 lambda_1 are rounding noise, not a condition number). Condition numbers are
scale-free: X scaled by 1e-200 or 1e200 gives the kappa_d of X (G = X X^T itself would under- or
overflow float64; :func:`gram_eigenvalues` says so instead). A Gram or kernel matrix with a clearly
negative eigenvalue (below -sqrt(eps) lambda_1, beyond round-off) is not PSD: a ValueError saying
so, not a "rank-deficient" one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from ._validation import ScaleError, as_tensor, check_int, check_range, check_square_symmetric

__all__ = [
    "RankDeficientError",
    "EPS",
    "eigvalsh_desc",
    "gram_eigenvalues",
    "numerical_rank",
    "kappa",
    "kappa_d",
    "kappa_top",
    "KappaPoint",
    "kappa_d_sweep",
    "Amplification",
    "amplification",
    "width_bound_v1",
    "width_bound_v2",
    "log10_width_bound_v1",
    "log10_width_bound_v2",
    "orders_beyond",
    "ModelSize",
    "MODEL_SIZES",
]

#: float64 machine epsilon
EPS = float(torch.finfo(torch.float64).eps)


class RankDeficientError(ValueError):
    """A condition number was asked of a matrix whose needed eigenvalue is numerically zero.

    Attributes: ``rank`` (the numerical rank), ``needed`` (the index the condition number
    needs: N for kappa, min(n, d) for kappa_d), ``tol`` (the eigenvalue tolerance used).
    """

    def __init__(self, rank: int, needed: int, tol: float, what: str = "the matrix") -> None:
        self.rank, self.needed, self.tol = int(rank), int(needed), float(tol)
        super().__init__(
            f"{what} has numerical rank {rank} < {needed} (eigenvalues below {tol:.3g} count as 0), "
            f"so lambda_{needed} is numerically zero and the condition number is not defined; "
            f"use fewer points or features (n or d <= {rank}), remove constant features, or ask "
            f"kappa_top(..., r) for r <= {rank}"
        )


_TINY = float(torch.finfo(torch.float64).tiny)


def _float64(A, name: str, *, min_rows: int) -> tuple[torch.Tensor, float]:
    """A 2-D float64 tensor and the machine epsilon of the dtype it came in (float64's for integers)."""
    t = as_tensor(A, name, ndim=2, dtype=None, min_rows=min_rows)
    eps = float(torch.finfo(t.dtype).eps) if t.is_floating_point() else EPS
    t = t.to(torch.float64)
    big = float(t.abs().max()) if t.numel() else 0.0
    if 0.0 < big < _TINY:
        raise ScaleError(
            f"{name} has entries no larger than {big:.3g}, below the normal float64 range (subnormal "
            f"numbers have lost digits); scale {name} up, e.g. {name} / {name}.abs().max() (condition "
            "numbers do not depend on the scale)"
        )
    return t, eps


def _sym_rtol(eps: float) -> float:
    return max(1e-8, 100 * eps)


def _square(A, name: str, *, min_rows: int) -> tuple[torch.Tensor, float]:
    K, eps = _float64(A, name, min_rows=min_rows)
    check_square_symmetric(K, name, rtol=_sym_rtol(eps))
    return K, eps


def _check_psd(ev: torch.Tensor, name: str, eps: float) -> None:
    """Refuse eigenvalues (descending) with one clearly negative: below -sqrt(eps) lambda_1."""
    top, low = float(ev[0]), float(ev[-1])
    if low < -math.sqrt(eps) * max(top, 0.0) or (top <= 0 and low < 0):
        raise ValueError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {low:.3g} against a largest "
            f"of {top:.3g}, beyond round-off (-sqrt(eps) lambda_1); a Gram or kernel matrix has no negative "
            f"eigenvalue, so check how {name} was built (or pass the data X itself, whose Gram is PSD by construction)"
        )


def eigvalsh_desc(K) -> torch.Tensor:
    """The eigenvalues (N,) of a symmetric ``K`` (N, N) in descending order, float64."""
    A, _ = _square(K, "K", min_rows=1)
    return torch.linalg.eigvalsh(A).flip(0)


def _rank_from_desc(ev: torch.Tensor, tol: float) -> int:
    return int((ev > tol).sum())


def _default_tol(ev: torch.Tensor, size: int, rtol: float | None, eps: float = EPS) -> float:
    r = size * eps if rtol is None else check_range(rtol, "rtol", 0.0, 1.0)
    return r * max(float(ev[0]), 0.0)


def _sv_spectrum(X: torch.Tensor, eps: float, *, scale_free: bool) -> tuple[torch.Tensor, float]:
    """Eigenvalues of G = X X^T (n, descending) from the singular values of X, and the tolerance.

    With ``scale_free``, s is first multiplied by a power of two (exact) when s_1^2 would leave the
    float64 range, so ratios of the returned eigenvalues are right at any scale of X; without it,
    eigenvalues beyond the float64 range are a :class:`ScaleError`.
    """
    n, dd = X.shape
    s = torch.linalg.svdvals(X)
    s0 = float(s[0]) if s.numel() else 0.0
    if s0 > 0 and not 1e-150 < s0 < 1e150:
        if not scale_free:
            raise ScaleError(
                f"the eigenvalues of G = X X^T (about {s0:.3g}^2) leave the float64 range; scale X, e.g. "
                "X / X.abs().max() (the eigenvalues scale by its square, their ratios not at all)"
            )
        s = torch.ldexp(s, torch.tensor(-math.frexp(s0)[1]))
        s0 = float(s[0])
    ev = torch.zeros(n, dtype=torch.float64)
    ev[: s.shape[0]] = s**2
    tol = (max(n, dd) * eps * s0) ** 2
    return ev, tol


def _gram_spectrum(A, d, *, scale_free: bool) -> tuple[torch.Tensor, float, int]:
    if d is None:
        X, eps = _float64(A, "X", min_rows=2)
        ev, tol = _sv_spectrum(X, eps, scale_free=scale_free)
        return ev, tol, int(X.shape[1])
    G, eps = _square(A, "G", min_rows=2)
    dd = check_int(d, "d")
    ev = torch.linalg.eigvalsh(G).flip(0)
    if float(ev[0]) <= 0:
        raise ValueError("G has no positive eigenvalue (it is zero or negative definite); a Gram matrix "
                         "X X^T of nonzero X has one")
    _check_psd(ev, "G", eps)
    return ev, _default_tol(ev, G.shape[0], None, eps), dd


def gram_eigenvalues(A, d: int | None = None) -> tuple[torch.Tensor, float, int]:
    """Eigenvalues of G (descending, float64), the tolerance for zero, and d.

    If ``d`` is None, ``A`` is a data matrix X (n, d): the eigenvalues are the squared
    singular values of X (n of them, zeros appended when n > d), and the tolerance is
    (max(n, d) eps s_1)^2, the square of numpy's rank rule on X. If ``d`` is given, ``A``
    is the Gram G (n, n) itself, symmetric positive semi-definite, and the tolerance is n eps lambda_1.
    eps is the machine epsilon of the input's dtype. An X whose G has eigenvalues beyond the float64
    range (entries beyond about 1e150 or below 1e-150) is a :class:`ScaleError`: rescale it.
    """
    return _gram_spectrum(A, d, scale_free=False)


def numerical_rank(K, rtol: float | None = None) -> int:
    """The number of eigenvalues of the PSD ``K`` (N, N) above ``rtol * lambda_1``.

    Default ``rtol = N * eps`` (eps the machine epsilon of K's dtype), numpy's matrix_rank rule.
    """
    A, eps = _square(K, "K", min_rows=1)
    ev = torch.linalg.eigvalsh(A).flip(0)
    return _rank_from_desc(ev, _default_tol(ev, ev.shape[0], rtol, eps))


def kappa(K, rtol: float | None = None) -> float:
    """kappa(K) = lambda_1 / lambda_N of a PSD ``K`` (N, N), N >= 2.

    Raises :class:`RankDeficientError` (with the numerical rank) when lambda_N is at or
    below ``rtol * lambda_1`` (default rtol = N eps, eps the machine epsilon of K's dtype: a
    float32 K is judged at float32's resolution), and a ValueError when K is clearly indefinite.
    """
    A, eps = _square(K, "K", min_rows=2)
    ev = torch.linalg.eigvalsh(A).flip(0)
    if float(ev[0]) <= 0:
        raise ValueError("K has no positive eigenvalue (it is zero or negative definite)")
    _check_psd(ev, "K", eps)
    tol = _default_tol(ev, ev.shape[0], rtol, eps)
    r = _rank_from_desc(ev, tol)
    if r < ev.shape[0]:
        raise RankDeficientError(r, ev.shape[0], tol, "K")
    return float(ev[0] / ev[-1])


def kappa_top(A, r: int, d: int | None = None) -> float:
    """lambda_1 / lambda_r of G (from X (n, d), or from G (n, n) when ``d`` is given).

    The condition number of the rank-r truncation of G (truncated attention keeps this
    part of the spectrum). ``1 <= r <= n``; a numerically zero lambda_r is an error.
    """
    r = check_int(r, "r")
    ev, tol, _ = _gram_spectrum(A, d, scale_free=True)
    if r > ev.shape[0]:
        raise ValueError(f"r = {r} exceeds n = {ev.shape[0]}")
    rank = _rank_from_desc(ev, tol)
    if rank < r:
        raise RankDeficientError(rank, r, tol, "G")
    return float(ev[0] / ev[r - 1])


def kappa_d(A, d: int | None = None) -> float:
    """kappa_d(G) = lambda_1 / lambda_k, k = min(n, d), of the Gram G = X X^T.

    ``A`` is the data X (n, d) when ``d`` is None (eigenvalues from the SVD of X, the
    accurate route), or the Gram G (n, n) when the feature dimension ``d`` is given.
    n >= 2. When n <= d this is kappa(G). Raises :class:`RankDeficientError` naming the
    numerical rank when lambda_k is numerically zero (e.g. MNIST has 67 always-zero
    pixels, so rank G <= 717 < 784 once n > 717). Scale-free: kappa_d(c X) = kappa_d(X) for any
    c > 0 whose c X is finite. A G that is not positive semi-definite is a ValueError.
    """
    ev, tol, dd = _gram_spectrum(A, d, scale_free=True)
    k = min(ev.shape[0], dd)
    rank = _rank_from_desc(ev, tol)
    if rank < k:
        raise RankDeficientError(rank, k, tol, "G")
    return float(ev[0] / ev[k - 1])


class KappaPoint(NamedTuple):
    """kappa_d at one sample size: ``kappa`` is None where G is rank-deficient (see ``rank``)."""

    n: int
    kappa: float | None
    rank: int
    needed: int  # min(n, d), the index kappa_d needs


def kappa_d_sweep(sample: Callable[[int], object], ns) -> list[KappaPoint]:
    """kappa_d(X_n) for each n in ``ns``, X_n = ``sample(n)`` (n, d) the data at size n.

    A rank-deficient X_n gives ``kappa=None`` and its numerical rank, instead of an error,
    so a sweep over n shows where the condition number stops existing.
    """
    if not callable(sample):
        raise TypeError(f"sample must be a callable n -> X (n, d), got {type(sample).__name__}")
    if isinstance(ns, (str, bytes)) or not hasattr(ns, "__iter__"):
        raise TypeError(f"ns must be a list of sample sizes, got {ns!r}")
    ns = [check_int(n, "n (in ns)", minimum=2) for n in ns]
    out = []
    for n in ns:
        X, eps = _float64(sample(n), "sample(n)", min_rows=2)
        ev, tol = _sv_spectrum(X, eps, scale_free=True)
        d = int(X.shape[1])
        k = min(X.shape[0], d)
        rank = _rank_from_desc(ev, tol)
        kd = float(ev[0] / ev[k - 1]) if rank >= k else None
        out.append(KappaPoint(int(X.shape[0]), kd, rank, k))
    return out


@dataclass(frozen=True)
class Amplification:
    """kappa_d of G and of G^p, from the eigenvalues of G (see :func:`amplification`).

    ``kappa_d``: lambda_1 / lambda_k of G; ``kappa_d_power``: lambda_1^p / lambda_k^p (the
    eigenvalues of G^p are those of G to the p); ``log10_kappa_d_power`` the same in log10;
    ``direct``: lambda_1 / lambda_k of G^p formed in float64 and diagonalised, or None
    where that route cannot resolve lambda_k(G^p) to relative accuracy rtol (where
    lambda_k(G^p) <= n eps lambda_1^p / rtol, the matrix's rounding level over rtol); ``agrees``: |direct / kappa_d_power - 1|
    <= rtol when direct is available (None otherwise).
    """

    power: int
    k: int
    kappa_d: float
    kappa_d_power: float
    log10_kappa_d_power: float
    direct: float | None
    agrees: bool | None


def amplification(X, power: int = 3, *, rtol: float = 1e-6) -> Amplification:
    """kappa_d(G^p) = kappa_d(G)^p for the data ``X`` (n, d), p = ``power`` (3 for attention).

    The eigenvalues of G^p are lambda_i^p (G = Q diag(lambda) Q^T gives
    G^p = Q diag(lambda^p) Q^T), so kappa_d(G^p) = (lambda_1 / lambda_k)^p exactly. We take
    it from the eigenvalues of G (the squared singular values of X), not from G^p formed in
    floating point: an eigenvalue of a float64 matrix is only known to about
    n eps ||G^p|| = n eps lambda_1^p, so once kappa_d(G)^p exceeds ~1 / (n eps) ~ 1e13 the
    smallest eigenvalue of the formed G^p is rounding noise, and its "condition number"
    would be a meaningless 1e16-1e17. The direct route is computed as a check where it
    can resolve lambda_k to ``rtol`` (``direct``), and must then agree to ``rtol``.
    """
    p = check_int(power, "power")
    rtol = check_range(rtol, "rtol", 0.0, 1.0, lo_open=True)
    A, _ = _float64(X, "X", min_rows=2)
    kd = kappa_d(X)  # raises RankDeficientError where lambda_k(G) is numerically zero
    n, d = A.shape
    k = min(n, d)
    log_kp = p * math.log10(kd)
    kp = 10.0**log_kp if log_kp < 308 else math.inf
    from .kernels import gram_power

    try:
        ev = eigvalsh_desc(gram_power(A, p))
    except ScaleError:  # G^p of this X leaves the float64 range: the direct route cannot resolve it
        direct = None
    else:
        tol = n * EPS * float(ev[0])
        direct = float(ev[0] / ev[k - 1]) if float(ev[k - 1]) > tol / rtol else None
    agrees = None if direct is None else abs(direct / kp - 1) <= rtol
    return Amplification(p, k, kd, kp, log_kp, direct, agrees)


def _log10_pos(x: float, name: str) -> float:
    v = check_range(x, name, -math.inf, math.inf) if not isinstance(x, (int, float)) or isinstance(x, bool) else float(x)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")
    return math.log10(v)


def log10_width_bound_v1(kappa: float, eps: float) -> float:
    """log10 of m = kappa^6 / eps^2 (v1: width for NTK convergence to accuracy eps; a sufficient width)."""
    lk = _log10_pos(kappa, "kappa")
    if kappa < 1:
        raise ValueError(f"kappa is a condition number, at least 1; got {kappa}")
    e = check_range(eps, "eps", 0.0, 1.0, lo_open=True)
    return 6 * lk - 2 * math.log10(e)


def log10_width_bound_v2(kappa_d: float, n: int) -> float:
    """log10 of m = kappa_d^6 n ln n (v2 abstract; a sufficient width); n >= 2 (ln n > 0)."""
    lk = _log10_pos(kappa_d, "kappa_d")
    if kappa_d < 1:
        raise ValueError(f"kappa_d is a condition number, at least 1; got {kappa_d}")
    n = check_int(n, "n", minimum=2)
    return 6 * lk + math.log10(n) + math.log10(math.log(n))


def _from_log10(v: float, what: str, args: str, form: str) -> float:
    if v >= 308:
        raise ScaleError(f"{what} = 1e{v:.1f} overflows float64 for {args}; use {form}, which gives {v:.4g}")
    return 10.0**v


def width_bound_v1(kappa: float, eps: float) -> float:
    """m = kappa^6 / eps^2 (v1), computed in log10; ``eps`` in (0, 1].

    A bound beyond float64 (about 1e308) is a :class:`ScaleError` (an OverflowError) naming
    :func:`log10_width_bound_v1`."""
    return _from_log10(log10_width_bound_v1(kappa, eps), "kappa^6 / eps^2", f"kappa = {kappa:.3g}, eps = {eps:.3g}",
                       "log10_width_bound_v1(kappa, eps)")


def width_bound_v2(kappa_d: float, n: int) -> float:
    """m = kappa_d^6 n ln n (v2 abstract), computed in log10; ``n >= 2``.

    A bound beyond float64 is a :class:`ScaleError` naming :func:`log10_width_bound_v2`."""
    return _from_log10(log10_width_bound_v2(kappa_d, n), "kappa_d^6 n ln n", f"kappa_d = {kappa_d:.3g}, n = {n}",
                       "log10_width_bound_v2(kappa_d, n)")


def orders_beyond(m: float, reference: float) -> float:
    """log10(m / reference): how many orders of magnitude width ``m`` exceeds ``reference``.

    Both positive; pass ``m = 10**log10_width_bound_v2(...)`` or compute
    ``log10_m - math.log10(reference)`` directly when m overflows.
    """
    return _log10_pos(m, "m") - _log10_pos(reference, "reference")


class ModelSize(NamedTuple):
    """A published parameter count and where it is published."""

    params: float
    citation: str


#: Parameter counts of well-known large models (the published totals), and the paper's
#: own reference scale. Only numbers stated in the cited papers.
MODEL_SIZES: dict[str, ModelSize] = {
    "GPT-2": ModelSize(1.5e9, "Radford et al. 2019, Language Models are Unsupervised Multitask Learners"),
    "GPT-3": ModelSize(175e9, "Brown et al. 2020, Language Models are Few-Shot Learners (NeurIPS)"),
    "PaLM": ModelSize(540e9, "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways (arXiv:2204.02311)"),
    "Switch-C": ModelSize(1.6e12, "Fedus, Zoph & Shazeer 2022, Switch Transformers (JMLR 23)"),
    "paper reference": ModelSize(1e12, "Minoza et al. 2026, arXiv 2603.13085 [v2 abstract]: 'the largest architectures', about 1e12"),
}
