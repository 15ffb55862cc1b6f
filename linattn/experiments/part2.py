"""Part II: NTK distance against width (Table 1 of v1), at two scales.

One cell = one (task, model, width, seed): build the model (2L-ReLU or MLP-Attn, NTK
parametrisation, seed = initialisation seed), train it with the config's
:class:`linattn.train.TrainProtocol` (v1: Adam, lr 1e-3, batch 128, L2 1e-3; cross-entropy for
10 classes, MSE on ±1 targets for binary tasks; the quick scale compresses training, see
:class:`WidthSweepConfig`) and its ``penalty`` (v1's coupled L2, or anchored at W_0), record
its empirical NTK on ``n_ntk`` training points during training, fit the infinite-width NTK
predictor (:func:`linattn.predictors.kernel_regression` with Theta_inf) and measure every
reading of "NTK distance" in :data:`linattn.distance.DISTANCES`. :func:`penalty_curve` follows
how the penalty's gradient compares with the data's along the same training.

Experiments (registered in :mod:`linattn.experiments`):

- ``width_sweep``: rows (task, model, width, seed, distance, value, ...) and drift curves;
- ``width_facts``: the spectral facts of each task's kernels (:func:`kernel_facts`).

    linattn reproduce width_sweep --scale quick
    linattn reproduce width_sweep --scale paper --device cuda
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field

import torch

from .._validation import check_int, check_option
from ..distance import DISTANCES, DistanceInputs, compute_distances
from ..figures import model_label
from ..models import INPUT_MAPS
from ..train import TrainProtocol, _check_penalty
from .base import Config, Experiment, dtype_field, torch_dtype

__all__ = [
    "MODELS",
    "MODEL_LABELS",
    "WidthSweepConfig",
    "FactsConfig",
    "PreparedTask",
    "prepare_task",
    "kernel_facts",
    "run_one",
    "penalty_curve",
    "WIDTH_SWEEP",
    "WIDTH_FACTS",
    "LazyConfig",
    "LAZY_CONTROL",
]

MODELS = ("relu", "attn")
MODEL_LABELS = {model: model_label(model) for model in MODELS}


def _check_tasks(tasks) -> None:
    from ..data import TASKS

    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a tuple of task names, got the string {tasks!r}; write ({tasks!r},)")
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; choose from {sorted(TASKS)}")


@dataclass(frozen=True)
class WidthSweepConfig(Config):
    """Everything a width sweep depends on. Choices the paper leaves open are marked [ours].

    tasks: task names of :data:`linattn.data.TASKS`; 10-class tasks train with cross-entropy
        on C = 10 logits, binary tasks with MSE on ±1 targets (C = 1) [v1].
    widths, seeds: hidden widths m and initialisation seeds (one cell each).
    n_train, n_test: class-balanced training / held-out sizes [ours: the paper gives none];
        ``pool_per_class``: draw both from the first k training images a class (500 = the
        quick pool, same images offline and online), None = official train / test splits.
    n_ntk: the first n_ntk training points carry the kernels Theta_m(0), Theta_m(T), Theta_inf.
    protocol: the training protocol [v1: Adam, 1e-3, batch 128, L2 1e-3, 500 epochs].
    ntk_every: record the empirical NTK every k epochs (the drift curves) besides 0 and the end.
    ridge: the NTK predictor's ridge [ours: 1e-3]; f0: "zero" (kernel regression on the targets,
        the usual NTK predictor) or "network" (linearised around the network's own initial outputs).
    data_seed: the seed of the data subset (fixed across model seeds).
    init_scale: w_r ~ N(0, init_scale^2 I) [ours: 1, the NTK initialisation; 0.01 is the small
        initialisation of the standard parametrisation]. Left out of a cell's key at its default.
    penalty: what the protocol's weight decay lambda pulls towards (:mod:`linattn.train`):
        "l2" [v1: (lambda / 2) ||W||_F^2] or "anchored" [ours: (lambda / 2) ||W - W_0||_F^2].
        Left out of a cell's key at its default.
    input_map: the pixels' map before the unit norm [v1: "none", pixels in [0, 1]]: "center"
        (minus the training set's mean image) or "standardize" (per pixel), fitted on the
        training pixels and part of the network (:class:`linattn.models.InputMap`, as Part III's
        ``input_map``). Left out of a cell's key at its default.
    dtype: the training precision, "float32" [ours, the paper scale] or "float64" (the quick
        scale: see :func:`linattn.experiments.base.dtype_field`). Left out of a cell's key at its default.

    Scales: ``quick`` (the book's build): widths 16, 64, 256, 1024, 4096 (the chapter computes
    up to 1024 live and reads 4096 from the store); 3 seeds; n = 256 (200 held
    out); 40 epochs (80 Adam steps) at lr 1e-2 [ours]. Adam moves every weight by about lr a
    step whatever the gradient's size, so how far training goes is set by lr x steps: 80 steps
    at 1e-2 stand in for 800 at the paper's 1e-3 (checked: the same training accuracy and kernel
    drift on MNIST, width 256). ``paper``: widths 16..4096, 500 epochs at lr 1e-3, n 10,000 /
    2,000 from the official splits, kernels on 500 points [n ours].
    """

    tasks: tuple[str, ...] = ("mnist", "cifar10")
    models: tuple[str, ...] = MODELS
    widths: tuple[int, ...] = (16, 64, 256, 1024)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 256
    n_test: int = 200
    n_ntk: int = 64
    pool_per_class: int | None = 500
    protocol: TrainProtocol = TrainProtocol()
    ntk_every: int = 5
    ridge: float = 1e-3
    f0: str = "zero"
    data_seed: int = 0
    distances: tuple[str, ...] = tuple(DISTANCES)
    init_scale: float = field(default=1.0, metadata={"omit_default": True})
    penalty: str = field(default="l2", metadata={"omit_default": True})
    input_map: str = field(default="none", metadata={"omit_default": True})
    dtype: str = dtype_field()

    SCALES = {
        "quick": dict(widths=(16, 64, 256, 1024, 4096), epochs=40, lr=1e-2, dtype="float64"),
        "paper": dict(widths=tuple(2**k for k in range(4, 13)), n_train=10_000, n_test=2_000, n_ntk=500,
                      pool_per_class=None, ntk_every=50),
    }

    def __post_init__(self) -> None:
        _check_tasks(self.tasks)
        for mk in self.models:
            if mk not in MODELS:
                raise ValueError(f"unknown model {mk!r}; choose from {MODELS}")
        if not self.widths or not self.seeds:
            raise ValueError("give at least one width and one seed")
        for w in self.widths:
            check_int(w, "width")
        for s in self.seeds:
            check_int(s, "seed", minimum=0)
        check_int(self.n_train, "n_train", minimum=2)
        check_int(self.n_test, "n_test")
        check_int(self.n_ntk, "n_ntk", minimum=2)
        if self.n_ntk > self.n_train:
            raise ValueError(f"n_ntk = {self.n_ntk} must not exceed n_train = {self.n_train}")
        if self.pool_per_class is not None:
            check_int(self.pool_per_class, "pool_per_class")
        check_int(self.ntk_every, "ntk_every")
        check_int(self.data_seed, "data_seed", minimum=0)
        if not isinstance(self.protocol, TrainProtocol):
            raise TypeError(f"protocol must be a TrainProtocol, got {type(self.protocol).__name__}")
        if self.f0 not in ("zero", "network"):
            raise ValueError(f"f0 must be 'zero' or 'network', got {self.f0!r}")
        from .._validation import check_range

        check_range(self.init_scale, "init_scale", 0.0, float("inf"), lo_open=True)
        _check_penalty(self.penalty)
        check_option(self.input_map, "input_map", INPUT_MAPS)
        torch_dtype(self.dtype)
        unknown = [d for d in self.distances if d not in DISTANCES]
        if unknown:
            raise ValueError(f"unknown distances {unknown}; choose from {list(DISTANCES)}")

    @property
    def epochs(self) -> int:
        return self.protocol.epochs

    def loss_for(self, task: str) -> str:
        from ..data import TASKS

        return "ce" if len(TASKS[task][1]) > 2 else "mse"


@dataclass
class PreparedTask:
    """A task's data, each model's features x^ and its infinite-width kernels (cached across widths and seeds).

    ``features[kind] = (Xh_train (n, d), Xh_test (N, d))``: the unit-norm hidden-layer inputs
    of the model (raw rows for "relu", linearized attention for "attn"), float64.
    ``kernels[kind] = (K_train (n, n), K_test_train (N, n), K_ntk (n_ntk, n_ntk))``: Theta_inf.
    """

    task: str
    X_train: torch.Tensor
    X_test: torch.Tensor
    y_train: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    loss: str
    targets: torch.Tensor  # what the network trains on: class indices (ce) or ±1 (mse)
    regression_targets: torch.Tensor  # what the kernel predictor regresses: one-hot (ce) or ±1 (mse)
    features: dict = field(default_factory=dict)
    kernels: dict = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.loss == "ce" else 1


def _unit(X: torch.Tensor) -> torch.Tensor:
    from ..models import unit_rows

    return unit_rows(X.to(torch.float64))


def prepare_task(config: WidthSweepConfig, task: str, device: str = "cpu") -> PreparedTask:
    """Load the task's subset (rows scaled to unit norm [v1]); compute each model's features and Theta_inf.

    The attention keys of MLP-Attn are the unit-norm training rows (transductive, as in the
    paper; test rows use the test-time rule C x). Features and Theta_inf depend on the
    feature map only, not on the width or the initialisation seed, so they are computed once.
    With ``config.input_map`` the pixels are first centred (or standardised) by the training
    set's statistics, then unit-normalised, for both networks and for the attention keys.
    """
    from ..data import task_data
    from ..kernels import features64, ntk_relu
    from ..models import mlp_attn, network, relu_net

    td = task_data(task, config.n_train, config.n_test, seed=config.data_seed,
                   pool_per_class=config.pool_per_class)
    loss = config.loss_for(task)
    prep = PreparedTask(
        task=task, X_train=_unit(td.X_train), X_test=_unit(td.X_test), y_train=td.y_train,
        y_test=td.y_test, n_classes=td.n_classes, loss=loss,
        targets=td.y_train if loss == "ce" else td.targets_pm1("train"),
        regression_targets=td.targets_onehot("train") if loss == "ce" else td.targets_pm1("train"),
    )
    d = prep.X_train.shape[1]
    dev = torch.device(device)
    Xtr, Xte = prep.X_train.to(dev), prep.X_test.to(dev)
    pixels = td.X_train.to(torch.float64)
    if config.input_map != "none":  # the map acts on pixels; v1's path keeps its unit rows
        Xtr, Xte = pixels.to(dev), td.X_test.to(torch.float64).to(dev)
    for kind in config.models:
        if config.input_map == "none":
            model = (relu_net(d, 1) if kind == "relu" else mlp_attn(prep.X_train, 1)).to(dev)
        else:
            model = network(kind, pixels, 1, input_map=config.input_map).to(dev)
        Xh, Xh_test = features64(model, Xtr), features64(model, Xte)
        K = ntk_relu(Xh)
        prep.features[kind] = (Xh, Xh_test)
        prep.kernels[kind] = (K, ntk_relu(Xh_test, Xh), K[: config.n_ntk, : config.n_ntk].clone())
    return prep


def kernel_facts(prep: PreparedTask, n_ntk: int) -> dict:
    """Spectral facts of the first ``n_ntk`` training points, where the kernels are measured.

    Returns {"kappa_d": kappa_d(G) of those rows (:func:`linattn.spectra.kappa_d`), "models":
    {kind: {...}}} with, per model: ``lambda_min`` and ``kappa`` of Theta_inf (n_ntk, n_ntk);
    ``gap_1`` = sqrt(sum_ij u_ij^2 p_ij (1 - p_ij)), the RMS of ||Theta_m(0) - Theta_inf||_F at
    m = 1 (:func:`linattn.distance.expected_init_gap`; divide by sqrt(m)); ``theta_inf_fro`` =
    ||Theta_inf||_F; ``max_angle``, the largest angle between two feature vectors; and
    ``log10_m_suff`` = 2 log10(gap_1 / lambda_min), the width beyond which the RMS operator error at
    initialisation is below lambda_min (||.||_2 <= ||.||_F). A quantity that does not exist
    (a rank-deficient matrix) is NaN, with the reason under ``notes``.
    """
    from ..distance import expected_init_gap
    from ..kernels import unit_angle
    from ..spectra import RankDeficientError, eigvalsh_desc, kappa, kappa_d

    n_ntk = check_int(n_ntk, "n_ntk", minimum=2)
    notes: list[str] = []
    try:
        kd = kappa_d(prep.X_train[:n_ntk])
    except RankDeficientError as exc:
        kd = math.nan
        notes.append(f"kappa_d(G): numerical rank {exc.rank} of {exc.needed}")
    models = {}
    for kind, (Xh, _) in prep.features.items():
        K = prep.kernels[kind][2]
        lam_min = float(eigvalsh_desc(K)[-1])
        try:
            kap = kappa(K)
        except RankDeficientError as exc:
            kap = math.nan
            notes.append(f"kappa(Theta_inf), {kind}: numerical rank {exc.rank} of {exc.needed}")
        gap1 = expected_init_gap(Xh[:n_ntk], 1)
        models[kind] = {
            "lambda_min": lam_min,
            "kappa": kap,
            "gap_1": gap1,
            "theta_inf_fro": float(torch.linalg.matrix_norm(K)),
            "max_angle": float(unit_angle(Xh[:n_ntk]).max()),
            "log10_m_suff": 2 * math.log10(gap1 / lam_min) if lam_min > 0 else math.nan,
        }
    return {"kappa_d": kd, "models": models, "notes": notes}


def _accuracy(f: torch.Tensor, y: torch.Tensor) -> float:
    if f.ndim == 1 or f.shape[1] == 1:
        s = f.reshape(-1)
        return float(((s > 0).long() == y).double().mean())
    return float((f.argmax(1) == y).double().mean())


def run_one(config: WidthSweepConfig, prep: PreparedTask, kind: str, width: int, seed: int) -> dict:
    """Train one network and measure every distance. Returns a dict with ``weight_change``
    (||W_T - W_0||_F / ||W_0||_F: how far training moved the weights), ``distances``
    (name -> {"value", "note"}), ``curve`` (epochs, kernel drift at each), the kernels
    (theta_init, theta_final, theta_inf on the n_ntk points), accuracies and timing."""
    from ..models import relu_net
    from ..predictors import kernel_regression
    from ..train import train

    t0 = time.perf_counter()
    # The hidden layer of either model sees only x^; its weights (W, a) depend only on
    # (d, width, outputs, seed). So the MLP-Attn network is the 2L-ReLU network applied to
    # the cached attention features: identical function, no attention recomputed per run.
    Xh, Xh_test = prep.features[kind]
    model = relu_net(Xh.shape[1], width, prep.n_outputs, seed=seed, init_scale=config.init_scale,
                     dtype=torch_dtype(config.dtype)).to(Xh.device)
    W0 = model.W.detach().clone()
    with torch.no_grad():
        f0_train = model(Xh).to(torch.float64)
        f0_test = model(Xh_test).to(torch.float64)
    record = sorted({0, config.epochs, *range(0, config.epochs + 1, config.ntk_every)})
    res = train(model, Xh, prep.targets.to(Xh.device), config.protocol, loss=prep.loss, seed=seed,
                penalty=config.penalty, record_ntk_at=record, X_ntk=Xh[: config.n_ntk], progress=False)
    with torch.no_grad():
        f_net = model(Xh_test).to(torch.float64)
    K, Kx, K_ntk = prep.kernels[kind]
    Y = prep.regression_targets.to(K.device)
    if config.f0 == "network":
        y0 = f0_train if Y.ndim == 2 else f0_train[:, 0]
        x0 = f0_test if Y.ndim == 2 else f0_test[:, 0]
        f_ntk = kernel_regression(K, Kx, Y, ridge=config.ridge, f0_train=y0, f0_test=x0)
    else:
        f_ntk = kernel_regression(K, Kx, Y, ridge=config.ridge)
    if f_ntk.ndim == 1:
        f_ntk = f_ntk[:, None]
    theta0, thetaT = res.ntk[0], res.ntk[config.epochs]
    inputs = DistanceInputs(theta_inf=K_ntk, theta_init=theta0, theta_final=thetaT, f_net=f_net, f_ntk=f_ntk)
    dists = compute_distances(inputs, config.distances)
    norm0 = float(torch.linalg.matrix_norm(theta0))
    cpu = lambda t: t.detach().cpu()
    curve = {"epoch": record,
             "drift": [float(torch.linalg.matrix_norm(res.ntk[e] - theta0)) / norm0 for e in record]}
    return {
        "distances": dists,
        "curve": curve,
        "theta_init": cpu(theta0),
        "theta_final": cpu(thetaT),
        "theta_inf": cpu(K_ntk),
        "train_loss": res.final_loss,
        "train_acc": res.final_accuracy,
        "weight_change": float(torch.linalg.matrix_norm(model.W.detach() - W0) / torch.linalg.matrix_norm(W0)),
        "net_test_acc": _accuracy(cpu(f_net), prep.y_test),
        "ntk_test_acc": _accuracy(cpu(f_ntk), prep.y_test),
        "seconds": time.perf_counter() - t0,
    }



def penalty_curve(config: WidthSweepConfig, prep: PreparedTask, kind: str, width: int, seed: int,
                  every: int = 5) -> dict:
    """Train one network as :func:`run_one` does (no kernels recorded) and follow its penalty.

    At initialisation and every ``every`` epochs: :func:`linattn.train.penalty_share` of the
    config's weight decay lambda against the full-batch data gradient (``share``, ``share_live``,
    ``live``, ``ratio``), and ``norm`` = ||W_t||_F / ||W_0||_F, how far the weights have shrunk.
    Returns {"epoch": [...], each of those: [...], "train_acc": the final training accuracy}.
    """
    from ..models import relu_net
    from ..train import penalty_share, train

    every = check_int(every, "every")
    Xh = prep.features[kind][0]
    model = relu_net(Xh.shape[1], width, prep.n_outputs, seed=seed, init_scale=config.init_scale,
                     dtype=torch_dtype(config.dtype)).to(Xh.device)
    W0 = model.W.detach().clone()
    y = prep.targets.to(Xh.device)
    anchor = [W0] if config.penalty == "anchored" else None
    out: dict = {k: [] for k in ("epoch", "share", "share_live", "live", "ratio", "norm")}

    def measure(epoch: int, net: torch.nn.Module) -> None:
        if epoch % every and epoch != config.epochs:
            return
        shares = penalty_share(net, Xh, y, weight_decay=config.protocol.weight_decay, loss=prep.loss, anchor=anchor)
        for k, v in {**shares, "epoch": epoch, "norm": float(net.W.detach().norm() / W0.norm())}.items():
            out[k].append(v)

    res = train(model, Xh, y, config.protocol, loss=prep.loss, seed=seed, penalty=config.penalty,
                progress=False, callback=measure)
    return {**out, "train_acc": res.final_accuracy}


# --------------------------------------------------------------------------- cells

_AXES = ("tasks", "models", "widths", "seeds")


def _sweep_cells(config: WidthSweepConfig) -> list[dict]:
    common = config.common_params(_AXES)
    return [dict(common, task=t, model=m, width=int(w), seed=int(s))
            for t in config.tasks for m in config.models for w in config.widths for s in config.seeds]


@functools.lru_cache(maxsize=4)
def _prepared(config: WidthSweepConfig, task: str, device: str) -> PreparedTask:
    return prepare_task(config, task, device)


def _prep_key(config: WidthSweepConfig) -> WidthSweepConfig:
    """The part of a config the data and Theta_inf depend on (so cells share one preparation)."""
    return dataclasses.replace(config, widths=(1,), seeds=(0,), protocol=TrainProtocol(), ntk_every=1,
                               ridge=1e-3, f0="zero", distances=tuple(DISTANCES), init_scale=1.0,
                               penalty="l2")


def run_sweep_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """One (task, model, width, seed): rows of every distance, and the drift curve."""
    task, kind, width, seed = params["task"], params["model"], params["width"], params["seed"]
    config = WidthSweepConfig.from_params(params, tasks=(task,), models=(kind,), widths=(width,), seeds=(seed,))
    prep = _prepared(_prep_key(config), task, device)
    out = run_one(config, prep, kind, width, seed)
    ident = {"task": task, "model": kind, "width": width, "seed": seed}
    rows = [{**ident, "distance": name, "value": d["value"], "note": d["note"], "space": DISTANCES[name].space,
             "train_acc": out["train_acc"], "weight_change": out["weight_change"], "net_test_acc": out["net_test_acc"],
             "ntk_test_acc": out["ntk_test_acc"], "seconds": out["seconds"]}
            for name, d in out["distances"].items()]
    curve = [{**ident, "epoch": e, "drift": v} for e, v in zip(out["curve"]["epoch"], out["curve"]["drift"])]
    return {"rows": rows, "curves": curve}


def _needs(params: dict) -> list[tuple[str, str]]:
    """The data files a cell needs beyond the offline MNIST subset."""
    from ..data import TASKS

    name = TASKS[params["task"]][0]
    if params.get("pool_per_class") is not None:
        return [] if name == "mnist" else [(name, "train")]
    return [(name, "train"), (name, "test")] if params.get("n_test", 0) else [(name, "train")]


def _sweep_work(params: dict) -> float:
    """Relative cost: training (steps x batch x width x d) plus the recorded kernels."""
    from ..data import TASKS

    d = 784 if TASKS[params["task"]][0] == "mnist" else 3072
    p = TrainProtocol(**params["protocol"])
    batch = params["n_train"] if p.batch_size is None else min(p.batch_size, params["n_train"])
    n_records = p.epochs // params["ntk_every"] + 2
    return 1e-9 * (p.steps(params["n_train"]) * batch * params["width"] * d
                   + n_records * params["n_ntk"] ** 2 * params["width"])


WIDTH_SWEEP = Experiment(
    name="width_sweep",
    title="NTK distance against width under ten readings (Table 1 of v1)",
    chapter="book/part2/width_does_not_help.ipynb",
    config=WidthSweepConfig,
    cells=_sweep_cells,
    run=run_sweep_cell,
    data=_needs,
    work=_sweep_work,
    version=2,  # 2: rows carry weight_change = ||W_T - W_0||_F / ||W_0||_F
)


@dataclass(frozen=True)
class FactsConfig(Config):
    """The data behind a width sweep's kernels: tasks, n_train / n_test, n_ntk, pool, data seed
    (the same meanings and scales as :class:`WidthSweepConfig`)."""

    tasks: tuple[str, ...] = ("mnist", "cifar10")
    n_train: int = 256
    n_test: int = 200
    n_ntk: int = 64
    pool_per_class: int | None = 500
    data_seed: int = 0

    SCALES = {"quick": {}, "paper": dict(n_train=10_000, n_test=2_000, n_ntk=500, pool_per_class=None)}

    @classmethod
    def of(cls, sweep: WidthSweepConfig) -> "FactsConfig":
        """The facts of the data a width sweep runs on."""
        return cls(tasks=sweep.tasks, n_train=sweep.n_train, n_test=sweep.n_test, n_ntk=sweep.n_ntk,
                   pool_per_class=sweep.pool_per_class, data_seed=sweep.data_seed)

    def __post_init__(self) -> None:
        _check_tasks(self.tasks)
        check_int(self.n_ntk, "n_ntk", minimum=2)
        if self.n_ntk > check_int(self.n_train, "n_train", minimum=2):
            raise ValueError(f"n_ntk = {self.n_ntk} must not exceed n_train = {self.n_train}")


def _facts_cells(config: FactsConfig) -> list[dict]:
    return [dict(config.common_params(("tasks",)), task=t) for t in config.tasks]


def run_facts_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kernel_facts of one task: a row per model (and kappa_d(G), the notes)."""
    p = {k: v for k, v in params.items() if k != "task"}
    config = WidthSweepConfig(tasks=(params["task"],), **p)
    facts = kernel_facts(prepare_task(config, params["task"], device), config.n_ntk)
    rows = [{"task": params["task"], "model": kind, "kappa_d": facts["kappa_d"], **f}
            for kind, f in facts["models"].items()]
    return {"rows": rows, "notes": [{"task": params["task"], "note": n} for n in facts["notes"]]}


