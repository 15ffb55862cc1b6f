"""Part III: influence malleability, Tables 2-4 of v1.

One cell = one (task, model, seed): train the network as v1 does (or adversarially, for Table 4),
then run the malleability protocol (:func:`linattn.malleability.malleability`, the "transformed"
intervention) for every attack, with MLP-Attn's attention recomputed and, for ``fixed_attacks``,
also held fixed on the same perturbed points.

Experiments (registered in :mod:`linattn.experiments`):

- ``malleability_tables``: Tables 2-3 (four tasks, FGSM, PGD, MIM and the noise control);
- ``adversarial_tables``: Table 4 (PGD after Madry adversarial training);
- ``task_kappa``: kappa_d(G) of each task's training rows (the paper's explanation of Table 3);
- ``malleability_curves``: the flip rates against n, width, training length, eps and tau.

Rows carry the flip rate with its count (``n_flipped`` of ``n_tracked``), Spearman's rho, the
top-tau overlap, and the network's train and test accuracy.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from .._validation import as_tensor, check_int, check_option, check_range
from ..figures import TASK_LABELS
from ..train import TrainProtocol
from .base import Config, Experiment, dtype_field, torch_dtype

__all__ = ["TableConfig", "AdversarialConfig", "CurvesConfig", "paper_model", "accuracy", "robust_accuracy", "table_rows",
           "flip_summary", "flip_ratio", "near_chance", "verdict_summary", "adversarial_change", "kernel_fn_of", "KERNELS", "curve_points", "curve_ratios", "CURVE_AXES",
           "MALLEABILITY_TABLES", "ADVERSARIAL_TABLES", "TASK_KAPPA", "MALLEABILITY_CURVES", "TASK_LABELS"]

TASKS = ("mnist", "mnist_3v8", "cifar10", "cifar_car_plane")
ATTACKS = ("fgsm", "pgd", "mim", "noise")
KERNELS = ("empirical", "infinite")


def kernel_fn_of(kind: str):
    """The influence kernel of a config: None (the empirical NTK, the protocol's default) or
    Theta_inf of the model's own feature map (:func:`linattn.kernels.ntk_inf`)."""
    from ..kernels import ntk_inf

    check_option(kind, "kernel", KERNELS)
    return None if kind == "empirical" else ntk_inf


@dataclass(frozen=True)
class TableConfig(Config):
    """The protocol behind Tables 2-3 of v1 at one scale. [v1] = the paper's choice, [ours] = a gap filled.

    tasks, models, seeds: the cells (seed = initialisation, minibatch order, attack start) [ours].
    n_train, n_test: class-balanced subsets of the task, drawn (disjoint) from the quick pool
        (``pool_per_class``) or, with ``pool_per_class=None``, from the official splits [ours];
        ``data_seed`` draws them.
    width: hidden width; protocol: the training protocol [v1: Adam, 1e-3, batch 128, L2 1e-3,
        500 epochs; cross-entropy on 10 logits, MSE on +-1 targets for binary tasks].
    eps, tau: attack radius and selected fraction [v1: 0.3, 10%]; ridge: the kernel ridge [ours].
    attacks: the attacks of the tables plus the "noise" control; fixed_attacks: those also run
        with MLP-Attn's C held fixed (the control for the recomputed attention).
    input_map, init_scale: open choices of the paper [ours: "none", 1.0]: pixels centred or
        standardised before the unit norm (:class:`linattn.models.InputMap`), and the scale of
        the initial weights (1: NTK initialisation; 0.01: small initialisation).
    kernel: the kernel the influences are computed with: "empirical" (the trained network's
        empirical NTK, v1's) or "infinite" (the infinite-width NTK Theta_inf of the same feature
        map: the kernel regime itself, the control that separates what the attention kernel's
        geometry does from what finite width and training do).
    dtype: the training precision, "float32" [ours, the paper scale] or "float64" (the quick
        scale: see :func:`linattn.experiments.base.dtype_field`). Left out of a cell's key at its default.
    These four are left out of a cell's key at their defaults, so cells stored before they
    existed keep their keys.

    Scales: quick (the book's build): n = 200, t = 60 from the quick pool, width 128, 3 seeds,
    40 epochs (80 Adam steps) at lr 1e-2 [ours], enough for the networks to learn (on MNIST
    2L-ReLU reaches about 0.9 training accuracy, MLP-Attn about 0.4; at v1's lr 1e-3 and 20
    epochs neither leaves chance). Paper: n = 5,000, t = 1,000 from the official splits, width
    1024, 500 epochs at lr 1e-3.
    """

    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = ("relu", "attn")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 200
    n_test: int = 60
    pool_per_class: int | None = 500
    data_seed: int = 0
    width: int = 128
    protocol: TrainProtocol = TrainProtocol(epochs=20)
    eps: float = 0.3
    tau: float = 0.1
    ridge: float = 1e-3
    attacks: tuple[str, ...] = ATTACKS
    fixed_attacks: tuple[str, ...] = ("pgd", "noise")
    input_map: str = field(default="none", metadata={"omit_default": True})
    init_scale: float = field(default=1.0, metadata={"omit_default": True})
    kernel: str = field(default="empirical", metadata={"omit_default": True})
    dtype: str = dtype_field()

    SCALES = {"quick": dict(lr=1e-2, epochs=40, dtype="float64"),
              "paper": dict(n_train=5000, n_test=1000, pool_per_class=None, width=1024, epochs=500)}
    #: the models a cell may train (subclasses with a third model extend it)
    MODEL_CHOICES: ClassVar[tuple[str, ...]] = ("relu", "attn")

    def __post_init__(self) -> None:
        from ..data import TASKS as KNOWN

        if isinstance(self.tasks, str):
            raise TypeError(f"tasks must be a tuple of task names, got the string {self.tasks!r}")
        for t in self.tasks:
            check_option(t, "task", tuple(KNOWN))
        for m in self.models:
            check_option(m, "model", self.MODEL_CHOICES)
        for s in self.seeds:
            check_int(s, "seed", minimum=0)
        check_int(self.n_train, "n_train", minimum=2)
        check_int(self.n_test, "n_test")
        check_int(self.width, "width")
        check_int(self.data_seed, "data_seed", minimum=0)
        check_range(self.eps, "eps", 0.0, 1.0)
        check_range(self.tau, "tau", 0.0, 1.0, lo_open=True)
        check_range(self.ridge, "ridge", 0.0, float("inf"), lo_open=True)
        for a in (*self.attacks, *self.fixed_attacks):
            check_option(a, "attack", ATTACKS)
        _check_model_options(self.input_map, self.init_scale)
        check_option(self.kernel, "kernel", KERNELS)
        torch_dtype(self.dtype)
        if round(self.tau * self.n_train) < 1:
            raise ValueError(f"tau = {self.tau} of n_train = {self.n_train} selects no point; raise tau or n_train")

    @property
    def epochs(self) -> int:
        return self.protocol.epochs


def require_defaults(config: TableConfig, name: str, keys: tuple[str, ...]) -> None:
    """Refuse an open choice of Part III that ``name`` does not implement, naming the fix."""
    defaults = {f.name: f.default for f in dataclasses.fields(TableConfig)}
    for k in keys:
        if getattr(config, k) != defaults[k]:
            raise ValueError(f"{k} = {getattr(config, k)!r} is not supported by {name}; leave it at "
                             f"{defaults[k]!r} (the open choice is measured in Part III, malleability_tables)")


@dataclass(frozen=True)
class AdversarialConfig(TableConfig):
    """Table 4: PGD malleability after Madry adversarial training [ours: the paper gives no recipe].

    at_epochs, at_steps, at_step_size: epochs of min-max training with a PGD inner loop of
    ``at_steps`` steps of ``at_step_size`` at radius eps (random start). Quick: 40 epochs of PGD-3
    (step 0.15) at lr 1e-2; paper: 100 epochs of PGD-40 (step 0.01, Madry's MNIST recipe) at lr
    1e-3. Rows add the robust accuracy (PGD-40 at eps on the test points), the measure of how
    far adversarial training got.
    """

    tasks: tuple[str, ...] = ("mnist", "cifar10")
    attacks: tuple[str, ...] = ("pgd",)
    at_epochs: int = 10
    at_steps: int = 3
    at_step_size: float = 0.15

    SCALES = {"quick": dict(lr=1e-2, at_epochs=40, dtype="float64"),
              "paper": dict(TableConfig.SCALES["paper"], at_epochs=100, at_steps=40, at_step_size=0.01)}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.at_epochs, "at_epochs")
        check_int(self.at_steps, "at_steps")
        check_range(self.at_step_size, "at_step_size", 0.0, 1.0, lo_open=True)


