"""The dual implication (Part III): fit and influence malleability of four kernels on targets built
in several ways, some through one model's own features and some independent of both models.

A *target construction* turns a data set into real training and test targets:

- ``"unit_top"`` / ``"unit_tail"``: f*(x) = <x^, v>, x^ = x / ||x|| (the 2L-ReLU's own input), v a
  random combination of the right singular vectors j = 1..5 (top) or 101..150 (tail) of the unit
  training rows;
- ``"attn_top"``: f*(x) = <a(x), v>, a(x) = C x^ / ||C x^|| (MLP-Attn's own unit attention
  features, C = X^_train^T X^_train), v in the top five singular directions of those features;
- ``"raw_top"``: f*(x) = <x, v> on the raw pixels *before* any normalisation, v in the top five
  singular directions of the raw training pixels (aligned with the data, defined by neither model);
- ``"raw_random"``: f*(x) = <x, v>, raw pixels, v ~ N(0, I_d) (defined by neither model, not aligned);

each scaled to unit mean square on the training set; and class labels (:func:`label_targets`,
+-1 with a fraction of the training labels flipped, the test labels clean).

:func:`dual_rows` fits kernel ridge with each kernel of :data:`KERNELS` (``kernels.data_kernel``),
reports the training residual and the test error, and runs
:func:`linattn.malleability.kernel_malleability` on the same data, targets and ridge: tidy rows,
one per (draw, kernel), with the flip count so that :func:`linattn.stats.pooled_rate` gives a
Wilson interval over the draws.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch

from . import kernels, models, predictors
from . import malleability as mall
from ._validation import as_tensor, check_consistent_length, check_option, check_range

__all__ = ["KERNELS", "CONSTRUCTIONS", "linear_target", "label_targets", "dual_rows", "wins", "flip_summary",
           "fit_fragility"]

KERNELS = {"G": "linear", "G^3": "attention", "NTK 2L-ReLU": "ntk_relu", "NTK MLP-Attn": "ntk_attn"}
CONSTRUCTIONS = ("unit_top", "unit_tail", "attn_top", "raw_top", "raw_random")
_TOP, _TAIL = range(0, 5), range(100, 150)

Construction = Literal["unit_top", "unit_tail", "attn_top", "raw_top", "raw_random"]


def _features(construction: str, X_train: torch.Tensor, X_test: torch.Tensor):
    if construction.startswith("raw"):
        return X_train, X_test
    U, U_test = models.attention_keys(X_train), models.attention_keys(X_test)
    if construction.startswith("unit"):
        return U, U_test
    C = U.T @ U
    return models.unit_rows(U @ C), models.unit_rows(U_test @ C)


def linear_target(construction: Construction, X_train, X_test, *, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Real targets (y_train (n,), y_test (t,)) of one linear construction (see the module docstring).

    X_train (n, d) and X_test (t, d) are raw pixels (as :func:`linattn.data.task_data` returns
    them); the direction v is drawn with ``seed``; both targets are divided by the root mean square
    of y_train. The tail construction needs n >= 150.
    """
    check_option(construction, "construction", CONSTRUCTIONS)
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test has d = {X_test.shape[1]} columns but X_train has d = {X_train.shape[1]}")
    F, F_test = _features(construction, X_train, X_test)
    gen = torch.Generator().manual_seed(int(seed))
    if construction == "raw_random":
        v = torch.randn(F.shape[1], generator=gen, dtype=torch.float64)
    else:
        js = list(_TAIL if construction.endswith("tail") else _TOP)
        Vh = torch.linalg.svd(F, full_matrices=False).Vh
        if js[-1] >= Vh.shape[0]:
            raise ValueError(f"construction {construction!r} needs {js[-1] + 1} singular directions, "
                             f"X_train gives {Vh.shape[0]}; pass more training rows")
        v = Vh[js].T @ torch.randn(len(js), generator=gen, dtype=torch.float64)
    y, y_test = F @ v, F_test @ v
    scale = y.pow(2).mean().sqrt()
    return y / scale, y_test / scale


