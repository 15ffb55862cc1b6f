"""Influence malleability: how far an l_inf perturbation of the training set moves NTK influences.

Protocol (v1 of the paper as far as known; the choices the paper leaves open are parameters):

1. Kernel of the model as given (at initialisation or after training: the caller passes the model):
   K = kernel_fn(model, X_train, X_train) (n, n) and K_test = kernel_fn(model, X_test, X_train) (t, n),
   by default the empirical NTK ``linattn.ntk.empirical_ntk``.
2. Exact leave-one-out influences I (n, t) of kernel ridge on K (:func:`linattn.influence.influence_loo`,
   sign: I > 0 means removing the point lowers the readout), readout = the test point's true-class
   output; one score per training point s_i = influence_scores(I, aggregate) (default: the mean over
   the test points, signed).
3. Select the top tau fraction of training points by |s_i| (k = round(tau n), ties by index).
4. Intervene:
   ``"transformed"``: replace the selected points by adversarial versions (attack of the model's
   loss at those points, labels kept); ``"adversarial"``: perturb every training point;
   ``"curated"``: remove the selected points.
   For MLP-Attn, ``attention="recompute"`` rebuilds the attention C = X'^T X' from the intervened
   training set (the model as defined: same W, new LinearizedAttention, so test features move
   too; the keys X' are the unit-normalised intervened rows, see :func:`attention_keys`);
   ``attention="fixed"`` keeps the original C and only moves the inputs. The attack itself
   always differentiates the model as trained (C fixed during the attack).
5. Recompute features, kernel and influences with the same W, then report
   - flip rate: the fraction of the tracked points whose score changes sign (tracked = the selected
     points for "transformed" and "adversarial"; for "curated", whose selected points are gone, all
     remaining points),
   - Spearman's rho between scores before and after over all (remaining) points,
   - overlap of the top-k sets by |s| before and after (for "curated" the before-ranking is
     restricted to the remaining points and k = round(tau (n - k_removed))).

``attack="noise"`` is the control: random signs of the same eps (:func:`linattn.attacks.random_sign_noise`).

Also here: :func:`sweep` (plain loops over width, seed, eps, tau, attack, intervention, attention
mode -> tidy rows), :func:`kernel_malleability` and :func:`data_kernel` (the same measurement for a
kernel without a network: G, G^3 and the infinite-width NTKs), and the v1 tables:
:class:`TableConfig` (quick and paper scale), :func:`paper_model`, :func:`train_models`,
:func:`table_rows`, :func:`summarize`, and a command line (``python -m linattn.malleability``) that
stores rows with :mod:`linattn.results`.

Example
-------
>>> import torch
>>> from linattn.models import relu_net
>>> from linattn.malleability import malleability
>>> X = torch.rand(40, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> y = torch.arange(40) % 3
>>> r = malleability(relu_net(12, 32, 3, dtype=torch.float64), X[:30], y[:30], X[30:], y[30:],
...                  attack="fgsm", eps=0.1, tau=0.2)
>>> r.n_selected, 0.0 <= r.flip_rate <= 1.0
(6, True)
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch
from scipy.stats import spearmanr

from ._validation import as_tensor, check_int, check_range
from .attacks import attack as run_attack
from .attacks import loss_closure
from .attention import LinearizedAttention
from .influence import influence_loo, influence_scores
from .models import unit_rows

__all__ = [
    "InfluenceState",
    "MalleabilityResult",
    "regression_targets",
    "model_influence",
    "select_top",
    "attention_keys",
    "with_attention_keys",
    "malleability",
    "sweep",
    "data_kernel",
    "kernel_malleability",
    "TableConfig",
    "paper_model",
    "train_models",
    "table_rows",
    "summarize",
]

KernelFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _default_kernel_fn() -> KernelFn:
    try:
        from .ntk import empirical_ntk
    except ImportError as exc:  # pragma: no cover - depends on the package's state
        raise ImportError(
            "linattn.ntk.empirical_ntk is not available; pass kernel_fn=(model, X, X2) -> K explicitly"
        ) from exc
    return empirical_ntk


def regression_targets(y, n_outputs: int, *, coding: Literal["onehot", "pm1"] = "onehot") -> torch.Tensor:
    """Kernel-ridge targets from class indices y (N,): float64 (N,) +-1 for one output
    (class 1 -> +1, class 0 -> -1), else (N, C) one-hot (``coding="onehot"``) or +-1 (``"pm1"``)."""
    yt = as_tensor(y, "y", ndim=1, dtype=None)
    if yt.is_floating_point():
        if not bool((yt == yt.round()).all()):
            raise ValueError("y must hold class indices (integers)")
        yt = yt.long()
    n_outputs = check_int(n_outputs, "n_outputs")
    C = max(n_outputs, 2)
    if bool((yt < 0).any()) or bool((yt >= C).any()):
        raise ValueError(f"class indices must lie in [0, {C - 1}], got min {int(yt.min())}, max {int(yt.max())}")
    if n_outputs == 1:
        return 2.0 * yt.to(torch.float64) - 1.0
    if coding not in ("onehot", "pm1"):
        raise ValueError(f"coding must be 'onehot' or 'pm1', got {coding!r}")
    Y = torch.nn.functional.one_hot(yt, n_outputs).to(torch.float64)
    return Y if coding == "onehot" else 2.0 * Y - 1.0


def _test_labels(y_test, n_outputs: int) -> torch.Tensor:
    """Labels for the true-class readout: +-1 for one output, class indices for C outputs."""
    yt = as_tensor(y_test, "y_test", ndim=1, dtype=None).long()
    return 2.0 * yt.to(torch.float64) - 1.0 if n_outputs == 1 else yt


@dataclass
class InfluenceState:
    """Kernel, influences and scores of one model on one training set.

    K (n, n), K_test (t, n), I (n, t) and scores (n,), all float64.
    """

    K: torch.Tensor
    K_test: torch.Tensor
    I: torch.Tensor
    scores: torch.Tensor


def _kernel(kernel_fn: KernelFn, model, X, X2) -> torch.Tensor:
    with torch.no_grad():
        K = kernel_fn(model, X, X2)
    K = torch.as_tensor(K).to(torch.float64)
    if K.ndim != 2 or K.shape != (X.shape[0], X2.shape[0]):
        raise ValueError(
            f"kernel_fn must return a ({X.shape[0]}, {X2.shape[0]}) matrix, got {tuple(K.shape)}"
        )
    return K


def model_influence(
    model: torch.nn.Module,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    lam: float = 1e-3,
    kernel_fn: KernelFn | None = None,
    target: Literal["true_class", "output", "loss"] = "true_class",
    aggregate: str = "mean",
    coding: Literal["onehot", "pm1"] = "onehot",
) -> InfluenceState:
    """Kernel (n, n) and (t, n), LOO influences I (n, t) and scores (n,) of ``model`` (float64).

    The training kernel is symmetrised, (K + K^T) / 2, to remove round-off of the kernel function.
    Targets: :func:`regression_targets` of y_train; readout: ``target`` of
    :func:`linattn.influence.influence_loo` (the true-class output by default).
    """
    kernel_fn = _default_kernel_fn() if kernel_fn is None else kernel_fn
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    C = int(model.n_outputs)
    Y = regression_targets(y_train, C, coding=coding)
    if Y.shape[0] != X_train.shape[0]:
        raise ValueError(f"y_train has {Y.shape[0]} labels for {X_train.shape[0]} training points")
    yt = _test_labels(y_test, C)
    if yt.shape[0] != X_test.shape[0]:
        raise ValueError(f"y_test has {yt.shape[0]} labels for {X_test.shape[0]} test points")
    if target == "loss":
        yt = regression_targets(y_test, C, coding=coding)
    K = _kernel(kernel_fn, model, X_train, X_train)
    K = 0.5 * (K + K.T)
    K_test = _kernel(kernel_fn, model, X_test, X_train)
    I = influence_loo(K, Y, K_test, lam=lam, y_test=yt, target=target, output_class=0 if target == "output" else None)
    return InfluenceState(K=K, K_test=K_test, I=I, scores=influence_scores(I, aggregate))


def _top_count(n: int, tau: float) -> int:
    k = int(round(tau * n))
    if k < 1:
        raise ValueError(f"tau = {tau} of n = {n} points selects no point; raise tau or use more points")
    return k


def select_top(scores, tau: float) -> torch.Tensor:
    """Indices (k,) of the k = round(tau n) largest |scores| (n,), largest first, ties by index."""
    s = as_tensor(scores, "scores", ndim=1, min_rows=1)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    k = _top_count(s.shape[0], tau)
    order = np.lexsort((np.arange(s.shape[0]), -s.abs().numpy()))  # by -|s|, then by index
    return torch.as_tensor(order[:k].copy(), dtype=torch.long)


def attention_keys(X, *, unit_keys: bool = True) -> torch.Tensor:
    """The keys an MLP-Attn model attends over, from a training set X (n, d) of pixels:
    the unit-normalised rows (``unit_keys=True``, the paper's preprocessing) or X itself."""
    X = as_tensor(X, "X", ndim=2, min_rows=1)
    return unit_rows(X) if unit_keys else X


def with_attention_keys(model: torch.nn.Module, X_keys) -> torch.nn.Module:
    """A copy of an MLP-Attn model whose attention is rebuilt from ``X_keys`` (same W and head).

    A model without attention (``feature_map`` None, the 2L-ReLU) is returned unchanged.
    """
    if getattr(model, "feature_map", None) is None:
        return model
    if not isinstance(model.feature_map, LinearizedAttention):
        raise TypeError("with_attention_keys needs a model whose feature_map is a LinearizedAttention")
    new = copy.deepcopy(model)
    new.feature_map = LinearizedAttention(X_keys)
    return new


def _check_keys(model: torch.nn.Module, X_train: torch.Tensor, unit_keys: bool) -> None:
    """Refuse to recompute the attention of a model whose C was not built from X_train that way."""
    fm = getattr(model, "feature_map", None)
    if fm is None:
        return
    keys = attention_keys(X_train, unit_keys=unit_keys)
    V = torch.randn(keys.shape[1], 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    CV = keys.T @ (keys @ V)  # C V without forming C
    if fm.C.shape != (keys.shape[1], keys.shape[1]) or not torch.allclose(
        fm.C.to(torch.float64) @ V, CV, rtol=1e-5, atol=1e-8 * float(CV.abs().max())
    ):
        raise ValueError(
            "the model's attention C was not built from X_train with unit_keys="
            f"{unit_keys}; build it with mlp_attn(attention_keys(X_train, unit_keys={unit_keys}), ...), "
            "flip unit_keys, or use attention='fixed'"
        )


@dataclass
class MalleabilityResult:
    """Outcome of one intervention (see the module docstring for the definitions).

    ``selected`` (k,) indices of the top-tau points; ``tracked`` the indices the flip rate is taken
    over (in the original numbering); ``scores_before`` (n,), ``scores_after`` (n') with n' = n
    or n - k (curated, in the order of the remaining points); ``X_after`` the intervened training set.
    """

    flip_rate: float
    spearman: float
    overlap: float
    n_selected: int
    selected: torch.Tensor
    tracked: torch.Tensor
    scores_before: torch.Tensor
    scores_after: torch.Tensor
    X_after: torch.Tensor
    config: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """A flat dict: the config plus flip_rate, spearman, overlap and n_selected."""
        return {
            **self.config,
            "flip_rate": self.flip_rate,
            "spearman": self.spearman,
            "overlap": self.overlap,
            "n_selected": self.n_selected,
        }


def _flip_rate(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((torch.sign(before) != torch.sign(after)).double().mean())


def _overlap(before: torch.Tensor, after: torch.Tensor, tau: float) -> float:
    k = int(round(tau * before.shape[0]))
    if k < 1:
        return float("nan")
    a = set(select_top(before, tau).tolist())
    b = set(select_top(after, tau).tolist())
    return len(a & b) / k


def malleability(
    model: torch.nn.Module,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    intervention: Literal["transformed", "adversarial", "curated"] = "transformed",
    attack: Literal["fgsm", "pgd", "mim", "noise"] = "pgd",
    eps: float = 0.3,
    tau: float = 0.1,
    attention: Literal["recompute", "fixed"] = "recompute",
    unit_keys: bool = True,
    lam: float = 1e-3,
    kernel_fn: KernelFn | None = None,
    loss: Literal["ce", "mse", "margin"] | None = None,
    aggregate: str = "mean",
    coding: Literal["onehot", "pm1"] = "onehot",
    seed: int = 0,
    clip=(0.0, 1.0),
    attack_kwargs: dict | None = None,
    before: InfluenceState | None = None,
    X_after=None,
) -> MalleabilityResult:
    """Flip rate, Spearman rho and top-tau overlap of NTK influence scores under one intervention.

    X_train (n, d) and X_test (t, d) are pixels in [0, 1]; y_train (n,), y_test (t,) class indices.
    ``unit_keys``: with ``attention="recompute"`` the new keys are the unit-normalised intervened
    rows (True, the paper's preprocessing; the model must then have been built as
    ``mlp_attn(attention_keys(X_train), ...)``, which is checked) or the raw rows (False).
    ``loss`` is the loss the attack climbs (default: "ce" for C >= 2 outputs, "mse" for one, the
    paper's training losses). ``before`` reuses an :class:`InfluenceState` of the same model and
    data. ``X_after`` (n, d) skips the attack: the intervened training set of an earlier call with
    the same model, data, intervention, attack, eps, tau and seed (e.g. its ``X_after``, to run the
    other attention mode on the same perturbed points); it must differ from X_train only in the
    rows the intervention touches. Errors: eps outside [0, 1], tau outside (0, 1], too few points.
    """
    eps = check_range(eps, "eps (inputs in [0, 1], so eps is a fraction of the pixel range)", 0.0, 1.0)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    if intervention not in ("transformed", "adversarial", "curated"):
        raise ValueError(f"intervention must be 'transformed', 'adversarial' or 'curated', got {intervention!r}")
    if attention not in ("recompute", "fixed"):
        raise ValueError(f"attention must be 'recompute' or 'fixed', got {attention!r}")
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    n = X_train.shape[0]
    k = _top_count(n, tau)
    if intervention == "curated" and n - k < 2:
        raise ValueError(f"curating k = {k} of n = {n} points leaves fewer than 2; lower tau or use more points")
    if attention == "recompute":
        _check_keys(model, X_train, unit_keys)
    kernel_fn = _default_kernel_fn() if kernel_fn is None else kernel_fn
    kw = dict(lam=lam, kernel_fn=kernel_fn, aggregate=aggregate, coding=coding)
    if before is None:
        before = model_influence(model, X_train, y_train, X_test, y_test, **kw)
    if before.scores.shape[0] != n:
        raise ValueError(f"before has {before.scores.shape[0]} scores for n = {n} training points")
    selected = select_top(before.scores, tau)
    C = int(model.n_outputs)
    loss = ("ce" if C >= 2 else "mse") if loss is None else loss

    def perturb(idx: torch.Tensor) -> torch.Tensor:
        fn = loss_closure(model, y_train[idx], loss)
        return run_attack(attack, fn, X_train[idx], eps=eps, seed=seed, clip=clip, **(attack_kwargs or {}))

    if intervention == "curated":
        keep = torch.ones(n, dtype=torch.bool)
        keep[selected] = False
        X_after, y_after = X_train[keep], y_train[keep]
        tracked = torch.nonzero(keep)[:, 0]
    else:
        idx = selected if intervention == "transformed" else torch.arange(n)
        if X_after is None:
            X_after = X_train.clone()
            X_after[idx] = perturb(idx).to(X_after.dtype)
        else:
            X_after = as_tensor(X_after, "X_after", ndim=2)
            if X_after.shape != X_train.shape:
                raise ValueError(f"X_after must have the shape of X_train {tuple(X_train.shape)}")
            untouched = torch.ones(n, dtype=torch.bool)
            untouched[idx] = False
            if not torch.equal(X_after[untouched], X_train[untouched]):
                raise ValueError("X_after changes rows the intervention does not touch; pass the X_after "
                                 "of a call with the same intervention, tau and model")
            if float((X_after - X_train).abs().max()) > eps + 1e-6:
                raise ValueError(f"X_after moves points by more than eps = {eps}")
        y_after = y_train
        tracked = selected
    if attention == "recompute":
        model_after = with_attention_keys(model, attention_keys(X_after, unit_keys=unit_keys))
    else:
        model_after = model
    after = model_influence(model_after, X_after, y_after, X_test, y_test, **kw)

    s_before = before.scores if intervention != "curated" else before.scores[tracked]
    s_after = after.scores
    if intervention == "curated":
        flip = _flip_rate(s_before, s_after)
    else:
        flip = _flip_rate(s_before[selected], s_after[selected])
    rho = float(spearmanr(s_before.numpy(), s_after.numpy()).statistic)
    overlap = _overlap(s_before, s_after, tau)
    config = {
        "model": getattr(model, "kind", type(model).__name__),
        "width": getattr(model, "width", None),
        "n": n,
        "t": X_test.shape[0],
        "intervention": intervention,
        "attack": "none" if intervention == "curated" else attack,
        "eps": 0.0 if intervention == "curated" else eps,
        "tau": tau,
        "attention": attention if getattr(model, "feature_map", None) is not None else "n/a",
        "lam": lam,
        "seed": seed,
    }
    return MalleabilityResult(
        flip_rate=flip,
        spearman=rho,
        overlap=overlap,
        n_selected=k,
        selected=selected,
        tracked=tracked,
        scores_before=before.scores,
        scores_after=s_after,
        X_after=X_after,
        config=config,
    )


def sweep(
    model_fn: Callable[[int, int], torch.nn.Module],
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    widths: Iterable[int] = (1024,),
    seeds: Iterable[int] = (0,),
    eps_values: Iterable[float] = (0.3,),
    taus: Iterable[float] = (0.1,),
    attacks: Iterable[str] = ("fgsm", "pgd", "mim", "noise"),
    interventions: Iterable[str] = ("transformed",),
    attention_modes: Iterable[str] = ("recompute",),
    **kwargs,
) -> list[dict[str, Any]]:
    """Plain loops over width, seed, intervention, attack, eps, tau and attention mode: a tidy list of rows.

    ``model_fn(width, seed)`` returns the model to study (untrained for the kernel at initialisation,
    trained for the kernel after training: the caller decides). The kernel and influences before the
    intervention are computed once per model. A "curated" intervention ignores attack and eps and
    runs once per (tau, attention); a model without attention runs one attention mode ("n/a").
    ``kwargs`` go to :func:`malleability`. Each row is :meth:`MalleabilityResult.row`.
    """
    kw_inf = {key: kwargs[key] for key in ("lam", "kernel_fn", "aggregate", "coding") if key in kwargs}
    if "kernel_fn" not in kw_inf or kw_inf["kernel_fn"] is None:
        kw_inf["kernel_fn"] = _default_kernel_fn()
    kwargs = {**kwargs, "kernel_fn": kw_inf["kernel_fn"]}
    rows: list[dict[str, Any]] = []
    for width in widths:
        for seed in seeds:
            model = model_fn(width, seed)
            before = model_influence(model, X_train, y_train, X_test, y_test, **kw_inf)
            modes = list(attention_modes) if getattr(model, "feature_map", None) is not None else ["recompute"]
            for intervention in interventions:
                grid = [("none", 0.0)] if intervention == "curated" else [(a, e) for a in attacks for e in eps_values]
                for att, eps in grid:
                    for tau in taus:
                        for mode in modes:
                            res = malleability(
                                model, X_train, y_train, X_test, y_test,
                                intervention=intervention, attack="noise" if att == "none" else att,
                                eps=eps, tau=tau, attention=mode, seed=seed, before=before, **kwargs,
                            )
                            rows.append(res.row())
    return rows


# --------------------------------------------------------------------------- kernels without a network


def data_kernel(kind: Literal["linear", "attention", "ntk_relu", "ntk_attn"]) -> Callable:
    """A kernel function (X, X_train) -> K (N, n) of unit-normalised rows, for :func:`kernel_malleability`.

    The second argument is always the training set, so the attention kernels take their keys from it
    (the attention is recomputed whenever the training set changes):

    - ``"linear"``: K = X^ X_train^^T, the Gram G on the training set (x^ = x / ||x||);
    - ``"attention"``: K = X^ C^2 X_train^^T with C = X_train^^T X_train^, which is G^3 on the training
      set (Theorem 4.1 of v1; :func:`linattn.kernels.attention_kernel`);
    - ``"ntk_relu"``: the infinite-width NTK of the 2L-ReLU, :func:`linattn.kernels.ntk_relu` of x^;
    - ``"ntk_attn"``: the infinite-width NTK of MLP-Attn, ntk_relu of the unit attention features
      C x / ||C x|| (:func:`linattn.kernels.ntk_inf` of an MLP-Attn model with keys X_train^).
    """
    from . import kernels
    from .models import mlp_attn

    def unit(Z):
        return attention_keys(Z, unit_keys=True)

    def linear(X, X2):
        return unit(X) @ unit(X2).T

    def attention(X, X2):
        K2 = unit(X2)
        return kernels.attention_kernel(unit(X), K2, X_keys=K2)

    def ntk_relu(X, X2):
        return kernels.ntk_relu(unit(X), unit(X2))

    def ntk_attn(X, X2):
        model = mlp_attn(unit(X2), 1, dtype=torch.float64)
        return kernels.ntk_inf(model, X, X2)

    table = {"linear": linear, "attention": attention, "ntk_relu": ntk_relu, "ntk_attn": ntk_attn}
    if kind not in table:
        raise ValueError(f"kind must be one of {sorted(table)}, got {kind!r}")
    return table[kind]


def kernel_malleability(
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    eps: float = 0.3,
    tau: float = 0.1,
    lam: float = 1e-3,
    intervention: Literal["transformed", "adversarial"] = "transformed",
    target: Literal["output", "loss"] = "loss",
    aggregate: str = "mean",
    seed: int = 0,
    clip=(0.0, 1.0),
) -> MalleabilityResult:
    """Malleability of kernel-ridge influences under random-sign noise, for a kernel with no network.

    ``kernel(X, X_train)`` -> (N, n), e.g. :func:`data_kernel`; X_train (n, d) and X_test (t, d) in
    ``clip``; real targets y_train (n,) or (n, C) and y_test of the same coding (used by
    ``target="loss"``, the squared test error; ``"output"`` reads the first output). The selected
    top-tau points (``"transformed"``) or all points (``"adversarial"``) get +-eps random signs
    (:func:`linattn.attacks.random_sign_noise`, seeded); kernel and influences are recomputed and
    flip rate, Spearman and overlap reported as in :func:`malleability`.
    """
    from .attacks import random_sign_noise

    eps = check_range(eps, "eps (inputs in [0, 1], so eps is a fraction of the pixel range)", 0.0, 1.0)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    if intervention not in ("transformed", "adversarial"):
        raise ValueError(f"intervention must be 'transformed' or 'adversarial', got {intervention!r}")
    if target not in ("output", "loss"):
        raise ValueError(f"target must be 'output' or 'loss' for real targets, got {target!r}")
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    y = as_tensor(y_train, "y_train", ndim=(1, 2))
    yt = as_tensor(y_test, "y_test", ndim=(1, 2))
    n = X_train.shape[0]
    if y.shape[0] != n or yt.shape[0] != X_test.shape[0]:
        raise ValueError("y_train and y_test need one target row per point of X_train and X_test")

    def scores(X):
        K = torch.as_tensor(kernel(X, X)).to(torch.float64)
        K = 0.5 * (K + K.T)
        Kt = torch.as_tensor(kernel(X_test, X)).to(torch.float64)
        I = influence_loo(K, y, Kt, lam=lam, y_test=yt if target == "loss" else None, target=target,
                          output_class=0 if (target == "output" and y.ndim == 2) else None)
        return influence_scores(I, aggregate)

    s_before = scores(X_train)
    selected = select_top(s_before, tau)
    idx = selected if intervention == "transformed" else torch.arange(n)
    X_after = X_train.clone()
    X_after[idx] = random_sign_noise(X_train[idx], eps, seed, clip=clip)
    s_after = scores(X_after)
    config = {"model": getattr(kernel, "__name__", "kernel"), "width": None, "n": n, "t": X_test.shape[0],
              "intervention": intervention, "attack": "noise", "eps": eps, "tau": tau, "attention": "n/a",
              "lam": lam, "seed": seed}
    return MalleabilityResult(
        flip_rate=_flip_rate(s_before[selected], s_after[selected]),
        spearman=float(spearmanr(s_before.numpy(), s_after.numpy()).statistic),
        overlap=_overlap(s_before, s_after, tau),
        n_selected=int(selected.shape[0]),
        selected=selected,
        tracked=selected,
        scores_before=s_before,
        scores_after=s_after,
        X_after=X_after,
        config=config,
    )


# --------------------------------------------------------------------------- the v1 tables


@dataclass(frozen=True)
class TableConfig:
    """The protocol behind Tables 2-4 of v1 at one scale. [v1] = the paper's choice, [ours] = a gap filled.

    n_train, n_test: class-balanced subsets of the task, drawn (disjoint) from the quick pool
        (``pool_per_class``) or, with ``pool_per_class=None``, from the official splits [ours].
    width, seeds: hidden width and seeds (initialisation, minibatch order, attack start) [ours].
    epochs, lr, batch_size, weight_decay: Adam training [v1: 500 epochs, 1e-3, 128, 1e-3];
        cross-entropy on 10 logits for 10-class tasks, MSE on +-1 targets (one output) for binary ones [v1].
    eps, tau: attack radius and selected fraction [v1: 0.3, 10%]; lam: kernel-ridge ridge [ours].
    attacks: the attacks of the tables plus the "noise" control; fixed_attacks: those also run
        with MLP-Attn's C held fixed (the control for the recomputed attention).
    at_epochs, at_steps, at_step_size: Madry adversarial training for Table 4 [ours: the paper
        gives no recipe]; PGD with ``at_steps`` steps of ``at_step_size`` at radius eps.
    """

    n_train: int = 200
    n_test: int = 60
    pool_per_class: int | None = 500
    width: int = 128
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 1e-3
    eps: float = 0.3
    tau: float = 0.1
    lam: float = 1e-3
    attacks: tuple[str, ...] = ("fgsm", "pgd", "mim", "noise")
    fixed_attacks: tuple[str, ...] = ("pgd", "noise")
    at_epochs: int = 10
    at_steps: int = 3
    at_step_size: float = 0.15

    @classmethod
    def quick(cls, **overrides) -> "TableConfig":
        """The 2-core CPU scale: n = 200, t = 60, width 128, 3 seeds, 20 epochs; AT: 10 epochs of PGD-3 (step 0.15)."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "TableConfig":
        """A GPU scale: n = 5000, t = 1000 from the official splits, width 1024, 500 epochs, PGD-40 AT."""
        base = dict(n_train=5000, n_test=1000, pool_per_class=None, width=1024, epochs=500,
                    at_epochs=100, at_steps=40, at_step_size=0.01)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def paper_model(
    kind: Literal["relu", "attn"],
    X_train,
    y_train,
    n_classes: int,
    *,
    width: int,
    seed: int,
    epochs: int = 0,
    training: Literal["standard", "adversarial"] = "standard",
    config: TableConfig | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """A 2L-ReLU (``"relu"``) or MLP-Attn (``"attn"``, keys = unit rows of X_train) model, trained as in v1.

    One output with MSE on +-1 targets for ``n_classes == 2``, else n_classes logits with
    cross-entropy; Adam with the config's lr, batch size and L2 (``epochs=0``: the model at
    initialisation). ``training="adversarial"``: Madry PGD training (config's at_epochs,
    at_steps, at_step_size, eps) instead. Uses :mod:`linattn.train`.
    """
    from .models import mlp_attn, relu_net
    from .train import adversarial_train, train

    cfg = config or TableConfig()
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    C = 1 if n_classes == 2 else n_classes
    d = X_train.shape[1]
    if kind == "relu":
        model = relu_net(d, width, C, seed=seed, dtype=dtype)
    elif kind == "attn":
        model = mlp_attn(attention_keys(X_train), width, C, seed=seed, dtype=dtype)
    else:
        raise ValueError(f"kind must be 'relu' or 'attn', got {kind!r}")
    loss = "ce" if C > 1 else "mse"
    targets = y_train if C > 1 else regression_targets(y_train, 1)
    common = dict(loss=loss, lr=cfg.lr, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                  seed=seed, progress=False)
    if training == "adversarial":
        adversarial_train(model, X_train, targets, eps=cfg.eps, steps=cfg.at_steps, step_size=cfg.at_step_size,
                          epochs=cfg.at_epochs, **common)
    elif training == "standard":
        if epochs:
            train(model, X_train, targets, epochs=epochs, **common)
    else:
        raise ValueError(f"training must be 'standard' or 'adversarial', got {training!r}")
    return model


def train_models(
    td,
    config: TableConfig | None = None,
    *,
    training: Literal["standard", "adversarial"] = "standard",
    kinds: Iterable[str] = ("relu", "attn"),
    width: int | None = None,
    seeds: Iterable[int] | None = None,
) -> dict[tuple[str, int], torch.nn.Module]:
    """{(kind, seed): model} trained on a :class:`linattn.data.TaskData` by :func:`paper_model`."""
    cfg = config or TableConfig()
    width = cfg.width if width is None else width
    seeds = cfg.seeds if seeds is None else seeds
    return {
        (kind, seed): paper_model(kind, td.X_train, td.y_train, td.n_classes, width=width, seed=seed,
                                  epochs=cfg.epochs, training=training, config=cfg)
        for kind in kinds
        for seed in seeds
    }


def table_rows(
    td,
    models: dict[tuple[str, int], torch.nn.Module],
    config: TableConfig | None = None,
    *,
    attacks: Iterable[str] | None = None,
    kernel_fn: KernelFn | None = None,
    training: str = "standard",
) -> list[dict[str, Any]]:
    """Flip rate, Spearman and overlap of every (model, seed, attack, attention mode) on one task.

    ``td`` a :class:`linattn.data.TaskData`; ``models`` from :func:`train_models`. The
    "transformed" intervention (the selected top-tau points replaced by their adversarial
    versions) feeds the tables; each row is :meth:`MalleabilityResult.row` plus ``task``,
    ``training`` and the model's training accuracy ``train_acc``. MLP-Attn runs every attack with
    the attention recomputed and ``config.fixed_attacks`` also with C held fixed, on the same
    perturbed points.
    """
    cfg = config or TableConfig()
    attacks = tuple(cfg.attacks if attacks is None else attacks)
    kernel_fn = _default_kernel_fn() if kernel_fn is None else kernel_fn
    rows: list[dict[str, Any]] = []
    for (kind, seed), model in models.items():
        with torch.no_grad():
            out = model(td.X_train)
        pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).long()
        acc = float((pred == td.y_train).double().mean())
        before = model_influence(model, td.X_train, td.y_train, td.X_test, td.y_test, lam=cfg.lam,
                                 kernel_fn=kernel_fn)
        for att in attacks:
            modes = ["recompute"] + (["fixed"] if kind == "attn" and att in cfg.fixed_attacks else [])
            X_after = None
            for mode in modes:
                res = malleability(model, td.X_train, td.y_train, td.X_test, td.y_test, attack=att,
                                   eps=cfg.eps, tau=cfg.tau, attention=mode, lam=cfg.lam,
                                   kernel_fn=kernel_fn, seed=seed, before=before, X_after=X_after)
                X_after = res.X_after
                rows.append({"task": td.name, "training": training, **res.row(), "train_acc": acc})
    return rows


def summarize(rows: list[dict[str, Any]], by: tuple[str, ...] = ("task", "training", "model", "attention", "attack"),
              value: str = "flip_rate") -> list[dict[str, Any]]:
    """Mean, min, max and count of ``value`` over the rows of each group ``by`` (seeds pooled)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(float(r[value]))
    return [
        {**dict(zip(by, key)), "mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
         "count": len(v)}
        for key, v in groups.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Compute table rows for tasks and store them with :func:`linattn.results.save`.

    python -m linattn.malleability --tasks cifar10 cifar_car_plane --scale quick --out part3_tables_cifar_quick
    """
    import argparse
    import time

    from . import results

    p = argparse.ArgumentParser(prog="python -m linattn.malleability", description=main.__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--scale", choices=("quick", "paper"), default="quick")
    p.add_argument("--training", nargs="+", default=["standard"], choices=("standard", "adversarial"))
    p.add_argument("--out", required=True, help="result name: results/<out>.json")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = TableConfig.quick() if a.scale == "quick" else TableConfig.paper()
    t0 = time.perf_counter()
    rows = []
    from .data import task_data
    from .spectra import kappa_d

    kappas = {}
    for task in a.tasks:
        td = task_data(task, cfg.n_train, cfg.n_test, seed=0, pool_per_class=cfg.pool_per_class)
        kappas[task] = kappa_d(unit_rows(td.X_train))
        for training in a.training:
            atts = cfg.attacks if training == "standard" else ("pgd",)
            models = train_models(td, cfg, training=training)
            rows += table_rows(td, models, cfg, attacks=atts, training=training)
    wall = time.perf_counter() - t0
    path = results.save(a.out, {"rows": rows, "kappa_d": kappas}, {"scale": a.scale, "tasks": a.tasks, "training": a.training,
                                               **cfg.to_dict()}, wall_s=wall)
    print(f"{len(rows)} rows in {wall:.0f} s -> {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
