"""Part II experiment: NTK distance against width (Table 1 of v1), at two scales.

One run = one (task, model, width, seed): build the model (2L-ReLU or MLP-Attn, NTK
parametrisation, seed = initialisation seed), train it with the paper's protocol
(:func:`linattn.train.train`: Adam, lr 1e-3, batch 128, L2 1e-3; cross-entropy for
10 classes, MSE on ±1 targets for binary tasks; the quick scale compresses training, see
:meth:`WidthSweepConfig.quick`), record its empirical NTK on ``n_ntk``
training points during training, fit the infinite-width NTK predictor
(:func:`linattn.predictors.kernel_regression` with Theta_inf, ridge 1e-3) and measure
every reading of "NTK distance" in :data:`linattn.distance.DISTANCES`.

The same code runs both scales; only the config differs (:meth:`WidthSweepConfig.quick`,
:meth:`WidthSweepConfig.paper`). Results are tidy rows (lists of dicts: no pandas):
one row per (task, model, width, seed, distance) with its ``value``.

Command line::

    python -m linattn.experiments width-sweep --scale quick --tasks cifar10 --out width_sweep_quick_cifar10
    python -m linattn.experiments width-sweep --scale paper --tasks cifar10 --out width_sweep_paper_cifar10
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validation import check_int
from .distance import DISTANCES, DistanceInputs, compute_distances

__all__ = [
    "MODELS",
    "MODEL_LABELS",
    "WidthSweepConfig",
    "PreparedTask",
    "prepare_task",
    "kernel_facts",
    "run_one",
    "run_width_sweep",
    "summarize",
    "pivot",
    "format_table",
    "width_trend",
    "rows_from_json",
    "main",
]

MODELS = ("relu", "attn")
MODEL_LABELS = {"relu": "2L-ReLU", "attn": "MLP-Attn"}


@dataclass(frozen=True)
class WidthSweepConfig:
    """Everything a width sweep depends on. Choices the paper leaves open are marked [ours].

    tasks: task names of :data:`linattn.data.TASKS`; 10-class tasks train with cross-entropy
        on C = 10 logits, binary tasks with MSE on ±1 targets (C = 1) [v1].
    widths, seeds: hidden widths m and initialisation seeds (one run each).
    n_train, n_test: class-balanced training / held-out sizes [ours: the paper gives none];
        ``pool_per_class``: draw both from the first k training images a class (500 = the
        quick pool, same images offline and online), None = official train / test splits.
    n_ntk: the first n_ntk training points carry the kernels Theta_m(0), Theta_m(T), Theta_inf.
    epochs, lr, batch_size, weight_decay, optimizer: the training protocol [v1 Adam, 1e-3, 128, 1e-3, 500 epochs].
    ntk_every: record the empirical NTK every k epochs (the drift curves) besides 0 and the end.
    ridge: the NTK predictor's ridge [ours: 1e-3]; f0: "zero" (kernel regression on the targets,
        the usual NTK predictor) or "network" (linearised around the network's own initial outputs).
    data_seed: the seed of the data subset (fixed across model seeds).
    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda". Kernels, solves and
        statistics are float64 on that device; stored results are moved to the CPU.
    """

    name: str = "custom"
    tasks: tuple[str, ...] = ("mnist", "cifar10")
    models: tuple[str, ...] = MODELS
    widths: tuple[int, ...] = (16, 64, 256, 1024)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 256
    n_test: int = 200
    n_ntk: int = 64
    pool_per_class: int | None = 500
    epochs: int = 500
    lr: float = 1e-3
    batch_size: int | None = 128
    weight_decay: float = 1e-3
    optimizer: str = "adam"
    ntk_every: int = 5
    ridge: float = 1e-3
    f0: str = "zero"
    data_seed: int = 0
    distances: tuple[str, ...] = tuple(DISTANCES)
    device: str = "auto"

    def __post_init__(self) -> None:
        from .data import TASKS

        for t in self.tasks:
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; choose from {sorted(TASKS)}")
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
        check_int(self.epochs, "epochs")
        check_int(self.ntk_every, "ntk_every")
        if self.f0 not in ("zero", "network"):
            raise ValueError(f"f0 must be 'zero' or 'network', got {self.f0!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        unknown = [d for d in self.distances if d not in DISTANCES]
        if unknown:
            raise ValueError(f"unknown distances {unknown}; choose from {list(DISTANCES)}")

    @classmethod
    def quick(cls, **overrides) -> "WidthSweepConfig":
        """The 2-core CPU scale the book executes: widths 16, 64, 256, 1024; 3 seeds; n = 256
        (200 held out); 40 epochs (80 Adam steps) at lr 1e-2 [ours].

        Adam moves every weight by about lr a step whatever the gradient's size, so how far
        training goes is set by lr x steps: 80 steps at 1e-2 stand in for 800 at the paper's
        1e-3 (checked: the same training accuracy and kernel drift on MNIST, width 256).
        The paper scale keeps lr 1e-3.
        """
        base = dict(name="quick", lr=1e-2, epochs=40)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def paper(cls, **overrides) -> "WidthSweepConfig":
        """The paper's protocol for a GPU: widths 16..4096, 500 epochs; n [ours] 10,000 / 2,000."""
        base = dict(name="paper", widths=tuple(2**k for k in range(4, 13)), seeds=(0, 1, 2),
                    n_train=10_000, n_test=2_000, n_ntk=500, pool_per_class=None, epochs=500,
                    ntk_every=50)
        base.update(overrides)
        return cls(**base)

    def torch_device(self) -> torch.device:
        """The device runs use: ``device``, with "auto" resolved to CUDA when available."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def loss_for(self, task: str) -> str:
        from .data import TASKS

        return "ce" if len(TASKS[task][1]) > 2 else "mse"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    from .models import unit_rows

    return unit_rows(X.to(torch.float64))


def prepare_task(config: WidthSweepConfig, task: str) -> PreparedTask:
    """Load the task's subset (rows scaled to unit norm [v1]); compute each model's features and Theta_inf.

    The attention keys of MLP-Attn are the unit-norm training rows (transductive, as in the
    paper; test rows use the test-time rule C x). Features and Theta_inf depend on the
    feature map only, not on the width or the initialisation seed, so they are computed once.
    """
    from .data import task_data
    from .kernels import features64, ntk_relu
    from .models import mlp_attn, relu_net

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
    dev = config.torch_device()
    Xtr, Xte = prep.X_train.to(dev), prep.X_test.to(dev)
    for kind in config.models:
        model = (relu_net(d, 1) if kind == "relu" else mlp_attn(prep.X_train, 1)).to(dev)
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
    from .distance import expected_init_gap
    from .kernels import unit_angle
    from .spectra import RankDeficientError, eigvalsh_desc, kappa, kappa_d

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
    """Train one network and measure every distance. Returns a dict with ``distances``
    (name -> {"value", "note"}), ``curve`` (epochs, kernel drift at each), the kernels
    (theta_init, theta_final, theta_inf on the n_ntk points), accuracies and timing."""
    from .models import relu_net
    from .predictors import kernel_regression
    from .train import train

    t0 = time.perf_counter()
    # The hidden layer of either model sees only x^; its weights (W, a) depend only on
    # (d, width, outputs, seed). So the MLP-Attn network is the 2L-ReLU network applied to
    # the cached attention features: identical function, no attention recomputed per run.
    Xh, Xh_test = prep.features[kind]
    model = relu_net(Xh.shape[1], width, prep.n_outputs, seed=seed).to(Xh.device)
    with torch.no_grad():
        f0_train = model(Xh).to(torch.float64)
        f0_test = model(Xh_test).to(torch.float64)
    record = sorted({0, config.epochs, *range(0, config.epochs + 1, config.ntk_every)})
    res = train(model, Xh, prep.targets.to(Xh.device), loss=prep.loss, optimizer=config.optimizer,
                epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                weight_decay=config.weight_decay, seed=seed, record_ntk_at=record,
                X_ntk=Xh[: config.n_ntk], progress=False)
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
        "net_test_acc": _accuracy(cpu(f_net), prep.y_test),
        "ntk_test_acc": _accuracy(cpu(f_ntk), prep.y_test),
        "seconds": time.perf_counter() - t0,
    }


def run_width_sweep(config: WidthSweepConfig, progress: bool = True, keep: dict | None = None) -> list[dict]:
    """Run every (task, model, width, seed) of ``config``; return tidy rows.

    Each row: task, model, width, seed, distance, value, note, space, train_acc,
    net_test_acc, ntk_test_acc, seconds (of that run). If ``keep`` is a dict it receives,
    under (task, model, width, seed), the run's kernels and drift curve (for figures).
    """
    runs = [(t, k, w, s) for t in config.tasks for k in config.models for w in config.widths for s in config.seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc=f"width sweep ({config.name})")
    rows: list[dict] = []
    for task in config.tasks:
        prep = prepare_task(config, task)
        for kind in config.models:
            for width in config.widths:
                for seed in config.seeds:
                    out = run_one(config, prep, kind, width, seed)
                    for name, d in out["distances"].items():
                        rows.append({
                            "task": task, "model": kind, "width": int(width), "seed": int(seed),
                            "distance": name, "value": d["value"], "note": d["note"],
                            "space": DISTANCES[name].space, "train_acc": out["train_acc"],
                            "net_test_acc": out["net_test_acc"], "ntk_test_acc": out["ntk_test_acc"],
                            "seconds": out["seconds"],
                        })
                    if keep is not None:
                        keep[(task, kind, int(width), int(seed))] = {
                            k: out[k] for k in ("curve", "theta_init", "theta_final", "theta_inf")}
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    return rows


_GROUP = ("task", "model", "width", "distance")


def summarize(rows: list[dict], by: tuple[str, ...] = _GROUP) -> list[dict]:
    """Mean, std (ddof = 0), min, max and the number of seeds of ``value``, grouped by ``by``.

    NaN values (a reading that does not exist for a run) are left out of the statistics
    and counted in ``n_nan``. Groups keep the order of first appearance.
    """
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(float(r["value"]))
    out = []
    for key, vals in groups.items():
        v = np.asarray(vals, dtype=float)
        ok = v[np.isfinite(v)]
        stats = dict(zip(by, key))
        if ok.size:
            stats.update(mean=float(ok.mean()), std=float(ok.std()), min=float(ok.min()), max=float(ok.max()))
        else:
            stats.update(mean=math.nan, std=math.nan, min=math.nan, max=math.nan)
        stats.update(n=int(ok.size), n_nan=int(v.size - ok.size))
        out.append(stats)
    return out


def pivot(summary: list[dict], distance: str, widths=None, stat: str = "mean") -> list[dict]:
    """One row per (task, model) with a column per width holding ``stat`` (and ``"std"`` as ``±``)."""
    sel = [s for s in summary if s["distance"] == distance]
    widths = sorted({s["width"] for s in sel}) if widths is None else list(widths)
    table: dict[tuple, dict] = {}
    for s in sel:
        if s["width"] not in widths:
            continue
        row = table.setdefault((s["task"], s["model"]), {"task": s["task"], "model": s["model"]})
        row[s["width"]] = s[stat]
        row[f"{s['width']}_std"] = s["std"]
    return list(table.values())


def format_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3g") -> str:
    """A plain-text table of dict rows (columns default to the first row's keys)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0]) if columns is None else list(columns)

    def fmt(v) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else format(v, floatfmt)
        return str(v)

    cells = [[str(c) for c in columns]] + [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def width_trend(rows: list[dict]) -> list[dict]:
    """Spearman rank correlation of each distance with width, over all seeds, per (task, model).

    rho > 0: the distance grows with width; rho < 0: it falls. NaN values are dropped;
    a group with fewer than 3 finite values or a constant value gets rho = NaN.
    Returns rows: task, model, distance, rho, p (two-sided), n.
    """
    from scipy.stats import spearmanr

    groups: dict[tuple, list[tuple[int, float]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["distance"]), []).append((r["width"], float(r["value"])))
    out = []
    for (task, model, dist), pairs in groups.items():
        w = np.array([p[0] for p in pairs], float)
        v = np.array([p[1] for p in pairs], float)
        ok = np.isfinite(v)
        if ok.sum() < 3 or np.ptp(v[ok]) == 0 or np.ptp(w[ok]) == 0:
            rho, p = math.nan, math.nan
        else:
            res = spearmanr(w[ok], v[ok])
            rho, p = float(res.statistic), float(res.pvalue)
        out.append({"task": task, "model": model, "distance": dist, "rho": rho, "p": p, "n": int(ok.sum())})
    return out


def rows_from_json(rows: list[dict]) -> list[dict]:
    """Rows read back from :mod:`linattn.results` (non-finite floats are stored as strings)."""
    out = []
    for r in rows:
        r = dict(r)
        if isinstance(r.get("value"), str):
            r["value"] = float(r["value"])
        out.append(r)
    return out


def _scale_config(scale: str, **overrides) -> WidthSweepConfig:
    if scale == "quick":
        return WidthSweepConfig.quick(**overrides)
    if scale == "paper":
        return WidthSweepConfig.paper(**overrides)
    raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")


def main(argv: list[str] | None = None) -> int:
    """``python -m linattn.experiments width-sweep --scale quick|paper --out NAME [--tasks ...]
    [--widths ...] [--seeds ...]``: run the sweep and store rows, summary, trends, drift
    curves and :func:`kernel_facts` per task with :func:`linattn.results.save` (``results/NAME.json``)."""
    p = argparse.ArgumentParser(prog="python -m linattn.experiments")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("width-sweep", help="NTK distance against width (Table 1 of v1)")
    w.add_argument("--scale", choices=("quick", "paper"), default="quick")
    w.add_argument("--out", required=True, help="result name (results/NAME.json); a path's stem is used")
    w.add_argument("--tasks", nargs="+", default=None)
    w.add_argument("--widths", nargs="+", type=int, default=None)
    w.add_argument("--seeds", nargs="+", type=int, default=None)
    w.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    w.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: tuple(v) for k, v in (("tasks", args.tasks), ("widths", args.widths),
                                           ("seeds", args.seeds)) if v is not None}
    config = _scale_config(args.scale, **overrides)
    keep: dict = {}
    t0 = time.perf_counter()
    rows = run_width_sweep(config, progress=not args.no_progress, keep=keep)
    wall = time.perf_counter() - t0
    curves = [{"task": t, "model": k, "width": w_, "seed": s, **v["curve"]} for (t, k, w_, s), v in keep.items()]
    facts = {task: kernel_facts(prepare_task(config, task), config.n_ntk) for task in config.tasks}
    payload = {"rows": rows, "summary": summarize(rows), "trend": width_trend(rows), "curves": curves,
               "facts": facts, "wall_s": wall, "threads": torch.get_num_threads()}
    from . import results

    import pathlib

    name = pathlib.Path(args.out).name
    name = name[:-5] if name.endswith(".json") else name
    path = results.save(name, payload, config.to_dict(), wall_s=wall)
    print(f"{len(rows)} rows in {wall:.1f} s -> {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
