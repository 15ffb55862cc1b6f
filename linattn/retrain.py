"""Ground truth for influence: exact leave-one-out retraining, and how to compare an influence with it.

The NTK influence of :mod:`linattn.influence` answers "what would removing training point i do?"
from a kernel, without retraining. This module answers the same question by retraining: for each
point i of a subset, the network is trained again without i, from the **same initialisation** and
with the **same minibatch order**, and the change of every test point's readout is recorded,

    I_true(i, t) = g(f(x_t)) - g(f_{-i}(x_t)),

with the readout and sign of :func:`linattn.influence.influence_loo` as
:func:`linattn.malleability.model_influence` uses it: g is the test point's true-class output (for
one output, the margin y_t f(x_t) with y_t = +-1), and **I > 0 means that removing i lowers g**.

What "the same run without i" means, exactly (:func:`loo_retrain`):

- *Initialisation*: every run starts from the given model's weights (the model is copied, never
  trained in place).
- *Minibatch order*: :func:`linattn.train.train` draws one permutation of the n training points
  per epoch from ``torch.Generator().manual_seed(seed)`` and cuts it into consecutive batches of
  ``batch_size``. Every leave-one-out run draws the **same permutations of all n points** and cuts
  them into the **same batches**; point i is then dropped from the one batch a epoch that holds it.
  Every other point meets the same companions at the same step, so the runs differ in point i
  alone (removing i and re-cutting the remaining n - 1 points would shift every later batch).
- *The dropped point's batch* (``divisor``): ``"batch"`` (default) keeps the batch's normaliser,
  L_B = (1/|B|) sum_{j in B, j != i} l_j: the run without i follows the gradient of the full run's
  loss with i's term removed (Hara et al. 2019's counterfactual for SGD), so the balance between
  the data loss and the L2 penalty is that of the full run. For a model trained to convergence
  with full batches this is exactly kernel ridge with the *same* ridge on the remaining points,
  the closed form's leave-one-out (:func:`loo_retrain`'s tests check it). ``"remaining"``
  averages over the points left, (1/(|B| - 1)) sum_{j != i} l_j: with full batches, training on
  the n - 1 points with :func:`linattn.train.train`.
- *Attention* (``attention``, MLP-Attn only): ``"recompute"`` (default) rebuilds C = X^T X from
  the remaining n - 1 points, C_{-i} = C - u_i u_i^T (u_i = the unit key of point i), so removing i
  also removes it from the attention: every training and test feature moves. This is the model
  "defined by its training set", as :mod:`linattn.malleability` treats it (its default
  ``attention="recompute"``; its "curated" intervention rebuilds C from the remaining points).
  ``"fixed"`` keeps the full training set's C and only drops i's loss term: the counterfactual
  the NTK closed form computes, whose kernel on the remaining points does not move.
  The 2L-ReLU has no attention, and the option does not apply.

The n leave-one-out runs are trained together, as replicas of one batched network
(``torch.func.vmap``): Adam, SGD and the coupled L2 penalty act element by element, so the
replicas' updates are those of independent runs. Every chunk of replicas also trains the full
run, and its effects are taken against that chunk's own full run (so rounding is the same on both
sides of each difference); ``RetrainResult.full_spread`` reports how far the chunks' full runs
differ (rounding of batched products, zero or about 1e-7 in float32).

Also here, to compare an influence with the ground truth: :func:`fisher_interval` (the Fisher-z
interval of a Pearson or Spearman correlation), :func:`correlation` (one of them over paired
values, with its count and interval), :func:`pair_correlation` (over all (i, t) pairs, with an
interval from a bootstrap over training points: the pairs of one point are not independent),
:func:`sign_agreement` (how often the predicted sign of a top-tau point's score is the true one,
with a Wilson interval), :func:`agreement` (all of them for one prediction) and
:func:`correlation_difference` (Zou's interval for the difference of two correlations).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import as_tensor, check_int, check_option, check_range, check_seed

__all__ = ["ATTENTION_MODES", "DIVISORS", "RetrainResult", "loo_retrain", "readout", "LinearModel", "converged_ridge",
           "fisher_interval", "correlation", "correlation_difference", "pair_correlation", "sign_agreement",
           "agreement"]

ATTENTION_MODES = ("recompute", "fixed")
DIVISORS = ("batch", "remaining")
METHODS = ("pearson", "spearman")

#: the memory (bytes) one chunk of replicas may take by default (weights, gradients, two Adam
#: moments and the replicas' features)
CHUNK_BYTES = 512 * 2**20


@dataclass
class RetrainResult:
    """What :func:`loo_retrain` returns.

    effects (k, t) float64: I_true(i, t) for the k points of ``points`` (the rows, in that order)
    and the t test points; points (k,) the removed training indices; f_test (t, C) the full run's
    test outputs; model: the full run, trained (a copy; its weights are those of the first chunk);
    train_acc, test_acc: the full run's accuracy; full_spread: the largest |difference| between
    the test outputs of the chunks' full runs (0 with one chunk); seconds: wall time of the
    retraining (all chunks, full runs included); config: the options of the run.
    """

    effects: torch.Tensor
    points: torch.Tensor
    f_test: torch.Tensor
    model: torch.nn.Module
    train_acc: float
    test_acc: float
    full_spread: float
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- readout


def _test_signs(y_test: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """The true-class readout's labels: +-1 for one output, class indices for C outputs."""
    return 2.0 * y_test.to(torch.float64) - 1.0 if n_outputs == 1 else y_test