# --------------------------------------------------------------------------- the models


def _check_model_options(input_map: str, init_scale: float) -> None:
    from ..models import INPUT_MAPS

    check_option(input_map, "input_map", INPUT_MAPS)
    check_range(init_scale, "init_scale", 0.0, float("inf"), lo_open=True)


def paper_model(
    kind: Literal["relu", "attn"],
    X_train,
    y_train,
    n_classes: int,
    *,
    width: int,
    seed: int,
    protocol: TrainProtocol | None = None,
    adversarial: dict | None = None,
    dtype: torch.dtype | str = torch.float32,
    input_map: str = "none",
    init_scale: float = 1.0,
) -> torch.nn.Module:
    """A 2L-ReLU (``"relu"``) or MLP-Attn (``"attn"``, keys = unit rows of X_train) network, trained.

    X_train (n, d) pixels, y_train (n,) class indices. One output with MSE on +-1 targets for
    ``n_classes == 2``, else n_classes logits with cross-entropy [v1]. ``protocol`` None or with
    0 epochs: the network at initialisation. ``adversarial`` = {"eps", "steps", "step_size"}:
    Madry PGD training (:func:`linattn.train.adversarial_train`) instead of standard training.
    ``input_map`` ("none", "center", "standardize": fitted on X_train, part of the network) and
    ``init_scale`` (of the initial weights): see :class:`linattn.models.TwoLayerNet`. ``dtype``: a
    torch dtype or a config's name for one ("float32", "float64").
    """
    from ..data import regression_targets
    from ..models import network
    from ..train import adversarial_train, train

    check_option(kind, "kind", ("relu", "attn"))
    dtype = torch_dtype(dtype)
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    C = 1 if check_int(n_classes, "n_classes", minimum=2) == 2 else n_classes
    model = network(kind, X_train, width, C, input_map=input_map, seed=seed, dtype=dtype, init_scale=init_scale)
    targets = y_train if C > 1 else regression_targets(y_train, 1)
    if adversarial is not None:
        adversarial_train(model, X_train, targets, eps=adversarial["eps"], steps=adversarial["steps"],
                          step_size=adversarial["step_size"], protocol=protocol, seed=seed, progress=False)
    elif protocol is not None and protocol.epochs:
        train(model, X_train, targets, protocol, seed=seed, progress=False)
    return model


