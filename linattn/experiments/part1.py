"""Part I: the spectra the width argument rests on.

Experiments (registered in :mod:`linattn.experiments`):

- ``kappa_vs_n``: kappa_d(G) = lambda_1 / lambda_min(n, d) of G = X X^T against the number of
  images n, per data set and preprocessing (:func:`linattn.spectra.kappa_d_sweep`); a
  rank-deficient G gives kappa None and its numerical rank;
- ``premise``: at n images, kappa_d(G) beside kappa of the infinite-width NTKs of 2L-ReLU and
  MLP-Attn (:func:`linattn.kernels.ntk_inf`): does the network's kernel inherit kappa(G)^3?
- ``kappa_full``: kappa_d(G) of a whole official training split (MNIST 60,000 x 784, CIFAR-10
  50,000 x 3072), the n that v2's width bound pairs with the paper's small-sample kappa.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._validation import check_int
from .base import Config, Experiment

__all__ = ["KappaConfig", "PremiseConfig", "FullConfig", "KAPPA_VS_N", "PREMISE", "KAPPA_FULL", "PREPROCESS"]

#: Name -> ``standardize`` argument of :func:`linattn.data.preprocess` (rows are then unit-normalised).
PREPROCESS = {"raw": False, "global": "global", "pixel": "pixel"}
NS = (10, 20, 30, 50, 80, 100, 150, 200, 300, 500, 1000)


def _check(datasets, preprocess=()) -> None:
    from ..data import DATASETS

    for ds in datasets:
        if ds not in DATASETS:
            raise ValueError(f"unknown data set {ds!r}; choose from {sorted(DATASETS)}")
    for p in preprocess:
        if p not in PREPROCESS:
            raise ValueError(f"unknown preprocessing {p!r}; choose from {sorted(PREPROCESS)}")


def _dim(name: str) -> int:
    from ..data import input_dim

    return input_dim(name)


def _pool_needs(params: dict) -> list[tuple[str, str]]:
    if params.get("pool_per_class") is not None and params["dataset"] == "mnist":
        return []  # the offline MNIST subset holds the quick pool
    return [(params["dataset"], "train")]


@dataclass(frozen=True)
class KappaConfig(Config):
    """kappa_d(G) against n. ``ns``: sample sizes; ``preprocess``: names of :data:`PREPROCESS`;
    ``pool_per_class``: draw from the first k training images a class (quick: 500, the pool that
    is the same offline and online) or from the whole training split (None, paper scale);
    ``data_seed``: the sample's seed. Quick: n = 10..1000; paper: up to 10,000, whole split."""

    datasets: tuple[str, ...] = ("mnist", "cifar10")
    ns: tuple[int, ...] = NS
    preprocess: tuple[str, ...] = ("raw", "global", "pixel")
    pool_per_class: int | None = 500
    data_seed: int = 0

    SCALES = {"quick": {}, "paper": dict(ns=NS + (2000, 5000, 10_000), pool_per_class=None)}

    def __post_init__(self) -> None:
        _check(self.datasets, self.preprocess)
        for n in self.ns:
            check_int(n, "n", minimum=2)
        if self.pool_per_class is not None:
            check_int(self.pool_per_class, "pool_per_class")
        check_int(self.data_seed, "data_seed", minimum=0)


def _kappa_cells(config: KappaConfig) -> list[dict]:
    return [{"dataset": ds, "preprocess": p, "ns": list(config.ns), "pool_per_class": config.pool_per_class,
             "data_seed": config.data_seed} for ds in config.datasets for p in config.preprocess]