def readout(out: torch.Tensor, y_test) -> torch.Tensor:
    """g(f(x_t)): the true-class output of outputs ``out`` (..., t, C) for labels y_test (t,) (float64).

    C outputs: out[..., t, y_t]; one output: the margin (2 y_t - 1) out[..., t, 0] (class 1 is +1),
    the readout of :func:`linattn.malleability.model_influence`.
    """
    out = as_tensor(out, "out", dtype=torch.float64)
    yt = as_tensor(y_test, "y_test", ndim=1, dtype=None).long()
    if out.ndim < 2 or out.shape[-2] != yt.shape[0]:
        raise ValueError(f"out must have shape (..., t, C) with t = {yt.shape[0]} (one row a test label), "
                         f"got {tuple(out.shape)}")
    if out.shape[-1] > 1 and (bool((yt < 0).any()) or bool((yt >= out.shape[-1]).any())):
        raise ValueError(f"y_test must hold class indices in [0, {out.shape[-1] - 1}] for {out.shape[-1]} outputs")
    if out.shape[-1] == 1:
        return _test_signs(yt, 1) * out[..., 0]
    idx = yt.expand(*out.shape[:-1])[..., None]
    return out.gather(-1, idx)[..., 0]


# --------------------------------------------------------------------------- a model whose retraining is kernel ridge