def accuracy(model: torch.nn.Module, X, y) -> float:
    """The fraction of rows of X (N, d) that ``model`` classifies as y (N,) (sign of one output, else argmax)."""
    with torch.no_grad():
        out = model(X)
    pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).long()
    return float((pred == torch.as_tensor(y)).double().mean())


def robust_accuracy(model: torch.nn.Module, X, y, *, eps: float, seed: int = 0) -> float:
    """Accuracy on PGD-40 adversarial versions (step 0.01, random start, radius eps, pixels in [0, 1]) of X (N, d)."""
    from ..attacks import loss_closure, pgd
    from ..data import regression_targets

    target = y if model.n_outputs > 1 else regression_targets(y, 1)
    loss = "ce" if model.n_outputs > 1 else "mse"
    x_adv = pgd(loss_closure(model, target, loss=loss), torch.as_tensor(X, dtype=model.W.dtype), eps=eps,
                steps=40, step_size=0.01, seed=seed)
    return accuracy(model, x_adv, y)


def table_rows(td, model: torch.nn.Module, config: TableConfig, *, kind: str, seed: int,
               training: str = "standard", kernel_fn=None) -> list[dict[str, Any]]:
    """One row per (attack, attention mode) of one trained model on one task (see the module docstring);
    after adversarial training the rows also carry the robust test accuracy."""
    from ..malleability import malleability, model_influence

    ident = {"task": td.name, "training": training, "train_acc": accuracy(model, td.X_train, td.y_train),
             "test_acc": accuracy(model, td.X_test, td.y_test)}
    if training == "adversarial":
        ident["robust_acc"] = robust_accuracy(model, td.X_test, td.y_test, eps=config.eps, seed=seed)
    before = model_influence(model, td.X_train, td.y_train, td.X_test, td.y_test, ridge=config.ridge,
                             kernel_fn=kernel_fn)
    rows = []
    for att in config.attacks:
        modes = ["recompute"] + (["fixed"] if kind == "attn" and att in config.fixed_attacks else [])
        X_after = None
        for mode in modes:
            res = malleability(model, td.X_train, td.y_train, td.X_test, td.y_test, attack=att, eps=config.eps,
                               tau=config.tau, attention=mode, ridge=config.ridge, kernel_fn=kernel_fn,
                               seed=seed, before=before, X_after=X_after)
            X_after = res.X_after
            n_tracked = int(res.tracked.shape[0])
            rows.append({**ident, **res.row(), "n_tracked": n_tracked,
                         "n_flipped": int(round(res.flip_rate * n_tracked))})
    return rows