def label_targets(y_train, y_test, *, positive: int = 1, noise: float = 0.0, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """+-1 targets from integer labels: +1 where the label is ``positive``, -1 elsewhere.

    ``noise`` in [0, 1): the fraction of the *training* labels whose sign is flipped
    (round(noise n) points, chosen with ``seed``); the test labels stay clean.
    """
    y_train = torch.as_tensor(y_train)
    y_test = torch.as_tensor(y_test)
    noise = check_range(noise, "noise", 0.0, 1.0, hi_open=True)
    pm = (y_train == positive).to(torch.float64) * 2 - 1
    pm_test = (y_test == positive).to(torch.float64) * 2 - 1
    k = int(round(noise * pm.shape[0]))
    if k:
        gen = torch.Generator().manual_seed(int(seed))
        pm = pm.clone()
        pm[torch.randperm(pm.shape[0], generator=gen)[:k]] *= -1
    return pm, pm_test


def _reusing(kfn, X_train: torch.Tensor, X_test: torch.Tensor, K: torch.Tensor, K_test: torch.Tensor):
    """``kfn`` that returns the precomputed K (X_train, X_train) and K_test (X_test, X_train) when called
    on exactly those inputs (compared by value) and computes every other pair afresh."""
    def kernel(X, X2):
        if X2.shape == X_train.shape and torch.equal(X2, X_train):
            if X.shape == X_train.shape and torch.equal(X, X_train):
                return K
            if X.shape == X_test.shape and torch.equal(X, X_test):
                return K_test
        return kfn(X, X2)
    kernel.__name__ = kfn.__name__
    return kernel


def dual_rows(X_train, X_test, targets: dict, *, ridge: float = 1e-2, eps: float = 0.1, tau: float = 0.1,
              seed: int = 0, kernel_names=tuple(KERNELS), **info: Any) -> list[dict]:
    """Fit and malleability of kernel ridge on real targets: one row a (target, kernel).

    ``targets`` maps a name to ``(y_train (n,), y_test (t,))`` or ``(y_train, y_test, y_test_sign)``
    with +-1 test labels. For each name in ``kernel_names`` (keys of :data:`KERNELS`):
    K = data_kernel(kind) on X_train, computed once for all targets; kernel ridge with ``ridge``;
    ``train_mse`` = mean (y_train - f(X_train))^2 (the training bias for noiseless targets),
    ``test_mse`` = mean (y_test - f(X_test))^2 and, with labels, ``test_err`` = the fraction of test
    points with sign f != y_test_sign (NaN without). Then
    :func:`linattn.malleability.kernel_malleability` (random signs of size ``eps`` on the top ``tau``
    points by |influence on the test loss|, noise seed ``seed``; the kernel before the intervention
    is the one already computed): ``flip_rate``, ``n_flips`` of ``n_selected``, ``spearman``,
    ``overlap``. ``info`` is copied into every row.
    """
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    if not targets:
        raise ValueError("targets is empty; pass {name: (y_train, y_test)}")
    checked = {}
    for tname, ys in targets.items():
        y, yt = as_tensor(ys[0], f"{tname}: y_train", ndim=1), as_tensor(ys[1], f"{tname}: y_test", ndim=1)
        check_consistent_length(X_train, y, names=("X_train", f"{tname}: y_train"), what="target rows")
        check_consistent_length(X_test, yt, names=("X_test", f"{tname}: y_test"), what="target rows")
        checked[tname] = (y, yt, ys[2] if len(ys) > 2 else None)
    rows = []
    for name in kernel_names:
        kind = check_option(name, "kernel name", tuple(KERNELS))
        kfn = kernels.data_kernel(KERNELS[kind])
        K, K_test = kfn(X_train, X_train), kfn(X_test, X_train)
        kernel = _reusing(kfn, X_train, X_test, K, K_test)
        Ks = 0.5 * (K + K.T)
        for tname, (y, yt, sign) in checked.items():
            kr = predictors.KernelRidge(ridge).fit(Ks, y)
            f_test = kr.predict(K_test)
            err = float("nan") if sign is None else float((torch.sign(f_test) != torch.as_tensor(sign)).double().mean())
            res = mall.kernel_malleability(kernel, X_train, y, X_test, yt, eps=eps, tau=tau, ridge=ridge, seed=seed)
            rows.append({**info, "target": tname, "kernel": name, "seed": seed,
                         "train_mse": float((y - kr.predict(Ks)).pow(2).mean()),
                         "test_mse": float((yt - f_test).pow(2).mean()), "test_err": err,
                         "flip_rate": res.flip_rate, "n_flips": int(round(res.flip_rate * res.tracked.shape[0])),
                         "n_selected": int(res.tracked.shape[0]), "spearman": res.spearman, "overlap": res.overlap})
    return rows


# --------------------------------------------------------------------------- reading the rows


def _by(rows, *keys) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def wins(rows: list[dict], better: str, than: str, value: str = "test_mse") -> dict[str, tuple[int, int]]:
    """For each target: (the number of draws in which kernel ``better`` has the lower ``value`` than
    kernel ``than``, the number of draws in which both were measured). Rows as :func:`dual_rows` gives."""
    cells = _by(rows, "target", "seed")
    out: dict[str, list[int]] = {}
    for (target, _seed), group in cells.items():
        vals = {r["kernel"]: r[value] for r in group}
        if better in vals and than in vals:
            w = out.setdefault(target, [0, 0])
            w[0] += int(vals[better] < vals[than])
            w[1] += 1
    if not out:
        raise ValueError(f"no draw holds both kernels {better!r} and {than!r}")
    return {t: (w[0], w[1]) for t, w in out.items()}


def flip_summary(rows: list[dict], level: float = 0.95) -> dict[tuple[str, str], dict[str, float]]:
    """For each (target, kernel): the flip count pooled over draws with its Wilson interval
    (:func:`linattn.stats.pooled_rate`: rate, k, n, lo, hi) and Spearman's rho over the draws
    (rho_mean, rho_min, rho_max), plus the mean train_mse and test_mse (and their min and max)."""
    from . import stats

    out = {}
    for key, group in _by(rows, "target", "kernel").items():
        s = stats.pooled_rate([r["n_flips"] for r in group], [r["n_selected"] for r in group], level)
        for field, name in (("spearman", "rho"), ("train_mse", "train"), ("test_mse", "test"), ("test_err", "err")):
            v = [float(r[field]) for r in group]
            s.update({f"{name}_mean": sum(v) / len(v), f"{name}_min": min(v), f"{name}_max": max(v)})
        s["draws"] = len(group)
        out[key] = s
    return out


def fit_fragility(rows: list[dict], targets=None) -> dict[str, float]:
    """Spearman's rho (and its p-value, n) between log test_mse and flip_rate over the rows (one a
    draw and kernel) whose target is in ``targets`` (default all): negative when the better a kernel
    fits, the more of its influence signs flip."""
    from scipy.stats import spearmanr

    sel = [r for r in rows if targets is None or r["target"] in targets]
    if len(sel) < 3:
        raise ValueError(f"fit_fragility needs at least 3 rows, got {len(sel)}; check the target names")
    res = spearmanr([math.log(r["test_mse"]) for r in sel], [r["flip_rate"] for r in sel])
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": len(sel)}
