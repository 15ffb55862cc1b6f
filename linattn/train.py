"""Training the two networks as in v1 of the paper, and Madry adversarial training.

v1's protocol (DIGEST section 4): Adam, lr 1e-3, batch 128, 500 epochs, "L2 regularisation
1e-3"; cross-entropy for the 10-class tasks, MSE for the binary ones. Here:

- ``loss="ce"``: mean cross-entropy of the C logits model(x) (N, C) against class indices.
- ``loss="mse"``: torch's mean squared error over all N C entries,
  L = (1/(N C)) sum_{i,c} (f_ic - y_ic)^2, for ±1 targets (C = 1) or one-hot targets.
- ``weight_decay``: the *coupled* L2 penalty of ``torch.optim`` (the gradient gets
  ``weight_decay * W`` added, i.e. (weight_decay / 2) ||W||_F^2 is added to the loss), for
  both Adam and GD. This is literal "L2 regularisation"; decoupled AdamW is not used.
- ``penalty`` (a keyword of :func:`train` and :func:`adversarial_train`), what the penalty pulls
  towards, with lambda = ``weight_decay`` and W_0 the weights when training starts (the
  initialisation):

  - ``"l2"`` (default, v1): (lambda / 2) ||W||_F^2, gradient g = dL/dW + lambda W;
  - ``"anchored"``: (lambda / 2) ||W - W_0||_F^2, gradient g = dL/dW + lambda (W - W_0), zero at
    initialisation, so it does not shrink the weights and a network with no data gradient stays
    at W_0 [ours: the review's control for the coupled penalty, issue 15].

  Both are coupled (Adam normalises g, penalty included). :func:`penalty_share` measures how often
  the penalty's gradient outweighs the data's, coordinate by coordinate.
- ``optimizer="gd"``: plain (stochastic) gradient descent, no momentum; with
  ``batch_size=None`` it is full-batch GD, the setting of the NTK theory
  (see :func:`linattn.predictors.gd_time`).

The model is trained in place, on the device of its parameters (inputs and targets are moved
there). Shuffling uses a ``torch.Generator`` seeded with ``seed``,
so the same seed gives the same numbers on the same machine. For the models of
:mod:`linattn.models` the fixed feature map x -> x^ (unit rows, linearized attention) has
no parameters, so :func:`train` computes x^ once and trains on it (the same function,
several times faster); :func:`adversarial_train` must differentiate through it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from ._validation import (
    ScaleError,
    as_tensor,
    check_bool,
    check_clip,
    check_int,
    check_labels,
    check_option,
    check_pixels,
    check_range,
    check_seed,
)

__all__ = ["PENALTIES", "TrainProtocol", "TrainResult", "TrainingDivergedError", "train", "adversarial_train",
           "penalty_share"]

PENALTIES = ("l2", "anchored")  # see the module docstring


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss became NaN or inf during training (it was finite at initialisation): lr is too large.

    A FloatingPointError (as before) and a ValueError naming ``lr``, the argument to change.
    """