# --------------------------------------------------------------------------- cells


_AXES = ("tasks", "models", "seeds")


def _cells(config: TableConfig) -> list[dict]:
    common = config.common_params(_AXES)
    return [dict(common, task=t, model=m, seed=int(s)) for t in config.tasks for m in config.models
            for s in config.seeds]


@functools.lru_cache(maxsize=2)
def _task_data(task: str, n_train: int, n_test: int, data_seed: int, pool_per_class: int | None):
    from ..data import task_data

    return task_data(task, n_train, n_test, seed=data_seed, pool_per_class=pool_per_class)


def _run(params: dict, cls: type, device: str) -> dict[str, list[dict]]:
    task, kind, seed = params["task"], params["model"], params["seed"]
    cfg = cls.from_params(params, tasks=(task,), models=(kind,), seeds=(seed,))
    td = _task_data(task, cfg.n_train, cfg.n_test, cfg.data_seed, cfg.pool_per_class)
    adversarial = None
    protocol = cfg.protocol
    if isinstance(cfg, AdversarialConfig):
        adversarial = {"eps": cfg.eps, "steps": cfg.at_steps, "step_size": cfg.at_step_size}
        protocol = dataclasses.replace(cfg.protocol, epochs=cfg.at_epochs)
    model = paper_model(kind, td.X_train, td.y_train, td.n_classes, width=cfg.width, seed=seed,
                        protocol=protocol, adversarial=adversarial, input_map=cfg.input_map,
                        init_scale=cfg.init_scale, dtype=cfg.dtype)
    rows = table_rows(td, model, cfg, kind=kind, seed=seed, training="adversarial" if adversarial else "standard",
                      kernel_fn=kernel_fn_of(cfg.kernel))
    return {"rows": rows}


def run_table_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one (task, model, seed) as in v1 and measure every attack (Tables 2-3)."""
    return _run(params, TableConfig, device)


def run_adversarial_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one (task, model, seed) adversarially and measure PGD malleability (Table 4)."""
    return _run(params, AdversarialConfig, device)


def _dim(task: str) -> int:
    from ..data import input_dim

    return input_dim(task)


def _needs(params: dict) -> list[tuple[str, str]]:
    from ..data import TASKS as KNOWN

    name = KNOWN[params["task"]][0]
    if params.get("pool_per_class", 500) is not None:  # an omitted field is at its default
        return [] if name == "mnist" else [(name, "train")]
    return [(name, "train"), (name, "test")]


def _work(params: dict) -> float:
    """Relative cost: training (steps x batch x width x d, times PGD steps + 1 when adversarial)
    plus one n x n kernel and its factorisation per attack and mode."""
    d = _dim(params["task"])
    p = TrainProtocol(**params["protocol"]) if "protocol" in params else TrainProtocol(epochs=20)
    n = params.get("n_train", 200)
    epochs = params.get("at_epochs", p.epochs)
    inner = params.get("at_steps", 0) + 1
    train = dataclasses.replace(p, epochs=epochs).steps(n) * min(p.batch_size or n, n) * params.get("width", 128) * d * inner
    evals = len(params.get("attacks", ATTACKS)) + 3
    return 1e-9 * (train + evals * (n ** 3 / 3 + n * n * (d + params.get("width", 128))))


MALLEABILITY_TABLES = Experiment(
    name="malleability_tables",
    title="Influence flip rates under FGSM, PGD, MIM and noise (Tables 2-3 of v1)",
    chapter="book/part3/malleability.ipynb",
    config=TableConfig,
    cells=_cells,
    run=run_table_cell,
    data=_needs,
    work=_work,
)

ADVERSARIAL_TABLES = Experiment(
    name="adversarial_tables",
    title="PGD flip rates after adversarial training (Table 4 of v1)",
    chapter="book/part3/malleability.ipynb",
    config=AdversarialConfig,
    cells=_cells,
    run=run_adversarial_cell,
    data=_needs,
    work=_work,
    version=2,  # 2: rows carry the robust accuracy
)


