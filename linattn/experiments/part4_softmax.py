"""Part IV: softmax attention and its linearized proxy (issue 13, item 2).

Experiments (registered in :mod:`linattn.experiments`):

- ``softmax_proxy``: per (data set, n, seed) of unit-normalised training rows, and for every
  temperature, the terms and errors of the first-order expansion of softmax attention beside the
  proxy G X (:func:`linattn.softmax.proxy_terms`) and the condition numbers of the kernels the
  softmax features induce, beside the proxy's G^3 (:func:`linattn.softmax.feature_spectra`), all
  float64;
- ``softmax_malleability``: the Part III protocol (the "transformed" intervention; PGD and the
  random-sign noise control; the attention rebuilt from the intervened set and held fixed) for
  2L-ReLU, MLP-Attn (the proxy) and MLP-Attn with fixed softmax attention over the training keys
  (:func:`linattn.softmax.softmax_attn`) at each temperature, through
  :func:`linattn.softmax.malleability`. Rows as Part III's (flip counts, Spearman's rho, top-tau
  overlap, train and test accuracy), plus ``temperature`` (its name) and ``T`` (its value).

Temperatures are numbers or the names of :data:`linattn.softmax.NAMED_TEMPERATURES`, resolved
per data set (``"1/sqrt(d)"`` is 1/28 on MNIST, about 0.018 on CIFAR-10).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._validation import as_tensor, check_int, check_option, check_range
from ..train import TrainProtocol
from .base import Config, Experiment, torch_dtype
from . import part3

__all__ = ["ProxyConfig", "SoftmaxMalleabilityConfig", "TEMPERATURES", "MODELS", "softmax_model", "softmax_rows",
           "SOFTMAX_PROXY", "SOFTMAX_MALLEABILITY"]

#: the temperature grid of the proxy comparison (unit rows: scores are cosines over T)
TEMPERATURES = ("0.01", "0.03", "1/sqrt(d)", "0.1", "0.3", "1", "3", "10", "sqrt(d)", "100")
MODELS = ("relu", "attn", "softmax")


def _check_temperatures(specs) -> None:
    from ..softmax import resolve_temperature

    if not specs:
        raise ValueError("temperatures must name at least one temperature, e.g. temperatures=('1/sqrt(d)',)")
    for t in specs:
        resolve_temperature(t, 784)


def _dataset_dim(name: str) -> int:
    from ..data import input_dim

    return input_dim(name)


# --------------------------------------------------------------------------- (a), (b): the proxy and the kernels


@dataclass(frozen=True)
class ProxyConfig(Config):
    """Softmax attention against the proxy on unit-normalised training rows [ours: the paper has no such test].

    datasets, ns, seeds: the cells (``seeds`` draw the class-balanced subsets, from the quick pool
    ``pool_per_class`` or, with None, from the whole training split); temperatures: the grid
    (:data:`TEMPERATURES`). Quick: MNIST and CIFAR-10, n = 50, 100, 200, three subsets each
    (the chapter reads CIFAR-10 at n = 100 only, to keep its build short). Paper: n up to 700 (below
    MNIST's rank 717), five subsets from the whole training splits.
    """

    datasets: tuple[str, ...] = ("mnist", "cifar10")
    ns: tuple[int, ...] = (50, 100, 200)
    seeds: tuple[int, ...] = (0, 1, 2)
    temperatures: tuple[str, ...] = TEMPERATURES
    pool_per_class: int | None = 500

    SCALES = {"quick": {}, "paper": dict(ns=(100, 200, 400, 700), seeds=(0, 1, 2, 3, 4), pool_per_class=None)}

    def __post_init__(self) -> None:
        from ..data import DATASETS

        for ds in self.datasets:
            check_option(ds, "dataset", tuple(DATASETS))
        for n in self.ns:
            check_int(n, "n", minimum=3)
        for s in self.seeds:
            check_int(s, "seed", minimum=0)
        _check_temperatures(self.temperatures)
        if self.pool_per_class is not None:
            check_int(self.pool_per_class, "pool_per_class")


def _proxy_cells(config: ProxyConfig) -> list[dict]:
    common = config.common_params(("datasets", "ns", "seeds"))
    return [dict(common, dataset=ds, n=int(n), seed=int(s)) for ds in config.datasets for n in config.ns
            for s in config.seeds]


def run_proxy_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """One (data set, n, seed): a row per temperature of the expansion's terms and errors and of the
    condition numbers of the softmax-induced kernels, with the proxy's (prefix ``proxy``) and those of
    the unit rows themselves (prefix ``relu``: the 2L-ReLU's input), the same in every row, and the
    exponents p of kappa = kappa(G)^p of the softmax Gram and of G^3 (``exponent_softmax``,
    ``exponent_proxy``; None where a condition number is beyond float64)."""
    from ..data import sample
    from ..softmax import feature_spectra, proxy_terms, resolve_temperature
    from ..spectra import RankDeficientError, kappa_d

    X, _ = sample(params["dataset"], params["n"], seed=params["seed"], pool_per_class=params["pool_per_class"])
    d = X.shape[1]
    ident = {"dataset": params["dataset"], "n": params["n"], "seed": params["seed"]}
    try:
        ident["kappa_G"] = kappa_d(X)
    except RankDeficientError:
        ident["kappa_G"] = None
    proxy = {**feature_spectra(X @ (X.T @ X), "proxy"), **feature_spectra(X, "relu")}  # G X, and the raw unit rows
    rows = []
    for spec in params["temperatures"]:
        T = resolve_temperature(spec, d)
        row = {**ident, **proxy, **proxy_terms(X, T, spectra=True), "temperature": spec, "T": T}
        for name in ("softmax", "proxy"):  # kappa = kappa(G)^p: the exponent p (3 for the proxy's G^3)
            k, kG = row[f"kappa_{name}"], ident["kappa_G"]
            row[f"exponent_{name}"] = None if k is None or kG is None else float(np.log(k) / np.log(kG))
        rows.append(row)
    return {"rows": rows}


def _proxy_needs(params: dict) -> list[tuple[str, str]]:
    if params.get("pool_per_class") is not None and params["dataset"] == "mnist":
        return []
    return [(params["dataset"], "train")]


def _proxy_work(params: dict) -> float:
    n, d = params["n"], _dataset_dim(params["dataset"])
    return 1e-9 * len(params["temperatures"]) * (6 * n * n * d + 4 * n ** 3)


SOFTMAX_PROXY = Experiment(
    name="softmax_proxy",
    title="Softmax attention against its linearized proxy: the expansion's terms and the induced kernels' spectra",
    chapter="book/part4/softmax_proxy.ipynb",
    config=ProxyConfig,
    cells=_proxy_cells,
    run=run_proxy_cell,
    data=_proxy_needs,
    work=_proxy_work,
)


# --------------------------------------------------------------------------- (c): malleability


@dataclass(frozen=True)
class SoftmaxMalleabilityConfig(part3.TableConfig):
    """The Part III protocol for 2L-ReLU, MLP-Attn and softmax-attention MLP-Attn [ours beyond v1].

    Every field and scale of :class:`linattn.experiments.part3.TableConfig` (quick: n = 200, t = 60
    from the quick pool, width 128, 40 epochs at lr 1e-2 in float64, three seeds; paper: n = 5,000,
    t = 1,000 from the official splits, width 1024, 500 epochs at lr 1e-3), on MNIST with PGD and
    the noise control by default, the attention recomputed and, for ``fixed_attacks``, held fixed;
    plus ``temperatures``: the softmax model's, one cell each (names of
    :data:`linattn.softmax.NAMED_TEMPERATURES` or numbers). ``kernel`` stays "empirical" (each
    network's own NTK).
    """

    tasks: tuple[str, ...] = ("mnist",)
    models: tuple[str, ...] = MODELS
    attacks: tuple[str, ...] = ("pgd", "noise")
    temperatures: tuple[str, ...] = ("1/sqrt(d)", "0.1", "0.3", "1")

    MODEL_CHOICES: ClassVar[tuple[str, ...]] = MODELS

    def __post_init__(self) -> None:
        super().__post_init__()
        part3.require_defaults(self, "softmax_malleability", ("kernel",))
        if "softmax" in self.models:
            _check_temperatures(self.temperatures)


def softmax_model(X_train, y_train, n_classes: int, *, width: int, seed: int, temperature: float,
                  protocol: TrainProtocol | None = None, dtype: torch.dtype | str = torch.float32, input_map: str = "none",
                  init_scale: float = 1.0) -> torch.nn.Module:
    """MLP-Attn with fixed softmax attention over the unit rows of X_train (n, d) at ``temperature``,
    trained as :func:`linattn.experiments.part3.paper_model` trains its two models (one output with
    MSE on +-1 targets for two classes, else n_classes logits with cross-entropy [v1]). ``dtype``: a torch
    dtype or a config's name for one ("float32", "float64")."""
    from ..data import regression_targets
    from ..models import InputMap, attention_keys
    from ..softmax import softmax_attn
    from ..train import train

    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    C = 1 if check_int(n_classes, "n_classes", minimum=2) == 2 else n_classes
    dtype = torch_dtype(dtype)
    im = InputMap.fit(X_train, input_map)
    model = softmax_attn(attention_keys(X_train, input_map=im), width, C, temperature=temperature, seed=seed,
                         dtype=dtype, init_scale=init_scale, input_map=im)
    if protocol is not None and protocol.epochs:
        targets = y_train if C > 1 else regression_targets(y_train, 1)
        train(model, X_train, targets, protocol, seed=seed, progress=False)
    return model


def softmax_rows(td, model: torch.nn.Module, config: SoftmaxMalleabilityConfig, *, seed: int,
                 ident: dict | None = None) -> list[dict[str, Any]]:
    """One row per (attack, attention mode) of one trained model on one task: the Part III rows
    (:func:`linattn.experiments.part3.table_rows`) through :func:`linattn.softmax.malleability`, so
    that a softmax-attention model's keys are rebuilt (or held fixed) like MLP-Attn's C."""
    from ..malleability import model_influence
    from ..softmax import malleability

    ident = {"task": td.name, **(ident or {}), "train_acc": part3.accuracy(model, td.X_train, td.y_train),
             "test_acc": part3.accuracy(model, td.X_test, td.y_test)}
    before = model_influence(model, td.X_train, td.y_train, td.X_test, td.y_test, ridge=config.ridge)
    has_attention = getattr(model, "feature_map", None) is not None
    rows = []
    for att in config.attacks:
        modes = ["recompute"] + (["fixed"] if has_attention and att in config.fixed_attacks else [])
        X_after = None
        for mode in modes:
            res = malleability(model, td.X_train, td.y_train, td.X_test, td.y_test, attack=att, eps=config.eps,
                               tau=config.tau, attention=mode, ridge=config.ridge, seed=seed, before=before,
                               X_after=X_after)
            X_after = res.X_after
            n_tracked = int(res.tracked.shape[0])
            rows.append({**ident, **res.row(), "model": ident.get("model", res.row()["model"]),
                         "n_tracked": n_tracked, "n_flipped": int(round(res.flip_rate * n_tracked))})
    return rows


def _mall_cells(config: SoftmaxMalleabilityConfig) -> list[dict]:
    common = config.common_params(("tasks", "models", "temperatures", "seeds"))
    cells = []
    for t in config.tasks:
        for m in config.models:
            for temp in (config.temperatures if m == "softmax" else ("n/a",)):
                cells += [dict(common, task=t, model=m, temperature=temp, seed=int(s)) for s in config.seeds]
    return cells


def run_malleability_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one (task, model, temperature, seed) and measure PGD and noise malleability."""
    from ..softmax import resolve_temperature

    task, kind, temp, seed = params["task"], params["model"], params["temperature"], params["seed"]
    cfg = SoftmaxMalleabilityConfig.from_params(params, tasks=(task,), models=(kind,),
                                                temperatures=(temp,) if kind == "softmax" else ("1",), seeds=(seed,))
    td = part3._task_data(task, cfg.n_train, cfg.n_test, cfg.data_seed, cfg.pool_per_class)
    ident = {"model": kind, "temperature": temp, "T": None, "seed": seed}
    if kind == "softmax":
        T = resolve_temperature(temp, td.X_train.shape[1])
        ident["T"] = T
        model = softmax_model(td.X_train, td.y_train, td.n_classes, width=cfg.width, seed=seed, temperature=T,
                              protocol=cfg.protocol, input_map=cfg.input_map, init_scale=cfg.init_scale,
                              dtype=torch_dtype(cfg.dtype))
    else:
        model = part3.paper_model(kind, td.X_train, td.y_train, td.n_classes, width=cfg.width, seed=seed,
                                  protocol=cfg.protocol, input_map=cfg.input_map, init_scale=cfg.init_scale,
                                  dtype=torch_dtype(cfg.dtype))
    return {"rows": softmax_rows(td, model, cfg, seed=seed, ident=ident)}


def _mall_work(params: dict) -> float:
    base = part3._work(params)
    if params["model"] != "softmax":
        return base
    n, d = params.get("n_train", 200), part3._dim(params["task"])
    p = TrainProtocol(**params["protocol"])
    return base + 1e-9 * p.steps(n) * min(p.batch_size or n, n) * n * d * 2  # the attention over n keys a step


SOFTMAX_MALLEABILITY = Experiment(
    name="softmax_malleability",
    title="Influence malleability of softmax-attention MLP-Attn beside its linearized proxy and 2L-ReLU",
    chapter="book/part4/softmax_proxy.ipynb",
    config=SoftmaxMalleabilityConfig,
    cells=_mall_cells,
    run=run_malleability_cell,
    data=part3._needs,
    work=_mall_work,
)