@dataclass(frozen=True)
class TrainProtocol:
    """How a network is trained; the defaults are v1's protocol (DIGEST section 4).

    epochs: passes over the training set; lr: the step size; batch_size: minibatch size
    (``None``: full batch); weight_decay: the coupled L2 penalty (see the module docstring);
    optimizer: ``"adam"`` or ``"gd"`` (plain SGD, no momentum); loss: ``"ce"``
    (cross-entropy on C logits), ``"mse"`` (squared error on ±1 or one-hot targets) or
    ``"auto"``: cross-entropy for C >= 2 outputs, MSE on ±1 targets for one output [v1].

    The experiment configs hold one (``config.protocol``); :func:`train` and
    :func:`adversarial_train` take it as ``protocol=``. What the weight decay pulls towards
    (``penalty=``, zero or W_0) is an argument of theirs, not a field here: a protocol is stored
    whole in the key of every result cell, and a new field would change the keys of the cells
    stored before it (:class:`linattn.experiments.part2.WidthSweepConfig` holds ``penalty``).
    """

    epochs: int = 500
    lr: float = 1e-3
    batch_size: int | None = 128
    weight_decay: float = 1e-3
    optimizer: str = "adam"
    loss: str = "auto"

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", minimum=0)
        check_range(self.lr, "lr", 0.0, float("inf"), lo_open=True)
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size")
        check_range(self.weight_decay, "weight_decay", 0.0, float("inf"))
        check_option(self.optimizer, "optimizer", ("adam", "gd"))
        check_option(self.loss, "loss", ("auto", "ce", "mse"))

    def loss_for(self, n_outputs: int) -> str:
        """The loss for a model with ``n_outputs`` outputs ("auto": ce for C >= 2, else mse)."""
        if self.loss != "auto":
            return self.loss
        return "ce" if check_int(n_outputs, "n_outputs") > 1 else "mse"

    def steps(self, n: int) -> int:
        """Optimiser steps of the whole run on n training points: epochs x ceil(n / batch)."""
        per_epoch = 1 if self.batch_size is None else -(-int(n) // min(self.batch_size, int(n)))
        return self.epochs * per_epoch


_UNSET: Any = object()


def _protocol(protocol: TrainProtocol | None, model: torch.nn.Module, **given: Any) -> TrainProtocol:
    """``protocol`` (or v1's) with the arguments given explicitly applied on top."""
    if protocol is not None and not isinstance(protocol, TrainProtocol):
        raise TypeError(f"protocol must be a TrainProtocol, got {type(protocol).__name__}")
    explicit = {k: v for k, v in given.items() if v is not _UNSET}
    if protocol is None and "epochs" not in explicit:
        raise TypeError("give the number of epochs (epochs=...) or a TrainProtocol (protocol=...)")
    p = dataclasses.replace(protocol or TrainProtocol(), **explicit)
    if p.loss == "auto":
        p = dataclasses.replace(p, loss=p.loss_for(int(getattr(model, "n_outputs", 2))))
    return p


@dataclass
class TrainResult:
    """What :func:`train` returns.

    loss, accuracy: lists of length epochs + 1, the data loss (no penalty) and accuracy on
    the whole training set at initialisation (index 0) and after each epoch.
    ntk: epoch -> empirical NTK on ``X_ntk`` (float64) at each epoch of ``record_ntk_at``.
    state: a copy of the model's final ``state_dict``. steps: optimiser steps taken.
    """

    loss: list[float]
    accuracy: list[float]
    ntk: dict[int, torch.Tensor]
    state: dict[str, torch.Tensor]
    steps: int
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return self.loss[-1]

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1]


def _check_targets(targets, n: int, loss: str) -> torch.Tensor:
    """Targets for ``loss``: class indices (n,) int64 for "ce"; for "mse" float targets (n, C) whose
    sign (one output) or argmax (C outputs) is the class, so that the accuracy means something."""
    if loss == "ce":
        return check_labels(targets, "targets", n=n, rows_of="X")
    raw = as_tensor(targets, "targets", ndim=(1, 2), dtype=None)
    if raw.shape[0] != n:
        raise ValueError(f"targets has {raw.shape[0]} rows for the {n} rows of X; pass one per row")
    fix = ("code class indices with linattn.data.regression_targets(y, n_outputs) "
           "(+-1 for one output, one-hot for C)")
    if not raw.is_floating_point():
        if not bool(((raw == 1) | (raw == -1)).all()):
            raise TypeError(
                f"loss='mse' needs float targets (+-1 for one output, one-hot or +-1 rows for C outputs), "
                f"got integer targets with values {sorted(set(raw.unique().tolist()))[:5]} (class indices?); {fix}"
            )
    y = raw.to(torch.float64)
    y = y if y.ndim == 2 else y[:, None]
    if y.shape[1] == 1:
        zeros = int((y == 0).sum())
        if zeros:
            raise ValueError(
                f"targets for loss='mse' with one output must be signed (the sign is the class: +1 / -1), "
                f"got 0 in {zeros} of {n} rows (0/1 labels?); {fix}"
            )
    elif n:
        top = y.max(dim=1, keepdim=True).values
        ties = int(((y == top).sum(dim=1) > 1).sum())
        if ties:
            raise ValueError(
                f"targets for loss='mse' with {y.shape[1]} outputs must have one largest entry a row "
                f"(one-hot or +-1 coding; the argmax is the class), got {ties} rows with a tie; {fix}"
            )
    return y