def run_task_kappa_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kappa_d(G) of one task's unit-normalised training rows (None with the rank if singular)."""
    from ..models import unit_rows
    from ..spectra import kappa_d_sweep

    td = _task_data(params["task"], params["n_train"], params["n_test"], params["data_seed"], params["pool_per_class"])
    (pt,) = kappa_d_sweep(lambda n: unit_rows(td.X_train), [td.X_train.shape[0]])
    return {"rows": [{"task": params["task"], "n": pt.n, "kappa_d": pt.kappa, "rank": pt.rank}]}


TASK_KAPPA = Experiment(
    name="task_kappa",
    title="kappa_d(G) of each malleability task's training set",
    chapter="book/part3/malleability.ipynb",
    config=TableConfig,
    cells=lambda c: [{"task": t, "n_train": c.n_train, "n_test": c.n_test, "data_seed": c.data_seed,
                      "pool_per_class": c.pool_per_class} for t in c.tasks],
    run=run_task_kappa_cell,
    data=_needs,
    work=lambda p: 1e-9 * p["n_train"] ** 2 * _dim(p["task"]),
)


# --------------------------------------------------------------------------- the verdict as curves


@dataclass(frozen=True)
class CurvesConfig(Config):
    """How the flip rates (and the ratio MLP-Attn / 2L-ReLU) move with n, width, training length,
    eps and tau: one axis at a time around a base point.

    Cells: (model, seed, n, width) for n in ``ns`` at ``base_width`` and for width in ``widths`` at
    ``base_n``. In each cell the network is trained once (``protocol``) and measured (the
    "transformed" intervention, every attack of ``attacks``, MLP-Attn's C recomputed and fixed)
    at the final epoch for every eps of ``eps_values`` (at ``base_tau``) and every tau of ``taus``
    (at ``base_eps``), and at each epoch of ``checkpoints`` (at the base eps and tau).

    Quick: MNIST, n = 200, widths 32, 128, 512, 40 epochs at lr 1e-2 with checkpoints 0, 5, 10,
    20; eps 0.1, 0.3, 0.5; tau 0.05, 0.1, 0.2; 2 seeds; float64 (``dtype``: see
    :func:`linattn.experiments.base.dtype_field`). Paper: n 200 to 5,000 (width 1024), widths 16 to 4096
    (n = 5,000), 500 epochs with checkpoints 0, 10, 50, 150; eps 0.05 to 0.5; 3 seeds.
    """

    task: str = "mnist"
    models: tuple[str, ...] = ("relu", "attn")
    seeds: tuple[int, ...] = (0, 1)
    ns: tuple[int, ...] = (200,)
    widths: tuple[int, ...] = (32, 128, 512)
    base_n: int = 200
    base_width: int = 128
    n_test: int = 60
    pool_per_class: int | None = 500
    data_seed: int = 0
    protocol: TrainProtocol = TrainProtocol(epochs=20)
    checkpoints: tuple[int, ...] = (5, 10)
    eps_values: tuple[float, ...] = (0.1, 0.3, 0.5)
    base_eps: float = 0.3
    taus: tuple[float, ...] = (0.05, 0.1, 0.2)
    base_tau: float = 0.1
    attacks: tuple[str, ...] = ("pgd", "noise")
    ridge: float = 1e-3
    input_map: str = field(default="none", metadata={"omit_default": True})
    init_scale: float = field(default=1.0, metadata={"omit_default": True})
    dtype: str = dtype_field()

    SCALES = {"quick": dict(lr=1e-2, epochs=40, checkpoints=(0, 5, 10, 20), dtype="float64"), "paper": dict(
        seeds=(0, 1, 2), ns=(200, 500, 1000, 2000, 5000), widths=(16, 64, 256, 1024, 4096), base_n=5000,
        base_width=1024, n_test=1000, pool_per_class=None, epochs=500, checkpoints=(0, 10, 50, 150),
        eps_values=(0.05, 0.1, 0.2, 0.3, 0.5))}

    def __post_init__(self) -> None:
        from ..data import TASKS as KNOWN

        check_option(self.task, "task", tuple(KNOWN))
        for m in self.models:
            check_option(m, "model", ("relu", "attn"))
        for n in (*self.ns, self.base_n):
            check_int(n, "n", minimum=2)
        for w in (*self.widths, self.base_width):
            check_int(w, "width")
        for e in self.checkpoints:
            if not 0 <= check_int(e, "checkpoint", minimum=0) <= self.protocol.epochs:
                raise ValueError(f"checkpoint {e} lies beyond the {self.protocol.epochs} epochs of training")
        for e in (*self.eps_values, self.base_eps):
            check_range(e, "eps", 0.0, 1.0)
        for t in (*self.taus, self.base_tau):
            check_range(t, "tau", 0.0, 1.0, lo_open=True)
            if round(t * min(*self.ns, self.base_n)) < 1:
                raise ValueError(f"tau = {t} selects no point of the smallest n; raise tau or n")
        for a in self.attacks:
            check_option(a, "attack", ATTACKS)
        _check_model_options(self.input_map, self.init_scale)
        torch_dtype(self.dtype)