WIDTH_FACTS = Experiment(
    name="width_facts",
    title="Spectral facts of the width sweep's kernels (kappa_d(G), lambda_min and kappa of Theta_inf)",
    chapter="book/part2/width_does_not_help.ipynb",
    config=FactsConfig,
    cells=_facts_cells,
    run=run_facts_cell,
    data=_needs,
    work=lambda p: 1e-9 * p["n_train"] ** 2 * (784 if p["task"].startswith("mnist") else 3072),
)


# --------------------------------------------------------------------------- the lazy-training control


@dataclass(frozen=True)
class LazyConfig(Config):
    """The standard lazy-training control (the test that can see the kernel regime).

    A network trained by full-batch gradient descent on the MSE, with no weight decay and a small
    step, is in the kernel regime when its outputs follow the gradient flow of its linearisation:
    f_t = f_0 + Theta Theta^{-1} (I - e^{-t Theta})(y - f_0) (:func:`linattn.predictors.ntk_flow`),
    from the network's *own* f_0, at the matched kernel time t = 2 lr steps / n
    (:func:`linattn.predictors.gd_time`). Per cell (task, model, width, seed) we report the relative
    gap ||f_net - f_flow|| / ||f_net - f_0|| on the training and the held-out points, for the flow
    of the empirical kernel at initialisation Theta_m(0) and of the limit Theta_inf.

    Binary tasks (one output, +-1 targets), so the kernel has no cross-output blocks. float64.
    lr, steps: [ours] lr 1 for 200 steps (kernel time 2 x 200 / n; stable: lr < n / lambda_max).
    Quick: n = 128 (100 held out), widths 64 to 16,384, 3 seeds. Paper: n = 1,000 (500 held out)
    from the official splits.
    """

    tasks: tuple[str, ...] = ("mnist_3v8", "cifar_car_plane")
    models: tuple[str, ...] = MODELS
    widths: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 128
    n_test: int = 100
    pool_per_class: int | None = 500
    data_seed: int = 0
    lr: float = 1.0
    steps: int = 200

    SCALES = {"quick": {}, "paper": dict(n_train=1000, n_test=500, pool_per_class=None)}

    def __post_init__(self) -> None:
        from ..data import TASKS
        from .._validation import check_range

        _check_tasks(self.tasks)
        for t in self.tasks:
            if len(TASKS[t][1]) != 2:
                raise ValueError(f"task {t!r} has {len(TASKS[t][1])} classes; the lazy control uses binary tasks "
                                 f"(one output): choose from {[k for k, v in TASKS.items() if len(v[1]) == 2]}")
        for mk in self.models:
            if mk not in MODELS:
                raise ValueError(f"unknown model {mk!r}; choose from {MODELS}")
        for w in self.widths:
            check_int(w, "width")
        check_int(self.n_train, "n_train", minimum=2)
        check_int(self.n_test, "n_test")
        check_range(self.lr, "lr", 0.0, float("inf"), lo_open=True)
        check_int(self.steps, "steps")


