"""Softmax attention beside its linearized proxy (Part IV).

v2 of the paper calls linearized attention "the canonical tractable proxy" of softmax attention.
This module puts the two side by side on the same keys: the book's unit-normalised training rows
K (n, d), queries the unit-normalised inputs, temperature T.

**The expansion** (:func:`linattn.attention.softmax_expansion`, derived in :func:`expansion_symbolic`).
With s_ik = <x_i, k_k> / T and the weights a_ik = exp(s_ik) / sum_l exp(s_il), softmax attention is
the mean of the keys under a tilted distribution, so its Taylor coefficients in 1/T are the
cumulants of the keys under the uniform distribution:

    att_i = xbar + Sigma x_i / T + (1 / 2T^2) E_k[(k - xbar) <x_i, k - xbar>^2] + O(T^-3),

xbar = mean key, Sigma = (1/n) sum_k (k - xbar)(k - xbar)^T the key covariance (d x d). The first
order term equals [(G X)_i - (G 1)_i xbar] / (n T) because X^T X_c = X_c^T X_c (X_c the centred
keys): linearized attention's C = K^T K = n (Sigma + xbar xbar^T) is the *uncentred* second moment.
Dropping the centring term (G 1)_i xbar is exactly what puts the mean direction xbar xbar^T into C,
and with it the top of the spectrum of G^3 = X C^2 X^T.

**What is measured** (float64 throughout):

- :func:`proxy_terms`: the size of each term and three relative errors at one T (the expansion's,
  the proxy's as a model of softmax's varying part after the best rescaling, and the centred
  proxy's), the angle between the unit features the network sees, and their spread.
- :func:`softmax_feature_gram` and :func:`kernel_spectra`: the Gram F F^T of the softmax features
  F = softmax(X K^T / T) K (n, n), the analogue of G^3 = (G X)(G X)^T, with condition numbers from
  the singular values of F (the accurate route, :func:`linattn.spectra.kappa_d`), against the
  proxy's; and the same for the unit-normalised features and the infinite-width NTK on them.
- :func:`softmax_attn`: MLP-Attn with the linearized attention replaced by fixed softmax attention
  over the training keys (:class:`linattn.attention.SoftmaxAttention`), and :func:`malleability`,
  the influence-malleability protocol of :mod:`linattn.malleability` for it (attention rebuilt from
  the intervened training set, or held fixed), composed from that module's steps.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch

from ._validation import as_tensor, check_bool, check_int, check_option, check_range
from .attention import SoftmaxAttention, check_temperature, softmax_attention, softmax_expansion

__all__ = [
    "NAMED_TEMPERATURES",
    "resolve_temperature",
    "softmax_attn",
    "with_softmax_keys",
    "check_softmax_keys",
    "rebuild_attention",
    "malleability",
    "covariance_form",
    "proxy_terms",
    "softmax_feature_gram",
    "feature_spectra",
    "kernel_spectra",
    "expansion_symbolic",
]


# --------------------------------------------------------------------------- temperatures

#: named temperatures for unit-norm queries and keys (scores <x, k> / T are cosines over T):
#: "sqrt(d)" is the usual 1/sqrt(d) scaling applied to the unit rows themselves; "1/sqrt(d)" is the
#: same scaling applied to rows at LayerNorm scale (||x|| = sqrt(d)), scores sqrt(d) cos(x, k), the
#: scale at which deployed transformers apply softmax attention [ours: the paper states neither]
NAMED_TEMPERATURES = ("sqrt(d)", "1/sqrt(d)")


def resolve_temperature(spec, d: int) -> float:
    """A temperature from a number or a name of :data:`NAMED_TEMPERATURES` (for dimension d).

    ``"sqrt(d)"`` -> sqrt(d), ``"1/sqrt(d)"`` -> 1 / sqrt(d); a number (or its string, "0.3") is
    checked by :func:`linattn.attention.check_temperature`.
    """
    d = check_int(d, "d")
    if isinstance(spec, str):
        name = spec.strip().replace(" ", "")
        if name == "sqrt(d)":
            return math.sqrt(d)
        if name == "1/sqrt(d)":
            return 1.0 / math.sqrt(d)
        try:
            value = float(name)
        except ValueError:
            raise ValueError(f"temperature must be a positive number or one of {NAMED_TEMPERATURES}, got {spec!r}; "
                             "write e.g. '0.3' or '1/sqrt(d)'") from None
        return check_temperature(value)
    return check_temperature(spec)


# --------------------------------------------------------------------------- the model


def softmax_attn(X_keys, width: int, n_outputs: int = 1, *, temperature: float | None = None,
                 unit_queries: bool = True, seed: int = 0, dtype=torch.float32, init_scale: float = 1.0,
                 input_map=None):
    """MLP-Attn with softmax attention: f(x) = m^{-1/2} a^T relu(W x^), x^ = att(x) / ||att(x)||.

    att(x) = softmax(q K^T / T) K over the keys ``X_keys`` (n, d) (the training set it attends
    over, e.g. ``attention_keys(X_train)``: unit rows), q = x / ||x|| (``unit_queries``), temperature
    T (None: sqrt(d)). Everything else (W (m, d) trained, fixed sign head a (m, C), NTK
    initialisation, ``input_map``) is :class:`linattn.models.TwoLayerNet`, as for
    :func:`linattn.models.mlp_attn`; ``kind`` is ``"softmax"``.
    """
    from .models import TwoLayerNet

    att = SoftmaxAttention(X_keys, temperature, unit_queries=unit_queries)
    return TwoLayerNet(att.d, width, n_outputs, feature_map=att, kind="softmax", seed=seed, dtype=dtype,
                       init_scale=init_scale, input_map=input_map)


def _softmax_map(model: torch.nn.Module, caller: str) -> SoftmaxAttention:
    fm = getattr(model, "feature_map", None)
    if not isinstance(fm, SoftmaxAttention):
        raise TypeError(f"{caller} needs a model whose feature_map is a SoftmaxAttention (built with "
                        f"linattn.softmax.softmax_attn), got {type(fm).__name__}")
    return fm


def with_softmax_keys(model: torch.nn.Module, X_keys) -> torch.nn.Module:
    """A copy of a softmax-attention model whose keys are ``X_keys`` (n', d); W, the head, the
    temperature and the query rule are unchanged, so only the feature map moves."""
    fm = _softmax_map(model, "with_softmax_keys")
    new = copy.deepcopy(model)
    new.feature_map = SoftmaxAttention(X_keys, fm.temperature, unit_queries=fm.unit_queries)
    return new


def check_softmax_keys(model: torch.nn.Module, X_train, *, unit_keys: bool = True) -> None:
    """Refuse a softmax-attention model whose keys are not ``attention_keys(X_train)`` through its own
    input map (relative tolerance 1e-6): the protocol's "recompute" rebuilds them from the
    intervened X_train, which is only the model as defined if they came from X_train."""
    from .models import model_keys

    fm = _softmax_map(model, "check_softmax_keys")
    keys = model_keys(model, X_train, unit_keys=unit_keys)
    K = fm.keys.to(torch.float64)
    if K.shape != keys.shape or not torch.allclose(K, keys, rtol=1e-6, atol=1e-9 * float(keys.abs().max())):
        raise ValueError(
            f"the model's softmax keys were not built from X_train with unit_keys={unit_keys}; build it with "
            f"softmax_attn(attention_keys(X_train, unit_keys={unit_keys}), ...), or keep the keys as they are "
            "(attention='fixed')"
        )


def rebuild_attention(model: torch.nn.Module, X_after, *, unit_keys: bool = True) -> torch.nn.Module:
    """The model as defined on an intervened training set X_after (n', d): its attention rebuilt
    from the keys ``attention_keys(X_after)`` (through the model's input map), the same W and head.

    Softmax attention: :func:`with_softmax_keys`; linearized attention (MLP-Attn): C = K'^T K'
    (:func:`linattn.models.with_attention_keys`); no attention (2L-ReLU): the model itself.
    """
    from .models import model_keys, with_attention_keys

    if isinstance(getattr(model, "feature_map", None), SoftmaxAttention):
        return with_softmax_keys(model, model_keys(model, X_after, unit_keys=unit_keys))
    return with_attention_keys(model, model_keys(model, X_after, unit_keys=unit_keys))


def malleability(model: torch.nn.Module, X_train, y_train, X_test, y_test, *,
                 intervention: Literal["transformed", "adversarial", "curated"] = "transformed",
                 attack: Literal["fgsm", "pgd", "mim", "noise"] = "pgd", eps: float = 0.3, tau: float = 0.1,
                 attention: Literal["recompute", "fixed"] = "recompute", unit_keys: bool = True,
                 ridge: float = 1e-3, kernel_fn=None, loss=None, aggregate: str = "mean",
                 coding: Literal["onehot", "pm1"] = "onehot", seed: int = 0, clip=(0.0, 1.0),
                 attack_kwargs: dict | None = None, before=None, X_after=None):
    """:func:`linattn.malleability.malleability` for any of the book's models, softmax attention included.

    A model without softmax attention goes to that function unchanged. A softmax-attention model
    (:func:`softmax_attn`) runs the same five steps from the same functions (``model_influence``,
    ``select_top``, ``attack_perturbation``, ``intervene``, ``measure``), with step 4's model
    :func:`rebuild_attention` of the intervened set (``attention="recompute"``, checked with
    :func:`check_softmax_keys`) or the model as is (``"fixed"``: the original keys). Arguments,
    shapes and the returned :class:`linattn.malleability.MalleabilityResult` as there.
    """
    from . import malleability as mall

    kw = dict(intervention=intervention, attack=attack, eps=eps, tau=tau, attention=attention, unit_keys=unit_keys,
              ridge=ridge, kernel_fn=kernel_fn, loss=loss, aggregate=aggregate, coding=coding, seed=seed, clip=clip,
              attack_kwargs=attack_kwargs, before=before, X_after=X_after)
    if not isinstance(getattr(model, "feature_map", None), SoftmaxAttention):
        return mall.malleability(model, X_train, y_train, X_test, y_test, **kw)
    check_option(attention, "attention", mall.ATTENTION_MODES)
    check_bool(unit_keys, "unit_keys")
    # the checks of the protocol, with the model's attention checked as softmax keys
    X_tr, y_tr, X_te, eps, tau = mall._checked_inputs(model, X_train, y_train, X_test, intervention=intervention,
                                                      attention="fixed", unit_keys=unit_keys, eps=eps, tau=tau)
    if attention == "recompute":
        check_softmax_keys(model, X_tr, unit_keys=unit_keys)
    kinf = dict(ridge=ridge, kernel_fn=mall._default_kernel_fn() if kernel_fn is None else kernel_fn,
                aggregate=aggregate, coding=coding)
    if before is None:
        before = mall.model_influence(model, X_tr, y_tr, X_te, y_test, **kinf)
    mall._check_before(before, X_tr.shape[0])
    selected = mall.select_top(before.scores, tau)
    perturb = mall.attack_perturbation(model, attack, eps=eps, seed=seed, loss=loss, clip=clip,
                                       attack_kwargs=attack_kwargs)
    iv = mall.intervene(X_tr, y_tr, selected, perturb, intervention=intervention, eps=eps, X_after=X_after)
    after_model = rebuild_attention(model, iv.X, unit_keys=unit_keys) if attention == "recompute" else model
    after = mall.model_influence(after_model, iv.X, iv.y, X_te, y_test, **kinf)
    config = mall._config(model, X_tr.shape[0], X_te.shape[0], intervention=intervention, attack=attack, eps=eps,
                          tau=tau, attention=attention, ridge=ridge, seed=seed)
    return mall.measure(before.scores, after.scores, iv, tau=tau, config=config)


# --------------------------------------------------------------------------- softmax against the proxy


def covariance_form(X, X_keys=None, temperature: float | None = None) -> dict[str, torch.Tensor]:
    """The first-order form of softmax attention: xbar + X Sigma / T (float64).

    Queries ``X`` (N, d), keys ``X_keys`` (n, d) (default ``X``), T (default sqrt(d)). Returns
    ``xbar`` (d,), ``Sigma`` (d, d) = (1/n) K_c^T K_c (K_c the centred keys), ``C`` = K^T K
    (= n (Sigma + xbar xbar^T), the proxy's matrix) and ``first_order`` = X Sigma / T (N, d), which
    equals ``softmax_expansion(X, X_keys, T).first_order`` (the identity X^T X_c = X_c^T X_c).
    """
    from .attention import _queries_keys_temperature

    Q, K, T = _queries_keys_temperature(X, X_keys, temperature)
    xbar = K.mean(0)
    Kc = K - xbar
    Sigma = Kc.T @ Kc / K.shape[0]
    return {"xbar": xbar, "Sigma": Sigma, "C": K.T @ K, "first_order": Q @ Sigma / T}


def _fro(A: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(A))


def _sine(A: torch.Tensor, B: torch.Tensor) -> float:
    """min_beta ||A - beta B||_F / ||A||_F = sin of the angle between A and B (as vectors)."""
    cos = float((A * B).sum() / (A.norm() * B.norm()))
    return math.sqrt(max(0.0, 1.0 - cos * cos))


def _median_angle(Fh: torch.Tensor) -> float:
    """The median angle (rad) between two distinct unit rows of Fh (N, d), 2 arcsin(||x - x'|| / 2).

    ||x - x'||^2 is taken from the Gram of the rows centred on their mean (distances do not move
    with a common shift), so nearly parallel rows (the softmax features at a high temperature lie
    within 1e-4 rad of each other) keep their digits, at the cost of one (N, N) product
    (a cdist of wide rows is ten times slower).
    """
    Fc = Fh - Fh.mean(0)
    sq = (Fc * Fc).sum(1)
    D2 = (sq[:, None] + sq[None, :] - 2 * Fc @ Fc.T).clamp_min(0.0)
    iu = torch.triu_indices(Fh.shape[0], Fh.shape[0], 1)
    return float((2 * torch.asin((D2[iu[0], iu[1]].sqrt() / 2).clamp(max=1.0))).median())


def proxy_terms(X, temperature: float, X_keys=None, *, spectra: bool = False) -> dict[str, Any]:
    """How far linearized attention is from softmax attention at one temperature (float64).

    ``X`` (N, d) queries, ``X_keys`` (n, d) keys (default ``X``); with the parts of
    :func:`linattn.attention.softmax_expansion` (F = exact, xbar, F1 = first order, R =
    remainder, P = the proxy G X = X K^T K, Z = the centring term (G 1) xbar^T), Frobenius norms:

    - ``constant`` ||1 xbar^T||, ``first_order`` ||F1||, ``remainder`` ||R||, ``linearized``
      ||P|| / (n T) and ``centring`` ||Z|| / (n T) (the two parts of F1 before they cancel);
    - ``expansion_error`` = ||R|| / ||F - 1 xbar^T||: the first-order expansion's relative error;
    - ``proxy_error`` = min_b ||(F - 1 xbar^T) - b P|| / ||F - 1 xbar^T||: the proxy as a model of
      softmax's varying part, with its dropped scale 1 / (n T) restored at best (the sine of the
      angle between the two, 0 to 1);
    - ``centred_error``: the same for the centred proxy X Sigma (the proxy with its centring term
      kept), which is the first-order term exactly, so this tends to 0 with ``expansion_error``;
    - ``feature_angle``: the median over rows of the angle between the unit features the network
      sees, F_i / ||F_i|| and P_i / ||P_i|| (rad);
    - ``spread_softmax`` and ``spread_proxy``: the median angle between two distinct unit features,
      of softmax and of the proxy (how far apart the network's inputs are).

    ``spectra=True`` adds :func:`feature_spectra` of F under the prefix ``softmax_`` (queries must
    be the keys then: the Gram is that of the training set).
    """
    from .models import unit_rows

    T = check_temperature(temperature)
    e = softmax_expansion(X, X_keys, T)
    Q = as_tensor(X, "X", ndim=2)
    K = Q if X_keys is None else as_tensor(X_keys, "X_keys", ndim=2)
    Kc = K - K.mean(0)
    n = K.shape[0]
    Q_Sigma = (Q @ Kc.T) @ Kc / n  # X Sigma without forming Sigma (d x d)
    dev = e.exact - e.constant
    Fh, Ph = unit_rows(e.exact), unit_rows(e.linearized)
    out: dict[str, Any] = {
        "temperature": T,
        "constant": _fro(e.constant),
        "first_order": _fro(e.first_order),
        "remainder": _fro(e.remainder),
        "linearized": _fro(e.linearized) / (n * T),
        "centring": _fro(e.centring) / (n * T),
        "expansion_error": _fro(e.remainder) / _fro(dev),
        "proxy_error": _sine(dev, e.linearized),
        "centred_error": _sine(dev, Q_Sigma),
        "feature_angle": float(_row_angles(Fh, Ph).median()),
        "spread_softmax": _median_angle(Fh),
        "spread_proxy": _median_angle(Ph),
    }
    if spectra:
        if X_keys is not None:
            raise ValueError("spectra=True needs X_keys=None (the Gram of the training set's own features)")
        out.update(feature_spectra(e.exact, "softmax"))
    return out


def _row_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Angles (N,) between the unit rows A_i and B_i, 2 arcsin(||A_i - B_i|| / 2)."""
    return 2 * torch.asin(((A - B).norm(dim=1) / 2).clamp(max=1.0))


def softmax_feature_gram(X, temperature: float, *, normalize: bool = False) -> torch.Tensor:
    """K = F F^T (n, n, float64), F = softmax_attention(X, X, T): the Gram of the softmax features.

    The analogue of G^3 = (G X)(G X)^T, the Gram of the linearized features. With
    ``normalize=True`` the rows of F are unit-normalised first (the Gram the hidden layer of the
    softmax-attention network sees, the analogue of D^{-1/2} G^3 D^{-1/2}).
    """
    from .models import unit_rows

    F = softmax_attention(X, X, check_temperature(temperature))
    if normalize:
        F = unit_rows(F)
    K = F @ F.T
    return (K + K.T) / 2


def _kappa_of_features(F: torch.Tensor) -> tuple[float | None, int]:
    """kappa(F F^T) from the singular values of F (n, d), and the numerical rank; None where the
    smallest needed eigenvalue is below float64 resolution (:class:`linattn.spectra.RankDeficientError`)."""
    from .spectra import RankDeficientError, kappa_d

    try:
        return kappa_d(F), min(F.shape)
    except RankDeficientError as err:
        return None, err.rank


def feature_spectra(F, name: str = "features") -> dict[str, Any]:
    """Condition numbers of the kernels a feature matrix F (n, d) induces (float64).

    ``kappa_{name}``: of its Gram F F^T, from the singular values of F (the accurate route,
    :func:`linattn.spectra.kappa_d`; for F = G X this is kappa(G^3)); ``kappa_{name}_unit``: of the
    Gram of the unit-normalised rows (what the hidden layer sees); ``kappa_{name}_ntk``: of the
    infinite-width NTK of the two-layer ReLU net on the unit rows (:func:`linattn.kernels.ntk_relu`,
    from its eigenvalues) and ``lmin_{name}_ntk`` its smallest eigenvalue. A ratio beyond float64
    resolution is None, with the numerical rank in ``rank_*`` (n otherwise).
    ``top_share_{name}``: the top eigenvalue's share of the trace of the unit Gram.
    """
    from .kernels import ntk_relu
    from .models import unit_rows
    from .spectra import RankDeficientError, eigvalsh_desc, kappa

    F = as_tensor(F, "F", ndim=2, min_rows=2)
    Fh = unit_rows(F)
    out: dict[str, Any] = {}
    out[f"kappa_{name}"], out[f"rank_{name}"] = _kappa_of_features(F)
    out[f"kappa_{name}_unit"], out[f"rank_{name}_unit"] = _kappa_of_features(Fh)
    s = torch.linalg.svdvals(Fh)
    out[f"top_share_{name}"] = float(s[0] ** 2 / (s**2).sum())
    Th = ntk_relu(Fh)
    try:
        out[f"kappa_{name}_ntk"], out[f"rank_{name}_ntk"] = kappa(Th), F.shape[0]
    except RankDeficientError as err:
        out[f"kappa_{name}_ntk"], out[f"rank_{name}_ntk"] = None, err.rank
    out[f"lmin_{name}_ntk"] = float(eigvalsh_desc(Th)[-1])
    return out


def kernel_spectra(X, temperature: float) -> dict[str, Any]:
    """:func:`feature_spectra` of the softmax features F = softmax_attention(X, X, T) (prefix
    ``softmax``) and of the proxy's P = G X (prefix ``proxy``; P P^T = G^3), keys = queries = X
    (n, d), float64; plus ``kappa_G`` = kappa_d(X) (None if beyond float64) and ``temperature``, ``n``.
    """
    T = check_temperature(temperature)
    A = as_tensor(X, "X", ndim=2, min_rows=2)
    out: dict[str, Any] = {"temperature": T, "n": A.shape[0]}
    out["kappa_G"], out["rank_G"] = _kappa_of_features(A)
    out.update(feature_spectra(softmax_attention(A, A, T), "softmax"))
    out.update(feature_spectra(A @ (A.T @ A), "proxy"))
    return out


# --------------------------------------------------------------------------- the algebra, in sympy


def expansion_symbolic(n: int = 3, d: int = 2, order: int = 2) -> dict[str, Any]:
    """The Taylor series of softmax attention in eps = 1/T, for one query x and n keys k_j in R^d (sympy).

    att(x) = sum_j exp(eps <x, k_j>) k_j / sum_j exp(eps <x, k_j>) = N(eps) / D(eps). Expanding the
    exponentials, N = sum_p eps^p N_p and D = sum_p eps^p D_p, and dividing the power series,
    c_p = (N_p - sum_{q < p} c_q D_{p-q}) / D_0 (exact polynomial algebra); the coefficients are
    compared with the cumulant forms

        c_0 = kbar,   c_1 = Sigma x,   c_2 = (1/2) E_j[(k_j - kbar) <x, k_j - kbar>^2]

    (Sigma = E_j[(k_j - kbar)(k_j - kbar)^T], E_j the mean over keys), and the first-order term
    with the paper's pieces: n c_1 = (G X)_x - (G 1)_x kbar = x^T K^T K - (x^T K^T 1) kbar, i.e.
    K^T K_c = K_c^T K_c. Returned: ``x``, ``K`` (n x d symbols), ``eps``, ``coefficients``
    (c_0..c_order, d x 1 each), ``cumulant`` (the forms above, up to order 2), ``holds`` (each
    difference expands to 0), ``proxy_identity`` (the last identity holds), ``C_split`` (K^T K -
    n (Sigma + kbar kbar^T) expands to 0: the proxy's C is the uncentred second moment).
    """
    import sympy as sp

    n = check_int(n, "n", minimum=1, maximum=6)
    d = check_int(d, "d", minimum=1, maximum=4)
    order = check_int(order, "order", minimum=0, maximum=3)
    eps = sp.Symbol("epsilon")
    x = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"x_{i + 1}", real=True))
    K = sp.Matrix(n, d, lambda j, i: sp.Symbol(f"k_{j + 1}{i + 1}", real=True))
    keys = [K.row(j).T for j in range(n)]
    s = [(x.T * k)[0, 0] for k in keys]
    # exp(eps s) = sum_p (eps s)^p / p!: numerator N = sum_p eps^p N_p, normaliser D = sum_p eps^p D_p
    N = [sum((sj**p / sp.factorial(p) * k for sj, k in zip(s, keys)), sp.zeros(d, 1)) for p in range(order + 1)]
    D = [sum(sj**p for sj in s) / sp.factorial(p) for p in range(order + 1)]
    # att = N / D as a power series: c_p = (N_p - sum_{q < p} c_q D_{p - q}) / D_0
    coeffs = []
    for p in range(order + 1):
        rest = sum((coeffs[q] * D[p - q] for q in range(p)), sp.zeros(d, 1))
        coeffs.append(((N[p] - rest) / D[0]).applyfunc(sp.expand))
    kbar = sum(keys, sp.zeros(d, 1)) / n
    cen = [k - kbar for k in keys]
    Sigma = sum((c * c.T for c in cen), sp.zeros(d, d)) / n
    cum = [kbar, Sigma * x, sum(((c * ((x.T * c)[0, 0]) ** 2) for c in cen), sp.zeros(d, 1)) / (2 * n)]
    holds = all(all(sp.expand(e) == 0 for e in (coeffs[p] - cum[p])) for p in range(min(order, 2) + 1))
    ones = sp.ones(n, 1)
    lin = K.T * (K * x)                       # (G X)_x: x^T K^T K, as a column
    centring = kbar * ((K * x).T * ones)[0, 0]  # (G 1)_x kbar
    proxy_identity = all(sp.expand(e) == 0 for e in (lin - centring - n * Sigma * x))
    C_split = all(sp.expand(e) == 0 for e in (K.T * K - n * (Sigma + kbar * kbar.T)))
    return {"x": x, "K": K, "eps": eps, "coefficients": coeffs, "cumulant": cum[: order + 1], "holds": holds,
            "proxy_identity": proxy_identity, "C_split": C_split, "Sigma": Sigma, "kbar": kbar}