def _curve_cells(config: CurvesConfig) -> list[dict]:
    common = config.common_params(("models", "seeds", "ns", "widths", "base_n", "base_width"))
    points = list(dict.fromkeys([(n, config.base_width) for n in config.ns]
                                + [(config.base_n, w) for w in config.widths]))
    # cheapest points first, both models and every seed of a point together, so that a run stopped
    # half-way already holds complete curves over the smaller n and widths
    points.sort(key=lambda nw: _curve_work(dict(common, n=nw[0], width=nw[1])))
    return [dict(common, model=m, seed=int(s), n=int(n), width=int(w))
            for n, w in points for s in config.seeds for m in config.models]


def _grid(cfg: CurvesConfig) -> dict[int, list[tuple[float, float]]]:
    """epoch -> the (eps, tau) points measured at that epoch."""
    final = cfg.protocol.epochs
    pts = {final: list(dict.fromkeys([(e, cfg.base_tau) for e in cfg.eps_values]
                                      + [(cfg.base_eps, t) for t in cfg.taus]))}
    for e in cfg.checkpoints:
        pts.setdefault(e, []).append((cfg.base_eps, cfg.base_tau))
    return {e: list(dict.fromkeys(v)) for e, v in pts.items()}


def _measure_point(model, td, cfg: CurvesConfig, kind: str, seed: int, before, eps: float, tau: float) -> list[dict]:
    from ..malleability import malleability

    rows = []
    for att in cfg.attacks:
        X_after = None
        for mode in ("recompute", "fixed") if kind == "attn" else ("recompute",):
            res = malleability(model, td.X_train, td.y_train, td.X_test, td.y_test, attack=att, eps=eps, tau=tau,
                               attention=mode, ridge=cfg.ridge, seed=seed, before=before, X_after=X_after)
            X_after = res.X_after
            n_tracked = int(res.tracked.shape[0])
            rows.append({"attack": att, "attention": res.config["attention"], "eps": eps, "tau": tau,
                         "flip_rate": res.flip_rate,
                         "n_flipped": int(round(res.flip_rate * n_tracked)), "n_tracked": n_tracked,
                         "spearman": res.spearman, "overlap": res.overlap})
    return rows