class LinearModel(torch.nn.Module):
    """f(x) = W x (C outputs) on the raw input: a model whose retraining is kernel ridge.

    Trained with the MSE (``loss="mse"``: one-hot targets for C outputs, +-1 for one), full batches
    and the coupled L2 penalty ``weight_decay`` to convergence, W minimises
    (1/(n C)) ||X W^T - Y||^2 + (weight_decay / 2) ||W||^2, so f is kernel ridge with the linear
    kernel K = X X^T and the ridge of :func:`converged_ridge`. Removing a point with
    ``divisor="batch"`` keeps that ridge, so :func:`loo_retrain` must then equal
    :func:`linattn.influence.influence_loo`: the harness's check. W ~ N(0, I) (seeded; the
    converged model does not depend on it).
    """

    def __init__(self, d: int, n_outputs: int = 1, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        d, n_outputs, seed = check_int(d, "d"), check_int(n_outputs, "n_outputs"), check_seed(seed)
        W = torch.randn(n_outputs, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.W = torch.nn.Parameter(W.to(dtype))

    @property
    def n_outputs(self) -> int:
        return int(self.W.shape[0])

    def features(self, x) -> torch.Tensor:
        x = as_tensor(x, "x", ndim=2, dtype=self.W.dtype)
        if x.shape[1] != self.W.shape[1]:
            raise ValueError(f"x has {x.shape[1]} features, the model expects d = {self.W.shape[1]}")
        return x

    def forward_features(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.W.T

    def forward(self, x) -> torch.Tensor:
        return self.forward_features(self.features(x))


def converged_ridge(weight_decay: float, n: int, n_outputs: int) -> float:
    """The kernel-ridge ridge of a :class:`LinearModel` trained to convergence: weight_decay n C / 2.

    Setting the gradient of (1/(n C)) ||X W^T - Y||^2 + (weight_decay / 2) ||W||^2 to zero gives
    W (X^T X + (weight_decay n C / 2) I) = Y^T X, i.e. f(x) = Y^T (K + ridge I)^{-1} k(x).
    """
    weight_decay = check_range(weight_decay, "weight_decay", 0.0, float("inf"), lo_open=True)
    return weight_decay * check_int(n, "n") * check_int(n_outputs, "n_outputs") / 2


# --------------------------------------------------------------------------- retraining


def _check_points(points, n: int) -> torch.Tensor:
    if points is None:
        return torch.arange(n)
    p = as_tensor(points, "points", ndim=1, dtype=None)
    if p.is_floating_point() and not bool((p == p.round()).all()):
        raise ValueError("points must hold training indices (integers)")
    p = p.long()
    if p.numel() == 0:
        raise ValueError("points is empty; pass at least one training index (or None for all n)")
    if bool((p < 0).any()) or bool((p >= n).any()):
        raise ValueError(f"points must be training indices in [0, {n - 1}], got min {int(p.min())}, max {int(p.max())}")
    if p.unique().numel() != p.numel():
        raise ValueError("points holds repeated indices; pass each training point once")
    return p


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for attr in ("features", "forward_features", "n_outputs"):
        if not hasattr(model, attr):
            raise TypeError(f"model must have features(x), forward_features(h) and n_outputs "
                            f"(linattn.models.TwoLayerNet), {type(model).__name__} has no {attr}")
    if not [p for p in model.parameters() if p.requires_grad]:
        raise ValueError("the model has no trainable parameters")


class _ForwardFeatures(torch.nn.Module):
    """model.forward_features as a module's forward (for torch.func.functional_call)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(h)


def _features(model, X_train: torch.Tensor, X_test: torch.Tensor, removed: list[int], attention: str,
              unit_keys: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (R, n, d), (R, t, d) of each replica (removed = -1: the full run), or one shared copy (1, ., d).

    Without attention, or with C fixed, every replica sees model.features (what train() trains on).
    With ``attention="recompute"`` replica r attends over the keys without point i_r:
    x C_{-i} = x C - (x . u_i) u_i (u_i the unit key of point i, C_{-i} = C - u_i u_i^T), computed in
    float64 for every replica (the full run's included, so both sides of a difference take the same
    route), then unit-normalised and cast to the model's dtype.
    """
    from .models import model_keys, unit_rows

    dtype = next(p for p in model.parameters() if p.requires_grad).dtype
    with torch.no_grad():
        if getattr(model, "feature_map", None) is None or attention == "fixed":
            return model.features(X_train)[None], model.features(X_test)[None]
        U = model_keys(model, X_train, unit_keys=unit_keys)                   # (n, d) keys, float64
        C = U.T @ U
        im = getattr(model, "input_map", None)
        out = []
        for X in (X_train, X_test):
            Xi = X.to(torch.float64) if im is None else im(X.to(torch.float64))
            XC = Xi @ C                                                       # (N, d)
            Ur = torch.stack([torch.zeros_like(U[0]) if i < 0 else U[i] for i in removed])  # (R, d)
            H = XC[None] - (Xi @ Ur.T).T[:, :, None] * Ur[:, None, :]        # (R, N, d): x C_{-i}
            out.append(unit_rows(H).to(dtype))
    return out[0], out[1]


def _per_example_loss(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(R, b) losses of outputs out (R, b, C): cross-entropy on class indices y (b,) or the mean
    squared error over the C outputs of float targets y (b, C) (train()'s mean over b C entries is
    their mean over b)."""
    if loss == "ce":
        R, b, C = out.shape
        return F.cross_entropy(out.reshape(R * b, C), y.repeat(R), reduction="none").reshape(R, b)
    return ((out - y.to(out.dtype)) ** 2).mean(dim=-1)


def _chunk_size(model, n: int, t: int, d_feat: int, shared: bool) -> int:
    per = 4 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if not shared:
        per += (n + t) * d_feat * 8
    return max(1, CHUNK_BYTES // max(per, 1))


def _train_chunk(model, removed: list[int], H: torch.Tensor, Ht: torch.Tensor, y: torch.Tensor, *, loss: str,
                 perms: list[torch.Tensor], batch: int, optimizer: str, lr: float, weight_decay: float,
                 divisor: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Train R = len(removed) replicas together; their outputs on the training (R, n, C) and test
    points (R, t, C), and the trained parameters (R, ...)."""
    from torch.func import functional_call, vmap

    from .train import TrainingDivergedError

    R, n = len(removed), y.shape[0]
    ff = _ForwardFeatures(model)
    names = [k for k, p in ff.named_parameters() if p.requires_grad]
    params = {k: p.detach().expand(R, *p.shape).clone().requires_grad_(True)
              for k, p in ff.named_parameters() if k in names}
    buffers = {k: b for k, b in ff.named_buffers()}
    frozen = {k: p.detach() for k, p in ff.named_parameters() if k not in names}

    def one(p: dict, h: torch.Tensor) -> torch.Tensor:
        return functional_call(ff, {**p, **frozen, **buffers}, (h,))

    fwd = vmap(one, in_dims=(0, None if H.shape[0] == 1 and R > 1 else 0))

    def forward(Hb: torch.Tensor) -> torch.Tensor:
        return fwd(params, Hb[0] if Hb.shape[0] == 1 and R > 1 else Hb)

    keep = torch.ones(R, n, dtype=H.dtype)
    for r, i in enumerate(removed):
        if i >= 0:
            keep[r, i] = 0.0
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(list(params.values()), lr=lr, weight_decay=weight_decay)
    for epoch, perm in enumerate(perms, start=1):
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            w = keep[:, idx]                                              # (R, b)
            denom = float(idx.numel()) if divisor == "batch" else w.sum(dim=1).clamp_min(1.0)
            opt.zero_grad(set_to_none=True)
            per = _per_example_loss(loss, forward(H[:, idx]), y[idx])      # (R, b)
            total = ((per * w).sum(dim=1) / denom).sum()
            if not torch.isfinite(total):
                raise TrainingDivergedError(
                    f"the loss became {float(total.detach())} at epoch {epoch} of the leave-one-out runs (it was "
                    f"finite at initialisation, so training diverged): lr = {lr:g} is too large; lower lr")
            total.backward()
            opt.step()
    with torch.no_grad():
        return forward(H), forward(Ht), {k: v.detach() for k, v in params.items()}


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).long()
    return float((pred == y).double().mean())


def loo_retrain(
    model: torch.nn.Module,
    X_train,
    y_train,
    X_test,
    y_test,
    protocol,
    *,
    points=None,
    seed: int = 0,
    attention: Literal["recompute", "fixed"] = "recompute",
    divisor: Literal["batch", "remaining"] = "batch",
    unit_keys: bool = True,
    chunk: int | None = None,
) -> RetrainResult:
    """The true leave-one-out effects I_true(i, t) (k, t) by retraining without each point i of ``points``.

    ``model``: the network at initialisation (a :class:`linattn.models.TwoLayerNet`, or any module
    with ``features(x)``, ``forward_features(h)`` and ``n_outputs``; copied, not trained in place);
    for MLP-Attn with ``attention="recompute"`` its attention must be built from X_train
    (``mlp_attn(attention_keys(X_train, unit_keys=unit_keys), ...)``, checked). X_train (n, d),
    y_train (n,) class indices, X_test (t, d), y_test (t,). ``protocol``: a
    :class:`linattn.train.TrainProtocol` (loss "auto": cross-entropy for C >= 2 outputs, MSE on
    +-1 targets for one; with loss "mse" and C outputs, one-hot targets, as
    :func:`linattn.data.regression_targets` codes them). ``seed``: the minibatch order, drawn as
    :func:`linattn.train.train` draws it (the full run is ``train(model, X_train, targets,
    protocol, seed=seed)``). ``points``: the training indices to remove, one at a time (default
    all n). ``attention``, ``divisor``: what removing a point means (module docstring).
    ``chunk``: replicas trained together (default: as many as fit in about 512 MiB).

    Readout and sign as :func:`linattn.influence.influence_loo` (true-class output; I > 0: removing
    i lowers it), so ``effects`` is comparable entry by entry with the ``I`` of
    :func:`linattn.malleability.model_influence` restricted to the rows ``points``.
    """
    from .data import regression_targets
    from .train import TrainProtocol

    _check_model(model)
    if not isinstance(protocol, TrainProtocol):
        raise TypeError(f"protocol must be a linattn.train.TrainProtocol, got {type(protocol).__name__}")
    seed = check_seed(seed)
    check_option(attention, "attention", ATTENTION_MODES)
    check_option(divisor, "divisor", DIVISORS)
    dtype = next(p for p in model.parameters() if p.requires_grad).dtype
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    X_test = as_tensor(X_test, "X_test", ndim=2, min_rows=1)
    n, t = X_train.shape[0], X_test.shape[0]
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test has {X_test.shape[1]} columns but X_train has {X_train.shape[1]}")
    C = int(model.n_outputs)
    y_tr = as_tensor(y_train, "y_train", ndim=1, dtype=None).long()
    y_te = as_tensor(y_test, "y_test", ndim=1, dtype=None).long()
    if y_tr.shape[0] != n:
        raise ValueError(f"y_train has {y_tr.shape[0]} labels for the {n} rows of X_train; pass one per row")
    if y_te.shape[0] != t:
        raise ValueError(f"y_test has {y_te.shape[0]} labels for the {t} rows of X_test; pass one per row")
    if bool((y_te < 0).any()) or bool((y_te >= max(C, 2)).any()):
        raise ValueError(f"y_test must hold class indices in [0, {max(C, 2) - 1}] for a model with {C} outputs")
    loss = protocol.loss_for(C)
    targets = y_tr if loss == "ce" else regression_targets(y_tr, C)
    targets = targets if targets.ndim != 1 or loss == "ce" else targets[:, None]
    if loss == "ce" and (bool((y_tr < 0).any()) or bool((y_tr >= C).any())):
        raise ValueError(f"y_train must hold class indices in [0, {C - 1}] for a model with {C} outputs")
    pts = _check_points(points, n)
    if chunk is not None:
        chunk = check_int(chunk, "chunk")
    if attention == "recompute" and getattr(model, "feature_map", None) is not None:
        from .models import check_attention_keys

        check_attention_keys(model, X_train, unit_keys=unit_keys)
    attn_label = attention if getattr(model, "feature_map", None) is not None else "n/a"

    batch = n if protocol.batch_size is None else min(protocol.batch_size, n)
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(n, generator=gen) for _ in range(protocol.epochs)]  # train()'s draws
    base = copy.deepcopy(model)
    d_feat = int(base.features(X_train[:1]).shape[1])
    shared = getattr(base, "feature_map", None) is None or attention == "fixed"
    size = chunk or _chunk_size(base, n, t, d_feat, shared)
    order = pts.tolist()
    targets = targets.to(dtype) if loss == "mse" else targets

    t0 = time.perf_counter()
    effects, fulls, first = [], [], None
    for start in range(0, len(order), max(size - 1, 1)):
        removed = [-1] + order[start:start + max(size - 1, 1)]
        H, Ht = _features(base, X_train, X_test, removed, attention, unit_keys)
        out_tr, out_te, trained = _train_chunk(base, removed, H, Ht, targets, loss=loss, perms=perms, batch=batch,
                                               optimizer=protocol.optimizer, lr=protocol.lr,
                                               weight_decay=protocol.weight_decay, divisor=divisor)
        g = readout(out_te, y_te)                                           # (R, t)
        effects.append(g[0][None] - g[1:])
        fulls.append(out_te[0].to(torch.float64))
        if first is None:
            first = (out_tr[0], out_te[0], {k: v[0] for k, v in trained.items()})
    seconds = time.perf_counter() - t0

    full_model = copy.deepcopy(base)
    with torch.no_grad():
        for k, v in first[2].items():
            full_model.get_parameter(k.removeprefix("model.")).copy_(v)
    spread = max(float((f - fulls[0]).abs().max()) for f in fulls)
    config = dict(n=n, t=t, k=len(order), seed=seed, attention=attn_label, divisor=divisor, loss=loss,
                  epochs=protocol.epochs, lr=protocol.lr, batch_size=protocol.batch_size,
                  weight_decay=protocol.weight_decay, optimizer=protocol.optimizer, chunk=size)
    return RetrainResult(effects=torch.cat(effects).to(torch.float64), points=pts, f_test=fulls[0],
                         model=full_model, train_acc=_accuracy(first[0], y_tr), test_acc=_accuracy(first[1], y_te),
                         full_spread=spread, seconds=seconds, config=config)


# --------------------------------------------------------------------------- agreement statistics


def _level(level) -> float:
    return check_range(level, "level", 0.0, 1.0, lo_open=True, hi_open=True)


def fisher_interval(r: float, n: int, level: float = 0.95, method: str = "pearson") -> tuple[float, float]:
    """The Fisher-z interval of a correlation r over n pairs: tanh(atanh(r) -+ z se).

    se = 1 / sqrt(n - 3) for Pearson's r; for Spearman's rho Bonett and Wright's (2000)
    se = sqrt((1 + rho^2 / 2) / (n - 3)). Assumes independent pairs (n >= 4); r = +-1 gives (r, r).
    """
    from .stats import z_value

    n = check_int(n, "n", minimum=4)
    check_option(method, "method", METHODS)
    r = check_range(r, "r", -1.0, 1.0)
    if abs(r) == 1.0:
        return r, r
    se = math.sqrt((1 + r * r / 2) / (n - 3)) if method == "spearman" else 1 / math.sqrt(n - 3)
    z, q = math.atanh(r), z_value(_level(level))
    return math.tanh(z - q * se), math.tanh(z + q * se)


def correlation_difference(first: dict, second: dict) -> dict:
    """r1 - r2 of two correlations, each a dict(r, lo, hi) with its own interval, with Zou's (2007)
    interval for the difference of two independent correlations (the correlation analogue of
    Newcombe's for rates, :func:`linattn.stats.rate_difference`)::

        lo = d - sqrt((r1 - l1)^2 + (u2 - r2)^2),   hi = d + sqrt((u1 - r1)^2 + (r2 - l2)^2).

    Returns dict(diff, lo, hi) (NaN if either correlation is NaN).
    """
    vals = []
    for name, c in (("first", first), ("second", second)):
        if not isinstance(c, dict) or not {"r", "lo", "hi"} <= set(c):
            raise TypeError(f"{name} must be a dict with r, lo and hi (a correlation and its interval), got {c!r}")
        vals.append((float(c["r"]), float(c["lo"]), float(c["hi"])))
    (r1, l1, u1), (r2, l2, u2) = vals
    d = r1 - r2
    return {"diff": d, "lo": d - math.sqrt((r1 - l1) ** 2 + (u2 - r2) ** 2),
            "hi": d + math.sqrt((u1 - r1) ** 2 + (r2 - l2) ** 2)}


def _corr(a: np.ndarray, b: np.ndarray, method: str) -> float:
    from scipy.stats import pearsonr, spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float((pearsonr if method == "pearson" else spearmanr)(a, b).statistic)


def _paired(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    x = as_tensor(a, name_a, dtype=torch.float64).reshape(-1).numpy()
    y = as_tensor(b, name_b, dtype=torch.float64).reshape(-1).numpy()
    if x.shape != y.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same number of entries, got {x.size} and {y.size}")
    return x, y


def correlation(pred, true, method: Literal["pearson", "spearman"] = "pearson", level: float = 0.95) -> dict:
    """Pearson's r or Spearman's rho between paired values (flattened), with the count and the
    :func:`fisher_interval`: dict(r, n, lo, hi). A constant input gives r = NaN (and a NaN interval)."""
    x, y = _paired(pred, true, "pred", "true")
    check_option(method, "method", METHODS)
    if x.size < 4:
        raise ValueError(f"a correlation with an interval needs at least 4 pairs, got {x.size}")
    r = _corr(x, y, method)
    lo, hi = (float("nan"),) * 2 if math.isnan(r) else fisher_interval(r, x.size, level, method)
    return {"r": r, "n": int(x.size), "lo": lo, "hi": hi}


def pair_correlation(pred, true, method: Literal["pearson", "spearman"] = "pearson", level: float = 0.95,
                     n_boot: int = 400, seed: int = 0) -> dict:
    """The correlation over all (i, t) entries of two (k, t) influence matrices, with an interval from a
    bootstrap over the rows (training points; each resample keeps a point's whole row): the k t pairs
    are not independent (one point's influences on the t test points move together), so a Fisher
    interval with n = k t would be too narrow. dict(r, n (= k t), rows (= k), lo, hi)."""
    A = as_tensor(pred, "pred", ndim=2)
    B = as_tensor(true, "true", ndim=2)
    if A.shape != B.shape:
        raise ValueError(f"pred and true must have the same shape (k, t), got {tuple(A.shape)} and {tuple(B.shape)}")
    check_option(method, "method", METHODS)
    k = A.shape[0]
    if k < 4:
        raise ValueError(f"the bootstrap over training points needs at least 4 rows, got {k}")
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    a, b = A.numpy(), B.numpy()
    r = _corr(a.ravel(), b.ravel(), method)
    rng = np.random.default_rng(check_seed(seed))
    boots = np.array([_corr(a[s].ravel(), b[s].ravel(), method) for s in rng.integers(0, k, size=(n_boot, k))])
    boots = boots[np.isfinite(boots)]
    lv = _level(level)
    lo, hi = (np.quantile(boots, [(1 - lv) / 2, (1 + lv) / 2]) if boots.size else (float("nan"),) * 2)
    return {"r": r, "n": int(a.size), "rows": int(k), "lo": float(lo), "hi": float(hi)}


def sign_agreement(pred_scores, true_scores, tau: float = 0.1, level: float = 0.95) -> dict:
    """On the top tau fraction of points by |pred_scores| (:func:`linattn.malleability.select_top`,
    the points malleability tracks), how many have sign(pred) == sign(true): dict(k, n, rate, lo, hi)
    with the Wilson interval."""
    from .malleability import select_top
    from .stats import wilson_interval

    x, y = _paired(pred_scores, true_scores, "pred_scores", "true_scores")
    top = select_top(torch.from_numpy(x), tau).numpy()
    k = int((np.sign(x[top]) == np.sign(y[top])).sum())
    lo, hi = wilson_interval(k, top.size, level)
    return {"k": k, "n": int(top.size), "rate": k / top.size, "lo": lo, "hi": hi}


def agreement(I_pred, I_true, *, tau: float = 0.1, level: float = 0.95, n_boot: int = 400, seed: int = 0) -> dict:
    """How well a predicted influence matrix (k, t) tracks the true one (k, t), in one flat dict.

    pairs_{pearson,spearman}_{r,lo,hi}: over all k t pairs (bootstrap over rows, :func:`pair_correlation`);
    scores_{pearson,spearman}_{r,lo,hi}: over the k per-point scores s_i = mean_t I(i, t) (Fisher,
    :func:`correlation`); sign_{k,n,rate,lo,hi}: :func:`sign_agreement` of the scores on the top tau,
    sign_all_{k,n,rate,lo,hi} on every point; n_pairs, n_points.
    """
    A = as_tensor(I_pred, "I_pred", ndim=2)
    B = as_tensor(I_true, "I_true", ndim=2)
    out: dict[str, Any] = {}
    for method in METHODS:
        p = pair_correlation(A, B, method, level, n_boot, seed)
        s = correlation(A.mean(dim=1), B.mean(dim=1), method, level)
        out.update({f"pairs_{method}_{k}": p[k] for k in ("r", "lo", "hi")})
        out.update({f"scores_{method}_{k}": s[k] for k in ("r", "lo", "hi")})
        out["n_pairs"], out["n_points"] = p["n"], s["n"]
    sg = sign_agreement(A.mean(dim=1), B.mean(dim=1), tau, level)
    out.update({f"sign_{k}": v for k, v in sg.items()})
    sa = sign_agreement(A.mean(dim=1), B.mean(dim=1), 1.0, level)
    out.update({f"sign_all_{k}": v for k, v in sa.items()})
    return out