def _loss_fn(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(out, y)
    return F.mse_loss(out, y.to(out.dtype))


def _accuracy(loss: str, out: torch.Tensor, y: torch.Tensor) -> float:
    if loss == "ce":
        return float((out.argmax(1) == y).double().mean())
    if y.shape[1] == 1:  # ±1 targets: the sign is the class
        return float((torch.sign(out[:, 0]) == torch.sign(y[:, 0].to(out.dtype))).double().mean())
    return float((out.argmax(1) == y.argmax(1)).double().mean())


def _check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be 'l2' (lambda/2 ||W||^2, v1's) or 'anchored' (lambda/2 ||W - W_0||^2), "
                         f"got {penalty!r}; the strength is weight_decay")
    return penalty


def _pull_to_anchors(params, anchors, weight_decay: float) -> None:
    """Add the anchored penalty's gradient lambda (W - W_0) to each parameter's gradient, in place."""
    with torch.no_grad():
        for p, p0 in zip(params, anchors):
            if p.grad is not None:  # as torch's decay: a parameter without a gradient is not stepped
                p.grad.add_(p - p0, alpha=weight_decay)


def _default_ntk(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    from .ntk import empirical_ntk  # the Part I module (empirical NTK, closed form)

    return empirical_ntk(model, X)


def _fit(
    model: torch.nn.Module,
    X,
    targets,
    *,
    loss: str,
    optimizer: str,
    epochs: int,
    lr: float,
    batch_size: int | None,
    weight_decay: float,
    seed: int,
    penalty: str,
    record_ntk_at: Iterable[int] | None,
    X_ntk,
    ntk_fn: Callable | None,
    progress: bool,
    perturb: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None,
    desc: str,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
) -> TrainResult:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' (cross-entropy, class indices) or 'mse' (±1 / one-hot targets), got {loss!r}")
    check_option(optimizer, "optimizer", ("adam", "gd"))
    epochs = check_int(epochs, "epochs", minimum=0)
    lr = check_range(lr, "lr", 0.0, float("inf"), lo_open=True)
    weight_decay = check_range(weight_decay, "weight_decay", 0.0, float("inf"))
    penalty = _check_penalty(penalty)
    seed = check_seed(seed)
    progress = check_bool(progress, "progress")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable (epoch, model) or None, got {type(callback).__name__}")
    if ntk_fn is not None and not callable(ntk_fn):
        raise TypeError(f"ntk_fn must be a callable (model, X_ntk) -> kernel or None, got {type(ntk_fn).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    dtype, device = params[0].dtype, params[0].device
    X = as_tensor(X, "X", ndim=2, dtype=dtype, min_rows=1).to(device)
    n = X.shape[0]
    batch = n if batch_size is None else min(check_int(batch_size, "batch_size"), n)
    y = _check_targets(targets, n, loss).to(device)
    if record_ntk_at is not None and (isinstance(record_ntk_at, (str, bytes)) or not hasattr(record_ntk_at, "__iter__")):
        raise TypeError(f"record_ntk_at must be a list of epochs (e.g. [0, {epochs}]) or None, got {record_ntk_at!r}")
    epochs_ntk = sorted({check_int(e, "record_ntk_at epoch", minimum=0) for e in (record_ntk_at or ())})
    if epochs_ntk and epochs_ntk[-1] > epochs:
        raise ValueError(f"record_ntk_at asks for epoch {epochs_ntk[-1]} but training runs {epochs} epochs")
    if epochs_ntk and X_ntk is None:
        raise ValueError("record_ntk_at needs X_ntk, the points on which to evaluate the empirical NTK")
    ntk_fn = ntk_fn or _default_ntk
    Xn = None if X_ntk is None else as_tensor(X_ntk, "X_ntk", ndim=2, dtype=torch.float64, min_rows=1).to(device)

    # The feature map of linattn.models has no parameters: compute it once.
    fast = perturb is None and hasattr(model, "features") and hasattr(model, "forward_features")
    with torch.no_grad():
        H = model.features(X) if fast else X
    if fast and not bool(torch.isfinite(H).all()):
        raise ScaleError(
            f"the model's features of X overflow {H.dtype} (inf or NaN; max |X| = {float(X.abs().max()):.3g}); "
            "scale X (and the attention keys) down, or build the model with dtype=torch.float64"
        )
    forward = model.forward_features if fast else model

    # "l2": torch's own coupled decay (g + lambda W); "anchored": g + lambda (W - W_0), added below
    decay = weight_decay if penalty == "l2" else 0.0
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, weight_decay=decay)
    anchors = [p.detach().clone() for p in params] if penalty == "anchored" and weight_decay > 0 else None
    gen = torch.Generator().manual_seed(seed)

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            out = forward(H)
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"model must map X ({n}, d) to outputs ({n}, C), got {got}")
            if loss == "ce" and out.shape[1] <= int(y.max()):
                raise ValueError(f"targets hold class {int(y.max())} but the model has {out.shape[1]} outputs")
            if loss == "mse" and out.shape[1] != y.shape[1]:
                raise ValueError(f"targets have {y.shape[1]} columns but the model has {out.shape[1]} outputs")
            return float(_loss_fn(loss, out, y)), _accuracy(loss, out, y)

    ntks: dict[int, torch.Tensor] = {}
    l0, a0 = evaluate()
    if not math.isfinite(l0):
        raise ScaleError(
            f"the model's loss on X is {l0} at initialisation, before any step (its outputs overflow "
            f"{dtype}; max |X| = {float(X.abs().max()):.3g}); scale X down or build the model with "
            "dtype=torch.float64"
        )
    if 0 in epochs_ntk:
        ntks[0] = ntk_fn(model, Xn).detach().to(torch.float64).clone()
    losses, accs = [l0], [a0]
    if callback is not None:
        callback(0, model)
    steps = 0
    t0 = time.perf_counter()
    iterator = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=desc, leave=False)
    for epoch in iterator:
        perm = torch.randperm(n, generator=gen).to(device)  # drawn on the CPU: same order on any device
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            xb, yb = H[idx], y[idx]
            if perturb is not None:
                xb = perturb(xb, yb, steps)
            opt.zero_grad(set_to_none=True)
            batch_loss = _loss_fn(loss, forward(xb), yb)
            if not torch.isfinite(batch_loss):
                raise TrainingDivergedError(
                    f"the loss became {float(batch_loss.detach())} at epoch {epoch} (it was finite at initialisation, "
                    f"so training diverged): lr = {lr:g} is too large for this problem; lower lr"
                )
            batch_loss.backward()
            if anchors is not None:
                _pull_to_anchors(params, anchors, weight_decay)
            opt.step()
            steps += 1
        l, a = evaluate()
        if not math.isfinite(l):  # the last step of the epoch diverged after its batch loss was checked
            raise TrainingDivergedError(
                f"the loss became {l} after epoch {epoch} (it was finite at initialisation, so training "
                f"diverged): lr = {lr:g} is too large for this problem; lower lr"
            )
        losses.append(l)
        accs.append(a)
        if epoch in epochs_ntk:
            ntks[epoch] = ntk_fn(model, Xn).detach().to(torch.float64).clone()
        if callback is not None:
            callback(epoch, model)
        if progress:
            iterator.set_postfix(loss=f"{l:.4g}", acc=f"{a:.3f}")
    seconds = time.perf_counter() - t0
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    config = dict(loss=loss, optimizer=optimizer, epochs=epochs, lr=lr, batch_size=batch_size,
                  weight_decay=weight_decay, penalty=penalty, seed=seed, n=n)
    return TrainResult(losses, accs, ntks, state, steps, seconds, config)


