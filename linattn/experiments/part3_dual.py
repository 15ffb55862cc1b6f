"""Part III: the dual implication (fit against malleability of four kernels) as a stored experiment.

``dual_implication``: one cell per (draw, data set, kernel). A draw ``s`` samples the data (seed s),
the directions of the linear targets, the label noise and the random-sign perturbation (all seed
s), as the chapter's live quick-scale computation does. The data sets are

- ``"mnist"``: ten-class MNIST with the five linear targets of :data:`linattn.dual.CONSTRUCTIONS`
  and the 0-vs-rest labels;
- ``"mnist_3v8"``: MNIST 3 vs 8 with +-1 labels, 0%, 10% and 25% of the training labels flipped;

and the kernels those of :data:`linattn.dual.KERNELS`. A cell's rows are
:func:`linattn.dual.dual_rows` (training bias, test error, flips of the perturbed points), with
``n_train`` added, so that rows of several sizes can be read together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._validation import check_int, check_option, check_range
from .base import Config, Experiment

__all__ = ["DualConfig", "DATASETS", "LABEL_NOISE", "dual_targets", "DUAL_IMPLICATION"]

DATASETS = ("mnist", "mnist_3v8")
#: the label targets of MNIST 3 vs 8: name -> the fraction of training labels flipped
LABEL_NOISE = {"3v8": 0.0, "3v8_noise10": 0.1, "3v8_noise25": 0.25}


@dataclass(frozen=True)
class DualConfig(Config):
    """Kernel ridge fits and influence flips of the four kernels of :data:`linattn.dual.KERNELS`.

    n_train, n_test: training and test points a draw [ours; v2 gives no experiment]: 200 and 100
        at the quick scale (the chapter's live numbers), 2,000 and 100 at the ``paper`` preset.
    draws: the draws s (data sample, target direction, label noise and perturbation seed = s).
    ridge: the kernel ridge lambda, the same for every kernel and every n [ours: 1e-2]. The
        kernels' eigenvalues grow with n (tr G = n for unit rows), so a fixed lambda regularises
        less, relative to the spectrum, the larger n is.
    eps, tau: the random-sign perturbation of size eps in pixel space on the top tau fraction of
        the training points by |influence on the test loss| [ours: 0.1, 0.1].
    pool_per_class: the quick pool (the first 500 training images of each class, test points held
        out from it) or None: the official training split, the test set from the official test
        split (needed from n = 1,000 on, where 3 vs 8 outgrows the pool).
    """

    n_train: int = 200
    n_test: int = 100
    draws: tuple[int, ...] = (0, 1, 2, 3, 4)
    ridge: float = 1e-2
    eps: float = 0.1
    tau: float = 0.1
    pool_per_class: int | None = 500
    datasets: tuple[str, ...] = DATASETS
    kernels: tuple[str, ...] = ("G", "G^3", "NTK 2L-ReLU", "NTK MLP-Attn")

    SCALES: ClassVar[dict[str, dict]] = {"quick": {}, "paper": {"n_train": 2000, "pool_per_class": None}}

    def __post_init__(self) -> None:
        from ..dual import KERNELS

        check_int(self.n_train, "n_train", minimum=20)
        check_int(self.n_test, "n_test", minimum=1)
        if not self.draws:
            raise ValueError("draws must name at least one draw, e.g. draws=(0,)")
        for s in self.draws:
            check_int(s, "draws", minimum=0)
        check_range(self.ridge, "ridge", 0.0, float("inf"), lo_open=True)
        check_range(self.eps, "eps", 0.0, float("inf"), lo_open=True)
        check_range(self.tau, "tau", 0.0, 1.0, lo_open=True)
        if self.pool_per_class is not None:
            check_int(self.pool_per_class, "pool_per_class", minimum=1)
            if self.n_train + self.n_test > 2 * self.pool_per_class:
                raise ValueError(f"n_train + n_test = {self.n_train + self.n_test} does not fit a pool of "
                                 f"{self.pool_per_class} images a class for MNIST 3 vs 8; set pool_per_class=None "
                                 "(the official splits) or a smaller n_train")
        for d in self.datasets:
            check_option(d, "datasets", DATASETS)
        for k in self.kernels:
            check_option(k, "kernels", tuple(KERNELS))


def dual_targets(dataset: str, n_train: int, n_test: int, draw: int, pool_per_class: int | None):
    """(task data, {target name: (y_train, y_test[, y_test_sign])}) of one data set and draw."""
    from .. import data, dual

    check_option(dataset, "dataset", DATASETS)
    if dataset == "mnist":
        td = data.task_data("mnist", n_train, n_test, seed=draw, pool_per_class=pool_per_class)
        targets = {c: dual.linear_target(c, td.X_train, td.X_test, seed=draw) for c in dual.CONSTRUCTIONS}
        y0, y0_test = dual.label_targets(td.y_train, td.y_test, positive=0)
        targets["0_vs_rest"] = (y0, y0_test, y0_test)
        return td, targets
    td = data.task_data("mnist_3v8", n_train, n_test, seed=draw, pool_per_class=pool_per_class)  # label 1 = digit 8
    targets = {}
    for name, noise in LABEL_NOISE.items():
        y, y_test = dual.label_targets(td.y_train, td.y_test, noise=noise, seed=draw)
        targets[name] = (y, y_test, y_test)
    return td, targets


def _cells(c: DualConfig) -> list[dict]:
    common = {"n_train": c.n_train, "n_test": c.n_test, "ridge": c.ridge, "eps": c.eps, "tau": c.tau,
              "pool_per_class": c.pool_per_class}
    return [{"draw": s, "dataset": d, "kernel": k, **common} for s in c.draws for d in c.datasets for k in c.kernels]


def run_dual_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """The rows of :func:`linattn.dual.dual_rows` for one (draw, data set, kernel), on the CPU in float64."""
    from .. import dual

    td, targets = dual_targets(params["dataset"], params["n_train"], params["n_test"], params["draw"],
                               params["pool_per_class"])
    rows = dual.dual_rows(td.X_train, td.X_test, targets, ridge=params["ridge"], eps=params["eps"], tau=params["tau"],
                          seed=params["draw"], kernel_names=(params["kernel"],), dataset=params["dataset"],
                          n_train=params["n_train"])
    return {"rows": rows}


def _needs(params: dict) -> list[tuple[str, str]]:
    """The data files a cell needs: none with the quick pool (the offline MNIST subset holds it)."""
    return [] if params["pool_per_class"] is not None else [("mnist", "train"), ("mnist", "test")]


def _work(params: dict) -> float:
    """Relative cost: per target, two kernels on n x d rows (before and after the perturbation; the
    NTKs' angles by direct distances, about 4x a product) and three n x n factorisations."""
    n, d = params["n_train"], 784
    targets = 6 if params["dataset"] == "mnist" else len(LABEL_NOISE)
    per_kernel = 4 if params["kernel"].startswith("NTK") else 1
    return 1e-9 * targets * (per_kernel * 2 * n * (n + params["n_test"]) * d + n ** 3)


DUAL_IMPLICATION = Experiment(
    name="dual_implication",
    title="Fit against influence malleability of G, G^3 and the two NTKs on targets of several constructions",
    chapter="book/part3/dual_implication.ipynb",
    config=DualConfig,
    cells=_cells,
    run=run_dual_cell,
    data=_needs,
    work=_work,
)