def _lazy_cells(config: LazyConfig) -> list[dict]:
    common = config.common_params(_AXES)
    return [dict(common, task=t, model=m, width=int(w), seed=int(s))
            for t in config.tasks for m in config.models for w in config.widths for s in config.seeds]


def _gap(f: torch.Tensor, g: torch.Tensor, f0: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(f - g) / torch.linalg.vector_norm(f - f0))


def run_lazy_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one width-m network by full-batch GD on the MSE and measure its gap to the NTK flows."""
    from ..models import relu_net
    from ..ntk import empirical_ntk
    from ..predictors import gd_time, ntk_flow
    from ..train import train

    task, kind, width, seed = params["task"], params["model"], params["width"], params["seed"]
    sweep = WidthSweepConfig(tasks=(task,), models=(kind,), widths=(1,), seeds=(0,), n_train=params["n_train"],
                             n_test=params["n_test"], n_ntk=2, pool_per_class=params["pool_per_class"],
                             data_seed=params["data_seed"])
    prep = _prepared(_prep_key(sweep), task, device)
    Xh, Xh_test = prep.features[kind]
    K_inf, K_inf_x, _ = prep.kernels[kind]
    y = prep.regression_targets.to(Xh.device)  # +-1
    model = relu_net(Xh.shape[1], width, 1, seed=seed, dtype=torch.float64).to(Xh.device)
    with torch.no_grad():
        f0, f0x = model.forward_features(Xh)[:, 0], model.forward_features(Xh_test)[:, 0]
    theta0, theta0_x = empirical_ntk(model, Xh), empirical_ntk(model, Xh_test, Xh)
    W0 = model.W.detach().clone()
    res = train(model, Xh, y, loss="mse", optimizer="gd", lr=params["lr"], batch_size=None, weight_decay=0.0,
                epochs=params["steps"], seed=seed, progress=False)
    with torch.no_grad():
        f, fx = model.forward_features(Xh)[:, 0], model.forward_features(Xh_test)[:, 0]
    t = gd_time(params["lr"], params["steps"], Xh.shape[0])
    row = {"task": task, "model": kind, "width": width, "seed": seed, "kernel_time": t,
           "train_acc": res.final_accuracy, "test_acc": float(((fx > 0).long() == prep.y_test.to(fx.device)).double().mean()),
           "weight_change": float(torch.linalg.matrix_norm(model.W.detach() - W0) / torch.linalg.matrix_norm(W0))}
    for name, (K, Kx) in (("init", (theta0, theta0_x)), ("inf", (K_inf, K_inf_x))):
        flow, flow_x = ntk_flow(K, K, y, t, f0_train=f0, f0_test=f0), ntk_flow(K, Kx, y, t, f0_train=f0, f0_test=f0x)
        row[f"gap_{name}_train"] = _gap(f, flow, f0)
        row[f"gap_{name}_test"] = _gap(fx, flow_x, f0x)
    return {"rows": [row]}


LAZY_CONTROL = Experiment(
    name="lazy_control",
    title="The lazy-training control: full-batch GD on the MSE against the NTK gradient flow from f_0",
    chapter="book/part2/width_does_not_help.ipynb",
    config=LazyConfig,
    cells=_lazy_cells,
    run=run_lazy_cell,
    data=_needs,
    work=lambda p: 1e-9 * p["steps"] * p["n_train"] * p["width"] * (784 if p["task"].startswith("mnist") else 3072),
)
