"""Influence malleability: how far an l_inf perturbation of the training set moves NTK influences.

The protocol (v1 of the paper as far as known; the choices the paper leaves open are parameters),
one function a step; :func:`malleability` composes them:

1. Influence (:func:`model_influence`). The kernel of the model as given (at initialisation or
   after training: the caller passes the model), K = kernel_fn(model, X_train, X_train) (n, n) and
   K_test = kernel_fn(model, X_test, X_train) (t, n), by default the empirical NTK
   :func:`linattn.ntk.empirical_ntk`; the exact leave-one-out influences I (n, t) of kernel ridge
   on K (:func:`linattn.influence.influence_loo`, ridge ``ridge``; sign: I > 0 means removing the
   point lowers the readout), readout = the test point's true-class output; one score a training
   point, s_i = influence_scores(I, aggregate) (default: the signed mean over the test points).
2. Selection (:func:`select_top`): the top tau fraction of the training points by |s_i|
   (k = round(tau n), ties by index).
3. Intervention (:func:`intervene`, the perturbation from :func:`attack_perturbation`):
   ``"transformed"`` replaces the selected points by adversarial versions (an attack on the
   model's loss at those points, labels kept); ``"adversarial"`` perturbs every training point;
   ``"curated"`` removes the selected points. ``attack="noise"`` is the control: random signs of
   the same eps (:func:`linattn.attacks.random_sign_noise`).
4. Influence again, with the same W, on the intervened training set. For MLP-Attn,
   ``attention="recompute"`` rebuilds the attention C = X'^T X' from the intervened set (the model
   as defined: same W, new attention, so the test features move too; X' are the unit-normalised
   intervened rows, :func:`linattn.models.attention_keys`); ``attention="fixed"`` keeps the
   original C and only moves the inputs. The attack always differentiates the model as trained.
5. Measurement (:func:`measure`, a :class:`MalleabilityResult`):
   - flip rate: the fraction of the tracked points whose score changes sign (tracked = the
     selected points for "transformed" and "adversarial"; for "curated", whose selected points are
     gone, all remaining points),
   - Spearman's rho between the scores before and after over all (remaining) points,
   - overlap of the top-k sets by |s| before and after (for "curated" the before-ranking is
     restricted to the remaining points and k = round(tau (n - k_removed))).

:func:`sweep` loops over width, seed, eps, tau, attack, intervention and attention mode (tidy
rows); :func:`kernel_malleability` runs the same protocol for a kernel without a network under
random-sign noise.

The v1 tables (Tables 2-4) run this protocol through the experiment layer:
:mod:`linattn.experiments.part3` (``linattn reproduce malleability_tables``).

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

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch
from scipy.stats import spearmanr

from ._validation import as_tensor, check_consistent_length, check_option, check_range
from .attacks import attack as run_attack
from .attacks import loss_closure, random_sign_noise
from .influence import influence_loo, influence_scores

__all__ = [
    "InfluenceState",
    "Intervened",
    "MalleabilityResult",
    "model_influence",
    "select_top",
    "attack_perturbation",
    "intervene",
    "measure",
    "malleability",
    "sweep",
    "kernel_malleability",
]

#: kernel_fn(model, X (N, d), X2 (N2, d)) -> K (N, N2)
KernelFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
#: perturb(X_rows (k, d), y_rows (k,)) -> the perturbed rows (k, d)
Perturbation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

INTERVENTIONS = ("transformed", "adversarial", "curated")
ATTENTION_MODES = ("recompute", "fixed")
_EPS = "eps (inputs in [0, 1], so eps is a fraction of the pixel range)"


def _default_kernel_fn() -> KernelFn:
    try:
        from .ntk import empirical_ntk
    except ImportError as exc:  # pragma: no cover - depends on the package's state
        raise ImportError(
            "linattn.ntk.empirical_ntk is not available; pass kernel_fn=(model, X, X2) -> K explicitly"
        ) from exc
    return empirical_ntk


# --------------------------------------------------------------------------- 1. influence


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
            f"kernel_fn must return a ({X.shape[0]}, {X2.shape[0]}) matrix, got {tuple(K.shape)}; "
            "it is called as kernel_fn(model, X, X2)"
        )
    return K


def _test_labels(y_test, n_outputs: int) -> torch.Tensor:
    """Labels for the true-class readout: +-1 for one output, class indices for C outputs."""
    yt = as_tensor(y_test, "y_test", ndim=1, dtype=None).long()
    return 2.0 * yt.to(torch.float64) - 1.0 if n_outputs == 1 else yt


def model_influence(
    model: torch.nn.Module,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    ridge: float = 1e-3,
    kernel_fn: KernelFn | None = None,
    target: Literal["true_class", "output", "loss"] = "true_class",
    aggregate: str = "mean",
    coding: Literal["onehot", "pm1"] = "onehot",
) -> InfluenceState:
    """Step 1: kernel, leave-one-out influences and scores of ``model`` on one training set (float64).

    X_train (n, d), y_train (n,) class indices, X_test (t, d), y_test (t,). K = (K' + K'^T) / 2 with
    K' = kernel_fn(model, X_train, X_train) (n, n) (the symmetrisation removes the round-off of the
    kernel function), K_test = kernel_fn(model, X_test, X_train) (t, n); I (n, t) =
    :func:`linattn.influence.influence_loo` of kernel ridge with ``ridge`` on the targets
    :func:`linattn.data.regression_targets` of y_train (``coding``), readout ``target`` (the
    true-class output by default); scores (n,) = influence_scores(I, aggregate).
    """
    from .data import regression_targets

    kernel_fn = _default_kernel_fn() if kernel_fn is None else kernel_fn
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    C = int(model.n_outputs)
    Y = regression_targets(y_train, C, coding=coding)
    check_consistent_length(X_train, Y, names=("X_train", "y_train"), what="labels")
    yt = _test_labels(y_test, C)
    check_consistent_length(X_test, yt, names=("X_test", "y_test"), what="labels")
    if target == "loss":
        yt = regression_targets(y_test, C, coding=coding)
    K = _kernel(kernel_fn, model, X_train, X_train)
    K = 0.5 * (K + K.T)
    K_test = _kernel(kernel_fn, model, X_test, X_train)
    I = influence_loo(K, Y, K_test, ridge=ridge, y_test=yt, target=target,
                      output_class=0 if target == "output" else None)
    return InfluenceState(K=K, K_test=K_test, I=I, scores=influence_scores(I, aggregate))


# --------------------------------------------------------------------------- 2. selection


def _top_count(n: int, tau: float) -> int:
    k = int(round(tau * n))
    if k < 1:
        raise ValueError(f"tau = {tau} of n = {n} points selects no point; raise tau or use more points")
    return k


def select_top(scores, tau: float) -> torch.Tensor:
    """Step 2: indices (k,) of the k = round(tau n) largest |scores| (n,), largest first, ties by index."""
    s = as_tensor(scores, "scores", ndim=1, min_rows=1)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    k = _top_count(s.shape[0], tau)
    order = np.lexsort((np.arange(s.shape[0]), -s.abs().numpy()))  # by -|s|, then by index
    return torch.as_tensor(order[:k].copy(), dtype=torch.long)


# --------------------------------------------------------------------------- 3. intervention


@dataclass
class Intervened:
    """The training set after one intervention (step 3).

    X (n', d) and y (n', ...) the intervened inputs and their labels (n' = n, or n - k for
    "curated"); selected (k,) the top-tau indices; kept (n',) the original index of each row of X
    (ascending); tracked the original indices whose score signs the flip rate compares (a subset
    of kept: the selected points, or for "curated" every remaining point).
    """

    X: torch.Tensor
    y: torch.Tensor
    selected: torch.Tensor
    kept: torch.Tensor
    tracked: torch.Tensor


def attack_perturbation(
    model: torch.nn.Module,
    attack: Literal["fgsm", "pgd", "mim", "noise"] = "pgd",
    *,
    eps: float = 0.3,
    seed: int = 0,
    loss: Literal["ce", "mse", "margin"] | None = None,
    clip=(0.0, 1.0),
    attack_kwargs: dict | None = None,
) -> Perturbation:
    """The attack as a perturbation (X_rows (k, d), y_rows (k,)) -> X_rows' (k, d), for :func:`intervene`.

    X_rows' = argmax of the per-example ``loss`` of ``model`` (:func:`linattn.attacks.loss_closure`)
    over ||X_rows' - X_rows||_inf <= eps within ``clip``, by :func:`linattn.attacks.attack` with
    ``seed`` and ``attack_kwargs`` (e.g. steps); ``"noise"`` is random signs of size eps.
    ``loss`` defaults to the paper's training loss: "ce" for C >= 2 outputs, "mse" for one.
    """
    C = int(model.n_outputs)
    loss = ("ce" if C >= 2 else "mse") if loss is None else loss

    def perturb(X_rows: torch.Tensor, y_rows: torch.Tensor) -> torch.Tensor:
        fn = loss_closure(model, y_rows, loss)
        return run_attack(attack, fn, X_rows, eps=eps, seed=seed, clip=clip, **(attack_kwargs or {}))

    return perturb


def intervene(
    X_train,
    y_train: torch.Tensor,
    selected,
    perturb: Perturbation | None = None,
    *,
    intervention: Literal["transformed", "adversarial", "curated"] = "transformed",
    eps: float = 0.3,
    X_after=None,
) -> Intervened:
    """Step 3: the intervened training set, from X_train (n, d), y_train (n, ...) and selected (k,).

    ``"transformed"``: X'[selected] = perturb(X[selected], y[selected]), the other rows unchanged;
    ``"adversarial"``: X' = perturb(X, y), every row; ``"curated"``: X' = X without the selected
    rows (no perturbation). Labels are kept. ``X_after`` (n, d) replaces the call to ``perturb``:
    the intervened set of an earlier call with the same intervention and selection (checked: the
    untouched rows are those of X_train and no row moves by more than ``eps``).
    """
    check_option(intervention, "intervention", INTERVENTIONS)
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    y_train = torch.as_tensor(y_train)
    n = check_consistent_length(X_train, y_train, names=("X_train", "y_train"), what="labels")
    selected = torch.as_tensor(selected, dtype=torch.long)
    if intervention == "curated":
        keep = torch.ones(n, dtype=torch.bool)
        keep[selected] = False
        kept = torch.nonzero(keep)[:, 0]
        return Intervened(X=X_train[keep], y=y_train[keep], selected=selected, kept=kept, tracked=kept)
    idx = selected if intervention == "transformed" else torch.arange(n)
    if X_after is not None:
        X_after = _check_reused(X_after, X_train, idx, eps)
    elif perturb is None:
        raise ValueError(f"intervention={intervention!r} needs perturb (e.g. attack_perturbation(model)) or X_after")
    else:
        X_after = X_train.clone()
        X_after[idx] = perturb(X_train[idx], y_train[idx]).to(X_after.dtype)
    return Intervened(X=X_after, y=y_train, selected=selected, kept=torch.arange(n), tracked=selected)


def _check_reused(X_after, X_train: torch.Tensor, idx: torch.Tensor, eps: float) -> torch.Tensor:
    """X_after of an earlier call: the shape of X_train, equal outside ``idx``, within eps."""
    X_after = as_tensor(X_after, "X_after", ndim=2)
    if X_after.shape != X_train.shape:
        raise ValueError(f"X_after must have the shape of X_train {tuple(X_train.shape)}")
    untouched = torch.ones(X_train.shape[0], dtype=torch.bool)
    untouched[idx] = False
    if not torch.equal(X_after[untouched], X_train[untouched]):
        raise ValueError("X_after changes rows the intervention does not touch; pass the X_after "
                         "of a call with the same intervention, tau and model")
    if float((X_after - X_train).abs().max()) > eps + 1e-6:
        raise ValueError(f"X_after moves points by more than eps = {eps}")
    return X_after


def _model_after(model: torch.nn.Module, X_after: torch.Tensor, attention: str, unit_keys: bool) -> torch.nn.Module:
    """Step 4's model: the attention rebuilt from the intervened rows ("recompute") or the model as is."""
    from .models import model_keys, with_attention_keys

    if attention == "recompute":
        return with_attention_keys(model, model_keys(model, X_after, unit_keys=unit_keys))
    return model


# --------------------------------------------------------------------------- 5. measurement


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


def measure(
    scores_before: torch.Tensor,
    scores_after: torch.Tensor,
    intervened: Intervened,
    *,
    tau: float,
    config: dict[str, Any] | None = None,
) -> MalleabilityResult:
    """Step 5: flip rate, Spearman's rho and top-tau overlap of the scores before (n,) and after (n').

    With s = scores_before[kept] (the points still present, in the order of scores_after = s'):
    flip_rate = mean over the tracked points of 1[sign s_i != sign s'_i]; spearman = rho(s, s') over
    all n' points; overlap = |top_k(|s|) & top_k(|s'|)| / k with k = round(tau n') (NaN if k = 0).
    """
    s0 = scores_before[intervened.kept]
    if s0.shape != scores_after.shape:
        raise ValueError(f"scores_after has shape {tuple(scores_after.shape)}, expected {tuple(s0.shape)} "
                         "(one score a row of intervened.X)")
    pos = torch.searchsorted(intervened.kept, intervened.tracked)  # where the tracked points sit in X'
    return MalleabilityResult(
        flip_rate=_flip_rate(s0[pos], scores_after[pos]),
        spearman=float(spearmanr(s0.numpy(), scores_after.numpy()).statistic),
        overlap=_overlap(s0, scores_after, tau),
        n_selected=int(intervened.selected.shape[0]),
        selected=intervened.selected,
        tracked=intervened.tracked,
        scores_before=scores_before,
        scores_after=scores_after,
        X_after=intervened.X,
        config=dict(config or {}),
    )


# --------------------------------------------------------------------------- the protocol


def _checked_inputs(model: torch.nn.Module, X_train, y_train, X_test, *, intervention: str, attention: str,
                    unit_keys: bool, eps, tau):
    """Validate the arguments of :func:`malleability`: (X_train, y_train (long), X_test, eps, tau)."""
    eps = check_range(eps, _EPS, 0.0, 1.0)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    check_option(intervention, "intervention", INTERVENTIONS)
    check_option(attention, "attention", ATTENTION_MODES)
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    n = X_train.shape[0]
    k = _top_count(n, tau)
    if intervention == "curated" and n - k < 2:
        raise ValueError(f"curating k = {k} of n = {n} points leaves fewer than 2; lower tau or use more points")
    if attention == "recompute":
        from .models import check_attention_keys

        check_attention_keys(model, X_train, unit_keys=unit_keys)
    return X_train, y_train, X_test, eps, tau


def _check_before(before: InfluenceState, n: int) -> None:
    if before.scores.shape[0] != n:
        raise ValueError(f"before has {before.scores.shape[0]} scores for n = {n} training points; "
                         "pass the InfluenceState of this model and X_train")


def _config(model: torch.nn.Module, n: int, t: int, *, intervention: str, attack: str, eps: float,
            tau: float, attention: str, ridge: float, seed: int) -> dict[str, Any]:
    """The row labels of one :func:`malleability` call."""
    curated = intervention == "curated"
    return {
        "model": getattr(model, "kind", type(model).__name__),
        "width": getattr(model, "width", None),
        "n": n,
        "t": t,
        "intervention": intervention,
        "attack": "none" if curated else attack,
        "eps": 0.0 if curated else eps,
        "tau": tau,
        "attention": attention if getattr(model, "feature_map", None) is not None else "n/a",
        "ridge": ridge,
        "seed": seed,
    }


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
    ridge: float = 1e-3,
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

    X_train (n, d), X_test (t, d) pixels in [0, 1]; y_train (n,), y_test (t,) class indices. The steps
    of the module docstring. ``ridge``, ``kernel_fn``, ``aggregate``, ``coding``: step 1
    (:func:`model_influence`); ``tau``: step 2; ``intervention``, ``attack``, ``eps``, ``loss``,
    ``seed``, ``clip``, ``attack_kwargs``: step 3 (:func:`attack_perturbation`, :func:`intervene`);
    ``attention``, ``unit_keys``: step 4 (with "recompute" the model must have been built as
    ``mlp_attn(attention_keys(X_train, unit_keys=unit_keys), ...)``, which is checked).
    ``before`` reuses the :class:`InfluenceState` of the same model and data; ``X_after`` (n, d)
    skips the attack, reusing the ``X_after`` of a call with the same model, data, intervention,
    attack, eps, tau and seed (e.g. to run the other attention mode on the same perturbed points).
    Errors: eps outside [0, 1], tau outside (0, 1], too few points, unknown options.
    """
    X_train, y_train, X_test, eps, tau = _checked_inputs(model, X_train, y_train, X_test, intervention=intervention,
                                                         attention=attention, unit_keys=unit_keys, eps=eps, tau=tau)
    kw = dict(ridge=ridge, kernel_fn=_default_kernel_fn() if kernel_fn is None else kernel_fn,
              aggregate=aggregate, coding=coding)
    if before is None:  # 1. influence of the model as given
        before = model_influence(model, X_train, y_train, X_test, y_test, **kw)
    _check_before(before, X_train.shape[0])
    selected = select_top(before.scores, tau)  # 2. selection
    perturb = attack_perturbation(model, attack, eps=eps, seed=seed, loss=loss, clip=clip,
                                  attack_kwargs=attack_kwargs)  # 3. intervention
    iv = intervene(X_train, y_train, selected, perturb, intervention=intervention, eps=eps, X_after=X_after)
    model_after = _model_after(model, iv.X, attention, unit_keys)  # 4. influence on the intervened set
    after = model_influence(model_after, iv.X, iv.y, X_test, y_test, **kw)
    config = _config(model, X_train.shape[0], X_test.shape[0], intervention=intervention, attack=attack,
                     eps=eps, tau=tau, attention=attention, ridge=ridge, seed=seed)
    return measure(before.scores, after.scores, iv, tau=tau, config=config)  # 5. measurement


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
    ``kwargs`` go to :func:`malleability` (e.g. ``ridge``). Each row is :meth:`MalleabilityResult.row`.
    """
    kw_inf = {key: kwargs[key] for key in ("ridge", "kernel_fn", "aggregate", "coding") if key in kwargs}
    if kw_inf.get("kernel_fn") is None:
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


# --------------------------------------------------------------------------- a kernel without a network


def _kernel_influence(kernel: Callable, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                      y_test: torch.Tensor, *, ridge: float, target: str, aggregate: str) -> InfluenceState:
    """Step 1 for a kernel function (X, X_train) -> K: K = (K' + K'^T) / 2, K_test, I (n, t), scores (n,)."""
    K = torch.as_tensor(kernel(X, X)).to(torch.float64)
    K = 0.5 * (K + K.T)
    K_test = torch.as_tensor(kernel(X_test, X)).to(torch.float64)
    I = influence_loo(K, y, K_test, ridge=ridge, y_test=y_test if target == "loss" else None, target=target,
                      output_class=0 if (target == "output" and y.ndim == 2) else None)
    return InfluenceState(K=K, K_test=K_test, I=I, scores=influence_scores(I, aggregate))


def kernel_malleability(
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    eps: float = 0.3,
    tau: float = 0.1,
    ridge: float = 1e-3,
    intervention: Literal["transformed", "adversarial"] = "transformed",
    target: Literal["output", "loss"] = "loss",
    aggregate: str = "mean",
    seed: int = 0,
    clip=(0.0, 1.0),
) -> MalleabilityResult:
    """Malleability of kernel-ridge influences under random-sign noise, for a kernel with no network.

    ``kernel(X, X_train)`` -> (N, n), e.g. :func:`linattn.kernels.data_kernel`; X_train (n, d) and
    X_test (t, d) in ``clip``; real targets y_train (n,) or (n, C) and y_test of the same coding
    (used by ``target="loss"``, the squared test error; ``"output"`` reads the first output). The
    steps of :func:`malleability`, with the kernel in place of the model's NTK: the selected
    top-tau points (``"transformed"``) or all points (``"adversarial"``) get +-eps random signs
    (:func:`linattn.attacks.random_sign_noise`, seeded), then kernel and influences are recomputed.
    """
    eps = check_range(eps, _EPS, 0.0, 1.0)
    tau = check_range(tau, "tau", 0.0, 1.0, lo_open=True)
    check_option(intervention, "intervention", ("transformed", "adversarial"))
    check_option(target, "target (real-valued targets)", ("output", "loss"))
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    y = as_tensor(y_train, "y_train", ndim=(1, 2))
    yt = as_tensor(y_test, "y_test", ndim=(1, 2))
    check_consistent_length(X_train, y, names=("X_train", "y_train"), what="target rows")
    check_consistent_length(X_test, yt, names=("X_test", "y_test"), what="target rows")
    kw = dict(ridge=ridge, target=target, aggregate=aggregate)
    before = _kernel_influence(kernel, X_train, y, X_test, yt, **kw)
    selected = select_top(before.scores, tau)

    def noise(X_rows: torch.Tensor, _y_rows: torch.Tensor) -> torch.Tensor:
        return random_sign_noise(X_rows, eps, seed, clip=clip)

    iv = intervene(X_train, y, selected, noise, intervention=intervention, eps=eps)
    after = _kernel_influence(kernel, iv.X, iv.y, X_test, yt, **kw)
    config = {"model": getattr(kernel, "__name__", "kernel"), "width": None, "n": X_train.shape[0],
              "t": X_test.shape[0], "intervention": intervention, "attack": "noise", "eps": eps, "tau": tau,
              "attention": "n/a", "ridge": ridge, "seed": seed}
    return measure(before.scores, after.scores, iv, tau=tau, config=config)