def run_kappa_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kappa_d of one data set and preprocessing at every n (float64)."""
    from .. import data, spectra

    std = PREPROCESS[params["preprocess"]]
    pts = spectra.kappa_d_sweep(lambda n: data.sample(params["dataset"], n, seed=params["data_seed"],
                                                      standardize=std, pool_per_class=params["pool_per_class"])[0],
                                params["ns"])
    return {"rows": [{"dataset": params["dataset"], "preprocess": params["preprocess"], **p._asdict()} for p in pts]}


KAPPA_VS_N = Experiment(
    name="kappa_vs_n",
    title="kappa_d(G) against the number of images n, per preprocessing",
    chapter="book/part1/spectral_amplification.ipynb",
    config=KappaConfig,
    cells=_kappa_cells,
    run=run_kappa_cell,
    data=_pool_needs,
    work=lambda p: 1e-9 * sum(n * n * _dim(p["dataset"]) for n in p["ns"]),
)


@dataclass(frozen=True)
class PremiseConfig(Config):
    """kappa_d(G) against kappa of the two networks' infinite-width NTKs on the same n images
    (raw unit rows). Quick: n = 100 from the quick pool; paper: n = 100, 300, 1000 from the whole split."""

    datasets: tuple[str, ...] = ("mnist", "cifar10")
    ns: tuple[int, ...] = (100,)
    pool_per_class: int | None = 500
    data_seed: int = 0

    SCALES = {"quick": {}, "paper": dict(ns=(100, 300, 1000), pool_per_class=None)}

    def __post_init__(self) -> None:
        _check(self.datasets)
        for n in self.ns:
            check_int(n, "n", minimum=2)


def _premise_cells(config: PremiseConfig) -> list[dict]:
    return [{"dataset": ds, "n": int(n), "pool_per_class": config.pool_per_class, "data_seed": config.data_seed}
            for ds in config.datasets for n in config.ns]


def _kappa_or_rank(K) -> tuple[float | None, int]:
    from ..spectra import RankDeficientError, kappa, numerical_rank

    try:
        return kappa(K), K.shape[0]
    except RankDeficientError as exc:
        return None, int(exc.rank)
    except ValueError:  # pragma: no cover - an indefinite matrix from round-off
        return None, int(numerical_rank(K))


def run_premise_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kappa_d(G), kappa(Theta_relu) and kappa(Theta_attn) of n images (None with the rank if singular)."""
    from .. import data, kernels, spectra
    from ..models import mlp_attn, relu_net

    X, _ = data.sample(params["dataset"], params["n"], seed=params["data_seed"],
                       pool_per_class=params["pool_per_class"])
    (g,) = spectra.kappa_d_sweep(lambda n: X, [X.shape[0]])
    k_relu, r_relu = _kappa_or_rank(kernels.ntk_inf(relu_net(X.shape[1], 1, seed=0), X))
    k_attn, r_attn = _kappa_or_rank(kernels.ntk_inf(mlp_attn(X, 1, seed=0), X))
    return {"rows": [{"dataset": params["dataset"], "n": params["n"], "kappa_G": g.kappa, "rank_G": g.rank,
                      "kappa_ntk_relu": k_relu, "rank_ntk_relu": r_relu, "kappa_ntk_attn": k_attn,
                      "rank_ntk_attn": r_attn}]}


PREMISE = Experiment(
    name="premise",
    title="Does the network's NTK inherit kappa(G)^3? kappa_d(G) beside kappa of Theta_inf",
    chapter="book/part1/spectral_amplification.ipynb",
    config=PremiseConfig,
    cells=_premise_cells,
    run=run_premise_cell,
    data=_pool_needs,
    work=lambda p: 1e-9 * p["n"] ** 2 * _dim(p["dataset"]),
)


@dataclass(frozen=True)
class FullConfig(Config):
    """kappa_d(G) of a whole official training split, per preprocessing (the same at both scales:
    this *is* the paper's n; about 5 minutes on 2 CPU cores)."""

    datasets: tuple[str, ...] = ("mnist", "cifar10")
    preprocess: tuple[str, ...] = ("raw", "global")

    def __post_init__(self) -> None:
        _check(self.datasets, self.preprocess)


def run_full_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kappa_d (None if rank-deficient), numerical rank and min(n, d) of a whole training split."""
    import torch

    from .. import data, spectra

    ds = data.load(params["dataset"], "train", source="full")
    X = torch.from_numpy(data.preprocess(ds.x, standardize=PREPROCESS[params["preprocess"]], dataset=params["dataset"]))
    (pt,) = spectra.kappa_d_sweep(lambda _: X, [len(X)])
    return {"rows": [{"dataset": params["dataset"], "preprocess": params["preprocess"], **pt._asdict()}]}


KAPPA_FULL = Experiment(
    name="kappa_full",
    title="kappa_d(G) of the whole training sets (the n of v2's width bound)",
    chapter="book/part1/spectral_amplification.ipynb",
    config=FullConfig,
    cells=lambda c: [{"dataset": ds, "preprocess": p} for ds in c.datasets for p in c.preprocess],
    run=run_full_cell,
    data=lambda p: [(p["dataset"], "train")],
    work=lambda p: 60.0 if p["dataset"] == "mnist" else 100.0,
)