def train(
    model: torch.nn.Module,
    X,
    targets,
    protocol: TrainProtocol | None = None,
    *,
    loss: str = _UNSET,
    optimizer: str = _UNSET,
    epochs: int = _UNSET,
    lr: float = _UNSET,
    batch_size: int | None = _UNSET,
    weight_decay: float = _UNSET,
    seed: int = 0,
    penalty: str = "l2",
    record_ntk_at: Iterable[int] | None = None,
    X_ntk=None,
    ntk_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on (X, targets) and return its history.

    Shapes: X (n, d); targets (n,) int64 class indices for ``loss="ce"`` (model(x) is (n, C)
    logits; floats only if they hold integers), or (n,) ±1 / (n, C) one-hot floats for
    ``loss="mse"`` (the accuracy reads the class from the sign / argmax, so 0/1 labels or tied
    rows are refused: code class indices with :func:`linattn.data.regression_targets`). Minibatches of
    ``batch_size`` (``None``: full batch) in an order drawn from ``torch.Generator(seed)``.
    ``record_ntk_at``: epochs (0 = initialisation) at which to store the empirical NTK on
    ``X_ntk`` (m, d), computed by ``ntk_fn(model, X_ntk)`` (default
    :func:`linattn.ntk.empirical_ntk`). ``progress``: a tqdm bar over epochs. ``callback(epoch,
    model)`` runs at initialisation (epoch 0) and after every epoch (e.g. to take snapshots).

    The protocol: ``protocol`` (a :class:`TrainProtocol`; default v1's) with any of
    ``loss``, ``optimizer``, ``epochs``, ``lr``, ``batch_size``, ``weight_decay`` given
    explicitly applied on top; without a protocol, ``epochs`` is required. ``penalty``: what
    the weight decay pulls towards, ``"l2"`` (zero, v1's) or ``"anchored"`` (the initial weights;
    see the module docstring).
    """
    p = _protocol(protocol, model, loss=loss, optimizer=optimizer, epochs=epochs, lr=lr,
                  batch_size=batch_size, weight_decay=weight_decay)
    return _fit(model, X, targets, loss=p.loss, optimizer=p.optimizer, epochs=p.epochs, lr=p.lr,
                batch_size=p.batch_size, weight_decay=p.weight_decay, seed=seed, penalty=penalty,
                record_ntk_at=record_ntk_at, X_ntk=X_ntk, ntk_fn=ntk_fn, progress=progress,
                perturb=None, desc="train", callback=callback)


def adversarial_train(
    model: torch.nn.Module,
    X,
    targets,
    *,
    eps: float,
    attack: str = "pgd",
    steps: int = 40,
    step_size: float = 0.01,
    random_start: bool = True,
    clip: tuple[float, float] | None = (0.0, 1.0),
    attack_loss: str | None = None,
    protocol: TrainProtocol | None = None,
    loss: str = _UNSET,
    optimizer: str = _UNSET,
    epochs: int = _UNSET,
    lr: float = _UNSET,
    batch_size: int | None = _UNSET,
    weight_decay: float = _UNSET,
    seed: int = 0,
    penalty: str = "l2",
    record_ntk_at: Iterable[int] | None = None,
    X_ntk=None,
    ntk_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Madry et al. (2018) adversarial training: each minibatch is replaced by its
    l_inf PGD adversarial version against the current model before the step,

        min_W  E_(x, y) max_{||delta||_inf <= eps} L(f_W(x + delta), y).

    The inner max is :func:`linattn.attacks.pgd` (``steps`` steps of ``step_size``, a random
    start when ``random_start``, inputs clipped to ``clip``) climbing the per-example loss
    ``attack_loss`` (default: the training ``loss``) of :func:`linattn.attacks.loss_closure`.
    The random start of minibatch k uses seed ``(seed * 1_000_003 + k) mod 2^63``, so runs are
    deterministic. ``attack="fgsm"`` is one step of size eps from x (no random start).
    Other arguments and the result as in :func:`train` (training is on adversarial
    batches only, as in Madry et al.; the recorded loss and accuracy are on clean data).
    """
    from .attacks import loss_closure, pgd  # the attacks module (FGSM, PGD, MIM)

    p = _protocol(protocol, model, loss=loss, optimizer=optimizer, epochs=epochs, lr=lr,
                  batch_size=batch_size, weight_decay=weight_decay)
    loss = p.loss
    eps = check_range(eps, "eps", 0.0, 1.0)
    check_option(attack, "attack", ("pgd", "fgsm"))
    steps = check_int(steps, "steps")
    step_size = check_range(step_size, "step_size", 0.0, float("inf"), lo_open=True)
    random_start = check_bool(random_start, "random_start")
    seed = check_seed(seed)
    clip = check_clip(clip)
    attack_loss = loss if attack_loss is None else check_option(attack_loss, "attack_loss", ("ce", "mse", "margin"))
    if loss == "mse" and attack_loss != "mse":
        raise ValueError(f"attack_loss={attack_loss!r} needs class indices, but loss='mse' trains on float "
                         "targets; use attack_loss='mse' (or None) with loss='mse'")
    # the clean inputs must lie in the clip box (else every attack moves them by more than eps)
    check_pixels(as_tensor(X, "X", ndim=2, dtype=None), "X", clip)
    if attack == "fgsm":
        steps, step_size, random_start = 1, max(eps, 1e-12), False

    def perturb(xb: torch.Tensor, yb: torch.Tensor, k: int) -> torch.Tensor:
        target = yb if loss == "ce" or yb.shape[1] > 1 else yb[:, 0]
        fn = loss_closure(model, target, loss=attack_loss)
        x_adv = pgd(fn, xb, eps=eps, steps=steps, step_size=step_size, random_start=random_start,
                    seed=(seed * 1_000_003 + k) % 2**63, clip=clip)
        return x_adv.detach().to(xb.dtype)

    return _fit(model, X, targets, loss=p.loss, optimizer=p.optimizer, epochs=p.epochs, lr=p.lr,
                batch_size=p.batch_size, weight_decay=p.weight_decay, seed=seed, penalty=penalty,
                record_ntk_at=record_ntk_at, X_ntk=X_ntk, ntk_fn=ntk_fn, progress=progress,
                perturb=perturb, desc=f"{attack} adversarial training")


def penalty_share(model: torch.nn.Module, X, targets, *, weight_decay: float, loss: str, anchor=None) -> dict:
    """How the penalty's gradient compares with the data's, coordinate by coordinate.

    With g = dL/dW, the gradient of the mean data loss ``loss`` ("ce" or "mse", targets as in
    :func:`train`) on the whole of (X, targets) (what a random minibatch gradient averages to), and
    p = lambda (W - A) the penalty's, lambda = ``weight_decay``, A = 0 (``"l2"``) or the
    tensors ``anchor`` (``"anchored"``; one per trainable parameter, e.g. the initial W):

    - ``share`` = mean_ij 1[|p_ij| > |g_ij|] over every trained coordinate;
    - ``live`` = the fraction of coordinates with g_ij != 0, and ``share_live`` the share among
      them (an input coordinate that is 0 on every point, e.g. an MNIST border pixel, or a
      neuron inactive on every point, gets no data gradient at all, and only the penalty moves it);
    - ``ratio`` = the median over live coordinates of |p_ij| / |g_ij| (> 1: the penalty wins at
      the typical coordinate). In the NTK parametrisation g_ij ~ m^{-1/2} while W_ij ~ 1, so
      at initialisation the ratio grows like sqrt(m).
    """
    loss = check_option(loss, "loss", ("ce", "mse"))
    weight_decay = check_range(weight_decay, "weight_decay", 0.0, float("inf"))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    anchor = [torch.zeros_like(p) for p in params] if anchor is None else list(anchor)
    if len(anchor) != len(params) or any(a.shape != p.shape for a, p in zip(anchor, params)):
        raise ValueError(f"anchor must hold one tensor of the same shape per trainable parameter "
                         f"({[tuple(p.shape) for p in params]}), got {[tuple(a.shape) for a in anchor]}")
    X = as_tensor(X, "X", ndim=2, dtype=params[0].dtype, min_rows=1).to(params[0].device)
    y = _check_targets(targets, X.shape[0], loss).to(X.device)
    grads = torch.autograd.grad(_loss_fn(loss, model(X), y), params)
    g = torch.cat([t.detach().reshape(-1).abs() for t in grads])
    pen = torch.cat([(weight_decay * (p.detach() - a.to(p))).reshape(-1).abs() for p, a in zip(params, anchor)])
    live = g > 0
    return {"share": float((pen > g).double().mean()), "live": float(live.double().mean()),
            "share_live": float((pen[live] > g[live]).double().mean()) if live.any() else math.nan,
            "ratio": float((pen[live] / g[live]).median()) if live.any() else math.nan}
