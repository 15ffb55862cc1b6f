"""NTK distance: every reading of the paper's "NTK distance", each named (Part II).

v1 reports an "NTK distance" against width (Table 1) without defining it. A network
is in the kernel regime when (a) its kernel at initialisation is close to the limit
kernel Theta_inf, (b) its kernel barely moves during training, and (c) the trained
function is the kernel predictor's. Each reading below measures one of these, in
absolute or relative form. Notation: Theta_m(0), Theta_m(T) the empirical NTK of a
width-m network at initialisation and after training (on the same n points, (n, n));
Theta_inf the infinite-width NTK on those points; f_net, f_ntk the trained network's
and the NTK predictor's outputs on N held-out points, (N,) or (N, C).

Function space (the trained function against the predictor):
    function_abs   ||f_net - f_ntk||_F
    function_rms   ||f_net - f_ntk||_F / sqrt(N C)          (per output, independent of N)
    function_rel   ||f_net - f_ntk||_F / ||f_ntk||_F
Kernel space:
    kernel_init_rel    ||Theta_m(0) - Theta_inf||_F / ||Theta_inf||_F   (law of large numbers)
    kernel_init_abs    ||Theta_m(0) - Theta_inf||_F
    kernel_final_rel   ||Theta_m(T) - Theta_inf||_F / ||Theta_inf||_F
    kernel_final_abs   ||Theta_m(T) - Theta_inf||_F
    kernel_drift_rel   ||Theta_m(T) - Theta_m(0)||_F / ||Theta_m(0)||_F (lazy training)
Operator error against the smallest eigenvalue (what a width bound is about):
    kernel_init_op_lmin   ||Theta_m(0) - Theta_inf||_2 / lambda_min(Theta_inf)
    kernel_final_op_lmin  ||Theta_m(T) - Theta_inf||_2 / lambda_min(Theta_inf)

Expected value at initialisation (a closed form to check kernel_init_abs against): with
w_r ~ N(0, I_d) i.i.d., Theta_m(0)_ij = u_ij (1/m) sum_r s_r with s_r = 1[w_r.x^_i > 0] 1[w_r.x^_j > 0]
~ Bernoulli(p_ij), p_ij = (pi - theta_ij) / (2 pi), so E Theta_m(0) = Theta_inf and

    E ||Theta_m(0) - Theta_inf||_F^2 = (1/m) sum_ij u_ij^2 p_ij (1 - p_ij)     (:func:`expected_init_gap`).

Why the last two: a kernel solve Theta^{-1} y is perturbed by ||Delta|| / lambda_min,
not by ||Delta|| / lambda_max; a relative Frobenius error is dominated by the largest
eigenvalues and can be small while the solve is wrong. The width bounds of the paper
(m ~ kappa^6 ...) ask for ||Theta_m - Theta_inf||_2 <= eps lambda_min, i.e. a value below
1 of these readings. When lambda_min(Theta_inf) is below round-off (n eps lambda_max)
the reading does not exist and :class:`linattn.spectra.RankDeficientError` reports the
numerical rank.

All norms are computed in float64, scaled so that inputs of any finite size give a finite reading
(a gap beyond float64, ~1e308, is a :class:`linattn._validation.ScaleError` naming the inputs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._validation import ScaleError, as_tensor, check_bool, check_square_symmetric
from .spectra import RankDeficientError

__all__ = [
    "RankDeficientError",
    "DistanceInputs",
    "Distance",
    "DISTANCES",
    "function_gap",
    "kernel_gap",
    "operator_gap_over_lmin",
    "compute_distances",
    "expected_init_gap",
]


def _pair(a, b, name_a: str, name_b: str) -> tuple[torch.Tensor, torch.Tensor]:
    A = as_tensor(a, name_a, ndim=(1, 2))
    B = as_tensor(b, name_b, ndim=(1, 2))
    if A.shape != B.shape:
        raise ValueError(f"{name_a} has shape {tuple(A.shape)} but {name_b} has {tuple(B.shape)}; they must match")
    if A.numel() == 0:
        raise ValueError(f"{name_a} is empty")
    return A, B


def _common_scale(*ts: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], int]:
    """The tensors times 2^-e (exact) and e, with e chosen so that their largest entry is near 1
    when it lies outside [1e-100, 1e100] (e = 0 otherwise: ordinary inputs are not touched)."""
    big = max((float(t.abs().max()) for t in ts if t.numel()), default=0.0)
    if big == 0.0 or 1e-100 <= big <= 1e100:
        return ts, 0
    e = math.frexp(big)[1]
    return tuple(torch.ldexp(t, torch.tensor(-e)) for t in ts), e


def _unscale(value: float, e: int, what: str, names: str) -> float:
    try:
        return math.ldexp(value, e) if e else value
    except OverflowError:
        raise ScaleError(f"{what} is beyond the float64 range for these {names}; scale them down") from None


def function_gap(f_net, f_ntk, *, relative: bool = False, per_output: bool = False) -> float:
    """||f_net - f_ntk||_F, divided by ||f_ntk||_F (``relative``) or by sqrt(N C) (``per_output``).

    Shapes: f_net, f_ntk (N,) or (N, C), equal. float64.
    """
    A, B = _pair(f_net, f_ntk, "f_net", "f_ntk")
    relative, per_output = check_bool(relative, "relative"), check_bool(per_output, "per_output")
    if relative and per_output:
        raise ValueError("choose relative or per_output, not both")
    (A, B), e = _common_scale(A, B)
    gap = float(torch.linalg.vector_norm(A - B))
    if relative:
        ref = float(torch.linalg.vector_norm(B))
        if ref == 0.0:
            raise ValueError("f_ntk is identically zero: the relative gap is undefined; use the absolute one")
        return gap / ref
    if per_output:
        gap = gap / math.sqrt(A.numel())
    return _unscale(gap, e, "||f_net - f_ntk||", "f_net and f_ntk")


def _kernel_pair(K, K_ref, name: str, name_ref: str) -> tuple[torch.Tensor, torch.Tensor]:
    A = check_square_symmetric(as_tensor(K, name, ndim=2), name, rtol=1e-6)
    B = check_square_symmetric(as_tensor(K_ref, name_ref, ndim=2), name_ref, rtol=1e-6)
    if A.shape != B.shape:
        raise ValueError(f"{name} is {tuple(A.shape)} but {name_ref} is {tuple(B.shape)}; compute both on the same points")
    if A.shape[0] < 1:
        raise ValueError(f"{name} is empty")
    return A, B


def kernel_gap(K, K_ref, *, relative: bool = True) -> float:
    """||K - K_ref||_F, divided by ||K_ref||_F when ``relative``. K, K_ref (n, n) symmetric; float64."""
    A, B = _kernel_pair(K, K_ref, "K", "K_ref")
    relative = check_bool(relative, "relative")
    (A, B), e = _common_scale(A, B)
    gap = float(torch.linalg.matrix_norm(A - B))
    if not relative:
        return _unscale(gap, e, "||K - K_ref||_F", "K and K_ref")
    ref = float(torch.linalg.matrix_norm(B))
    if ref == 0.0:
        raise ValueError("K_ref is zero: the relative gap is undefined")
    return gap / ref


def operator_gap_over_lmin(K, K_inf) -> float:
    """||K - K_inf||_2 / lambda_min(K_inf) (spectral norm of the symmetric difference).

    K, K_inf (n, n) symmetric, K_inf positive definite. A value below 1 means the
    finite-width kernel solve is within a factor of the limit's; the paper's width
    bounds ask for it to be small. Raises :class:`RankDeficientError` (with the
    numerical rank) when lambda_min(K_inf) <= n eps lambda_max(K_inf).
    """
    A, B = _kernel_pair(K, K_inf, "K", "K_inf")
    (A, B), _ = _common_scale(A, B)  # the ratio does not depend on a common scale
    mu = torch.linalg.eigvalsh(B)  # eigenvalues of K_inf, ascending
    n = B.shape[0]
    tol = n * torch.finfo(torch.float64).eps * float(mu[-1].abs())
    if float(mu[0]) <= tol:
        rank = int((mu > tol).sum())
        raise RankDeficientError(rank, n, tol, what="Theta_inf (the operator error against lambda_min is unbounded)")
    op = float(torch.linalg.eigvalsh(A - B).abs().max())
    out = op / float(mu[0])
    if not math.isfinite(out):
        raise ScaleError(f"||K - K_inf||_2 / lambda_min(K_inf) = {op:.3g} / {float(mu[0]):.3g} is beyond float64; "
                         "K_inf is too close to singular for this reading")
    return out


@dataclass
class DistanceInputs:
    """What the readings need; a reading whose inputs are ``None`` is skipped.

    theta_inf, theta_init, theta_final: (n, n) kernels on the same points.
    f_net, f_ntk: (N,) or (N, C) outputs on held-out points.
    """

    theta_inf: torch.Tensor | None = None
    theta_init: torch.Tensor | None = None
    theta_final: torch.Tensor | None = None
    f_net: torch.Tensor | None = None
    f_ntk: torch.Tensor | None = None


@dataclass(frozen=True)
class Distance:
    """One reading of "NTK distance": ``fn(inputs) -> float``, the fields it needs, a one-line description."""

    name: str
    fn: Callable[[DistanceInputs], float]
    needs: tuple[str, ...]
    space: str
    description: str

    def __call__(self, inputs: DistanceInputs) -> float:
        return self.fn(inputs)


def _d(name, needs, space, description, fn) -> tuple[str, Distance]:
    return name, Distance(name, fn, needs, space, description)


#: name -> :class:`Distance`, in the order the book's tables use.
DISTANCES: dict[str, Distance] = dict([
    _d("function_abs", ("f_net", "f_ntk"), "function",
       "||f_net - f_ntk||_F on held-out points (absolute; grows like sqrt(N C))",
       lambda z: function_gap(z.f_net, z.f_ntk)),
    _d("function_rms", ("f_net", "f_ntk"), "function",
       "||f_net - f_ntk||_F / sqrt(N C): root-mean-square output gap",
       lambda z: function_gap(z.f_net, z.f_ntk, per_output=True)),
    _d("function_rel", ("f_net", "f_ntk"), "function",
       "||f_net - f_ntk||_F / ||f_ntk||_F",
       lambda z: function_gap(z.f_net, z.f_ntk, relative=True)),
    _d("kernel_init_rel", ("theta_init", "theta_inf"), "kernel",
       "||Theta_m(0) - Theta_inf||_F / ||Theta_inf||_F: finite width at initialisation",
       lambda z: kernel_gap(z.theta_init, z.theta_inf)),
    _d("kernel_init_abs", ("theta_init", "theta_inf"), "kernel",
       "||Theta_m(0) - Theta_inf||_F (absolute; grows like n)",
       lambda z: kernel_gap(z.theta_init, z.theta_inf, relative=False)),
    _d("kernel_final_rel", ("theta_final", "theta_inf"), "kernel",
       "||Theta_m(T) - Theta_inf||_F / ||Theta_inf||_F: trained kernel against the limit",
       lambda z: kernel_gap(z.theta_final, z.theta_inf)),
    _d("kernel_final_abs", ("theta_final", "theta_inf"), "kernel",
       "||Theta_m(T) - Theta_inf||_F (absolute)",
       lambda z: kernel_gap(z.theta_final, z.theta_inf, relative=False)),
    _d("kernel_drift_rel", ("theta_final", "theta_init"), "kernel",
       "||Theta_m(T) - Theta_m(0)||_F / ||Theta_m(0)||_F: how far training moves the kernel",
       lambda z: kernel_gap(z.theta_final, z.theta_init)),
    _d("kernel_init_op_lmin", ("theta_init", "theta_inf"), "operator",
       "||Theta_m(0) - Theta_inf||_2 / lambda_min(Theta_inf): error against what a solve needs",
       lambda z: operator_gap_over_lmin(z.theta_init, z.theta_inf)),
    _d("kernel_final_op_lmin", ("theta_final", "theta_inf"), "operator",
       "||Theta_m(T) - Theta_inf||_2 / lambda_min(Theta_inf)",
       lambda z: operator_gap_over_lmin(z.theta_final, z.theta_inf)),
])


def compute_distances(inputs: DistanceInputs, names=None) -> dict[str, dict]:
    """Every reading in ``names`` (default all of :data:`DISTANCES`) whose inputs are present.

    Returns name -> {"value": float, "note": str}; a reading that does not exist for these
    inputs (a rank-deficient Theta_inf) gets value NaN and the error as its note.
    """
    from ._validation import check_names

    if not isinstance(inputs, DistanceInputs):
        raise TypeError(f"inputs must be a DistanceInputs, got {type(inputs).__name__}")
    names = list(DISTANCES) if names is None else list(check_names(names, "names"))
    unknown = [n for n in names if n not in DISTANCES]
    if unknown:
        raise ValueError(f"unknown distance(s) {unknown}; choose from {list(DISTANCES)}")
    out: dict[str, dict] = {}
    for name in names:
        dist = DISTANCES[name]
        if any(getattr(inputs, f) is None for f in dist.needs):
            continue
        try:
            out[name] = {"value": float(dist(inputs)), "note": ""}
        except RankDeficientError as exc:
            out[name] = {"value": float("nan"), "note": f"rank-deficient Theta_inf: numerical rank {exc.rank} of {exc.needed}"}
    return out


def expected_init_gap(Xh, width: int) -> float:
    """sqrt(E ||Theta_m(0) - Theta_inf||_F^2) = sqrt((1/m) sum_ij u_ij^2 p_ij (1 - p_ij)) for unit rows ``Xh`` (n, d).

    u_ij = <x^_i, x^_j>, p_ij = (pi - theta_ij) / (2 pi) the order-0 arc-cosine kernel
    (:func:`linattn.kernels.arccos0`), m = ``width``, w_r ~ N(0, I_d): each entry of
    Theta_m(0) is u_ij times the mean of m i.i.d. Bernoulli(p_ij) variables. The root-mean-
    square size of the ``kernel_init_abs`` reading, falling exactly like m^{-1/2}.
    """
    from ._validation import check_int
    from .kernels import arccos0

    m = check_int(width, "width")
    p = arccos0(Xh)  # validates unit rows, float64
    A = as_tensor(Xh, "Xh", ndim=2)
    u = A @ A.T
    return float(torch.sqrt((u**2 * p * (1 - p)).sum() / m))