def run_curve_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one (model, seed, n, width) and measure its grid of (epoch, eps, tau) points."""
    import copy

    from ..malleability import model_influence

    kind, seed, n, width = params["model"], params["seed"], params["n"], params["width"]
    cfg = CurvesConfig.from_params(params, models=(kind,), seeds=(seed,), ns=(n,), widths=(width,), base_n=n,
                                   base_width=width)
    td = _task_data(cfg.task, n, cfg.n_test, cfg.data_seed, cfg.pool_per_class)
    grid = _grid(cfg)
    snapshots: dict[int, torch.nn.Module] = {}
    keep = lambda epoch, model: snapshots.__setitem__(epoch, copy.deepcopy(model)) if epoch in grid else None
    model = paper_model(kind, td.X_train, td.y_train, td.n_classes, width=width, seed=seed,
                        protocol=dataclasses.replace(cfg.protocol, epochs=0), input_map=cfg.input_map,
                        init_scale=cfg.init_scale, dtype=cfg.dtype)
    if cfg.protocol.epochs:
        from ..data import regression_targets
        from ..train import train

        targets = td.y_train if model.n_outputs > 1 else regression_targets(td.y_train, 1)
        train(model, td.X_train, targets, cfg.protocol, seed=seed, progress=False, callback=keep)
    else:
        keep(0, model)
    rows = []
    ident = {"task": cfg.task, "model": kind, "seed": seed, "n": n, "width": width}
    for epoch, points in sorted(grid.items()):
        snap = snapshots[epoch]
        acc = {"train_acc": accuracy(snap, td.X_train, td.y_train), "test_acc": accuracy(snap, td.X_test, td.y_test)}
        before = model_influence(snap, td.X_train, td.y_train, td.X_test, td.y_test, ridge=cfg.ridge)
        for eps, tau in points:
            rows += [{**ident, "epoch": epoch, **acc, **r}
                     for r in _measure_point(snap, td, cfg, kind, seed, before, eps, tau)]
    return {"rows": rows}


def _curve_work(params: dict) -> float:
    d = _dim(params["task"])
    p = TrainProtocol(**params["protocol"])
    n, w = params["n"], params["width"]
    evals = (len(params["eps_values"]) + len(params["taus"]) + len(params["checkpoints"])) * 2 * len(params["attacks"])
    return 1e-9 * (p.steps(n) * min(p.batch_size or n, n) * w * d + evals * (n ** 3 / 3 + n * n * (d + w)))


MALLEABILITY_CURVES = Experiment(
    name="malleability_curves",
    title="Flip rates against n, width, training length, eps and tau (the Table 2 verdict as curves)",
    chapter="book/part3/malleability.ipynb",
    config=CurvesConfig,
    cells=_curve_cells,
    run=run_curve_cell,
    data=lambda p: _needs({"task": p["task"], "pool_per_class": p.get("pool_per_class", 500)}),
    work=_curve_work,
)


# --------------------------------------------------------------------------- summaries with intervals


def flip_summary(rows: list[dict], by: tuple[str, ...] = ("task", "model", "attention", "attack"),
                 level: float = 0.95) -> list[dict]:
    """Flip rates pooled over seeds, with their counts and a Wilson interval.

    Per group of ``by``: ``k`` flipped of ``n`` tracked scores over all seeds, ``rate`` = k / n,
    ``lo``, ``hi`` (Wilson, ``level``), the per-seed mean, min and max, the seeds, the mean
    Spearman rho and top-tau overlap, and the networks' mean train and test accuracy.
    """
    from ..stats import pooled_rate
    from ..tables import group_rows

    clash = set(by) & {"rate", "k", "n", "lo", "hi", "seeds", "spearman", "overlap", "train_acc", "test_acc"}
    if clash:
        raise ValueError(f"by = {by}: {sorted(clash)} would be overwritten by the summary; rename the field first")
    out = []
    for key, group in group_rows(rows, by).items():
        pooled = pooled_rate([r["n_flipped"] for r in group], [r["n_tracked"] for r in group], level)
        per_seed = [r["flip_rate"] for r in group]
        mean = lambda f: float(np.mean([r[f] for r in group]))
        out.append({**dict(zip(by, key)), **pooled, "seed_mean": float(np.mean(per_seed)),
                    "seed_min": min(per_seed), "seed_max": max(per_seed), "seeds": len(group),
                    "spearman": mean("spearman"), "overlap": mean("overlap"),
                    "train_acc": mean("train_acc"), "test_acc": mean("test_acc")})
    return out


def flip_ratio(attn: dict, relu: dict, level: float = 0.95) -> dict:
    """MLP-Attn's flip rate over 2L-ReLU's, from two :func:`flip_summary` rows: the ratio of the
    pooled rates with its Katz log interval (:func:`linattn.stats.rate_ratio`)."""
    from ..stats import rate_ratio

    return rate_ratio(attn["k"], attn["n"], relu["k"], relu["n"], level)


def near_chance(acc: float, n_classes: int, margin: float = 0.1) -> bool:
    """True when an accuracy is within ``margin`` of chance (1 / n_classes): a verdict drawn from
    such a network is labelled so."""
    return acc < 1.0 / n_classes + margin


CURVE_AXES = ("n", "width", "epoch", "eps", "tau")


def curve_points(rows: list[dict], config: CurvesConfig, level: float = 0.95) -> dict[tuple, dict]:
    """The curves of :class:`CurvesConfig` rows, one axis moved at a time around the base point.

    Returns {(model, attention, attack, axis, value): :func:`flip_summary` row}, for axis in
    :data:`CURVE_AXES`: a row belongs to the curve of ``axis`` when every other coordinate (n,
    width, epoch, eps, tau) is at the base point (base n, base width, the end of training, base
    eps, base tau).
    """
    base = {"n_train": config.base_n, "width": config.base_width, "epoch": config.protocol.epochs,
            "eps": config.base_eps, "tau": config.base_tau}
    axes = dict(zip(base, CURVE_AXES))  # row field -> axis name ("n" is the pooled count in a summary)
    out = {}
    for s in flip_summary([dict(r, n_train=r["n"]) for r in rows], by=("model", "attention", "attack", *base),
                          level=level):
        for name in base:
            if all(s[k] == base[k] for k in base if k != name):
                out[(s["model"], s["attention"], s["attack"], axes[name], s[name])] = s
    return out


def curve_ratios(points: dict[tuple, dict], attack: str = "pgd", level: float = 0.95) -> dict[tuple, dict]:
    """{(axis, value): MLP-Attn / 2L-ReLU flip-rate ratio (Katz interval)} along every curve of
    :func:`curve_points` where both models were measured."""
    out = {}
    for (model, attention, att, axis, v), s in points.items():
        relu = points.get(("relu", "n/a", att, axis, v))
        if model == "attn" and attention == "recompute" and att == attack and relu is not None:
            out[(axis, v)] = flip_ratio(s, relu, level)
    return out


def verdict_summary(rows: list[dict], task: str, level: float = 0.95) -> dict:
    """The Table 2 verdict of one task's rows in one line: both models' accuracies and PGD and noise
    flip rates, the ratio MLP-Attn / 2L-ReLU pooled over FGSM, PGD and MIM (Katz interval), and the
    same ratio under noise."""
    mine = [r for r in rows if r["task"] == task]
    S = {(s["model"], s["attention"], s["attack"]): s for s in flip_summary(mine, by=("model", "attention", "attack"), level=level)}
    three = [r for r in mine if r["attack"] in ("fgsm", "pgd", "mim")]
    S3 = {(s["model"], s["attention"]): s for s in flip_summary(three, by=("model", "attention"), level=level)}
    relu, attn = ("relu", "n/a"), ("attn", "recompute")
    return {"train_acc_relu": S[(*relu, "pgd")]["train_acc"], "train_acc_attn": S[(*attn, "pgd")]["train_acc"],
            "test_acc_relu": S[(*relu, "pgd")]["test_acc"], "test_acc_attn": S[(*attn, "pgd")]["test_acc"],
            "pgd_relu": S[(*relu, "pgd")]["rate"], "pgd_attn": S[(*attn, "pgd")]["rate"],
            "noise_relu": S[(*relu, "noise")]["rate"], "noise_attn": S[(*attn, "noise")]["rate"],
            "ratio": flip_ratio(S3[attn], S3[relu], level),
            "noise_ratio": flip_ratio(S[(*attn, "noise")], S[(*relu, "noise")], level)}


def adversarial_change(at_rows: list[dict], std_rows: list[dict], task: str, level: float = 0.95) -> dict[str, dict]:
    """Table 4 graded as a change, on one task: per model ("relu"; "attn" with C recomputed), the PGD
    flip rate after adversarial training against after standard training of the same setting,

        d = k_adv / n_adv - k_std / n_std,

    with Newcombe's interval (:func:`linattn.stats.rate_difference`), both rates pooled over seeds.
    ``at_rows``: Table 4 rows (``adversarial_tables``), ``std_rows``: Table 2 rows
    (``malleability_tables``) of the same pixels, width and n. Returns {model: {"adv", "std"
    (:func:`flip_summary` rows), "change" (d, lo, hi), "robust_acc", "train_acc", "test_acc" (means
    over the seeds, after adversarial training), "chance" (:func:`near_chance` of its training
    accuracy)}}; a model missing from either set of rows is left out.
    """
    from ..data import TASKS as KNOWN
    from ..stats import rate_difference

    n_classes = len(KNOWN[task][1])
    pick = lambda rows: {(s["model"], s["attention"]): s for s in flip_summary(
        [r for r in rows if r["task"] == task and r["attack"] == "pgd"], by=("model", "attention"), level=level)}
    adv, std = pick(at_rows), pick(std_rows)
    out = {}
    for model, attention in (("relu", "n/a"), ("attn", "recompute")):
        a, s = adv.get((model, attention)), std.get((model, attention))
        if a is None or s is None:
            continue
        robust = [r["robust_acc"] for r in at_rows if r["task"] == task and r["model"] == model
                  and r["attention"] == attention and r["attack"] == "pgd"]
        out[model] = {"adv": a, "std": s, "change": rate_difference(a["k"], a["n"], s["k"], s["n"], level),
                      "robust_acc": float(np.mean(robust)), "train_acc": a["train_acc"], "test_acc": a["test_acc"],
                      "chance": near_chance(a["train_acc"], n_classes)}
    return out
