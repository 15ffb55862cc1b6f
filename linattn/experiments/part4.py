"""Part IV: MLP-Attn with trainable Q, K, V (``book/part4/trainable_qkv.ipynb``).

Experiments (registered in :mod:`linattn.experiments`):

- ``qkv_malleability``: the malleability protocol of Tables 2-3 (:func:`linattn.experiments.part3.table_rows`:
  the "transformed" intervention, PGD and the noise control, C recomputed and held fixed) for 2L-ReLU,
  MLP-Attn and MLP-Attn with trainable Q, K, V (:func:`linattn.qkv.qkv_net`), the influences from each
  network's empirical NTK over all its trained parameters (for the QKV model
  :func:`linattn.qkv.qkv_ntk`, W_Q, W_K, W_V included). One cell = one (task, model, seed).
- ``qkv_gram``: the condition number of the QKV-induced Gram F F^T against kappa_d(G)^3 over n, the head
  dimension and seeds (:func:`linattn.qkv.qkv_gram_spectrum`). One cell = one (n, d_head).

Rows carry the flip rate with its count, Spearman's rho, the top-tau overlap and the network's train and
test accuracy, as in Part III (:func:`linattn.experiments.part3.flip_summary` summarises them).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._validation import as_tensor, check_int, check_option, check_range
from ..figures import model_label
from ..train import TrainProtocol
from .base import Config, Experiment, torch_dtype
from .part3 import TableConfig, _needs, require_defaults, _task_data, _work, table_rows

__all__ = ["QKVTableConfig", "QKVGramConfig", "qkv_model", "MODELS", "MODEL_LABELS", "QKV_MALLEABILITY", "QKV_GRAM"]

MODELS = ("relu", "attn", "qkv")
MODEL_LABELS = {model: model_label(model) for model in MODELS}


@dataclass(frozen=True)
class QKVTableConfig(TableConfig):
    """Part III's malleability protocol with a third model, MLP-Attn with trainable Q, K, V.

    Every field and scale of :class:`linattn.experiments.part3.TableConfig` (so the 2L-ReLU and
    MLP-Attn rows are Part III's at the same scale), on MNIST with PGD and the noise control by
    default, plus: d_head, d_value: the QKV model's head and value dimensions (0 = d) [ours: the
    paper gives none; 64 is a transformer's usual head size, d_model / heads = 768 / 12, and keeps
    a quick cell to seconds]. qkv_lr: the QKV model's learning rate (the rest of ``protocol`` is
    shared) [ours: at the quick scale's 1e-2 Adam moves the N(0, 1/d) entries of W_Q, W_K, W_V by a
    third of their size a step and the network stays at chance; at v1's 1e-3 it learns].
    The open choices ``input_map``, ``init_scale`` and ``kernel`` stay at Part III's defaults here
    (the QKV model has no input map, and its influences use its own empirical NTK).
    Quick: MNIST, n = 200, t = 60, width 128, 40 epochs at lr 1e-2 (QKV: 1e-3), 3 seeds, PGD and noise.
    Paper: n = 5,000, t = 1,000 from the official splits, width 1024, 500 epochs at lr 1e-3 for all three
    (registered, not run here).
    """

    tasks: tuple[str, ...] = ("mnist",)
    models: tuple[str, ...] = MODELS
    attacks: tuple[str, ...] = ("pgd", "noise")
    d_head: int = 64
    d_value: int = 64
    qkv_lr: float = 1e-3

    MODEL_CHOICES: ClassVar[tuple[str, ...]] = MODELS

    def __post_init__(self) -> None:
        super().__post_init__()
        require_defaults(self, "qkv_malleability", ("input_map", "init_scale", "kernel"))
        check_int(self.d_head, "d_head (0 = d)", minimum=0)
        check_int(self.d_value, "d_value (0 = d)", minimum=0)
        check_range(self.qkv_lr, "qkv_lr", 0.0, float("inf"), lo_open=True)



def qkv_model(X_train, y_train, n_classes: int, *, width: int, seed: int, protocol: TrainProtocol | None = None,
              d_head: int | None = None, d_value: int | None = None, dtype: torch.dtype | str = torch.float32):
    """MLP-Attn with trainable Q, K, V (keys = unit rows of X_train), trained as
    :func:`linattn.experiments.part3.paper_model` trains the other two (one output with MSE on +-1
    targets for 2 classes, else cross-entropy on n_classes logits); ``protocol`` None or 0 epochs: at init.
    ``dtype``: a torch dtype or a config's name for one ("float32", "float64")."""
    from ..data import regression_targets
    from ..models import attention_keys
    from ..qkv import qkv_net
    from ..train import train

    dtype = torch_dtype(dtype)
    X_train = as_tensor(X_train, "X_train", ndim=2, min_rows=2)
    y_train = torch.as_tensor(np.asarray(y_train)).long()
    C = 1 if check_int(n_classes, "n_classes", minimum=2) == 2 else n_classes
    model = qkv_net(attention_keys(X_train), width, C, d_head=d_head, d_value=d_value, seed=seed, dtype=dtype)
    if protocol is not None and protocol.epochs:
        train(model, X_train, y_train if C > 1 else regression_targets(y_train, 1), protocol, seed=seed,
              progress=False)
    return model


def _cells(config: QKVTableConfig) -> list[dict]:
    common = config.common_params(("tasks", "models", "seeds"))
    return [dict(common, task=t, model=m, seed=int(s)) for t in config.tasks for m in config.models
            for s in config.seeds]


def run_qkv_table_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Train one (task, model, seed) and measure every attack with the C-fixed controls (Part III's rows)."""
    from ..qkv import qkv_ntk
    from .part3 import paper_model

    task, kind, seed = params["task"], params["model"], params["seed"]
    cfg = QKVTableConfig.from_params(params, tasks=(task,), models=(kind,), seeds=(seed,))
    td = _task_data(task, cfg.n_train, cfg.n_test, cfg.data_seed, cfg.pool_per_class)
    if kind == "qkv":
        model = qkv_model(td.X_train, td.y_train, td.n_classes, width=cfg.width, seed=seed,
                          protocol=dataclasses.replace(cfg.protocol, lr=cfg.qkv_lr),
                          d_head=cfg.d_head or None, d_value=cfg.d_value or None, dtype=torch_dtype(cfg.dtype))
        rows = table_rows(td, model, cfg, kind="attn", seed=seed, kernel_fn=qkv_ntk)
    else:
        model = paper_model(kind, td.X_train, td.y_train, td.n_classes, width=cfg.width, seed=seed,
                            protocol=cfg.protocol, dtype=torch_dtype(cfg.dtype))
        rows = table_rows(td, model, cfg, kind=kind, seed=seed)
    return {"rows": rows}


def _qkv_work(params: dict) -> float:
    base = _work(params)
    return base * (3.0 if params["model"] == "qkv" else 1.0)  # Q, K, V: three d x d products a step more


QKV_MALLEABILITY = Experiment(
    name="qkv_malleability",
    title="Influence flip rates with trainable Q, K, V beside MLP-Attn and 2L-ReLU (Part IV)",
    chapter="book/part4/trainable_qkv.ipynb",
    config=QKVTableConfig,
    cells=_cells,
    run=run_qkv_table_cell,
    data=_needs,
    work=_qkv_work,
)


@dataclass(frozen=True)
class QKVGramConfig(Config):
    """kappa of the QKV-induced Gram F F^T against kappa_d(G)^3.

    dataset: "mnist" or "cifar10", unit-normalised rows of ``n`` class-balanced images from the quick
    pool (:func:`linattn.data.sample`, ``data_seed``); d_heads: head dimensions (0 = d; the value
    dimension is the same, d_v = d_h); seeds: draws of W_Q, W_K, W_V. Quick: MNIST, n 50, 100, 200,
    d_h 32, 128, d, 5 seeds. Paper: n up to 400, 20 seeds, d_h 16 to d (larger class-balanced samples
    of the quick pool are numerically rank-deficient or nearly so: rank 545 at n = 550, and at n = 500 the
    rank test of one of the four cells already finds 499, where kappa_r(G) is not defined).
    """

    dataset: str = "mnist"
    ns: tuple[int, ...] = (50, 100, 200)
    d_heads: tuple[int, ...] = (32, 128, 0)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    data_seed: int = 0

    SCALES = {"quick": {}, "paper": dict(ns=(50, 100, 200, 400), d_heads=(16, 64, 256, 0),
                                         seeds=tuple(range(20)))}

    def __post_init__(self) -> None:
        check_option(self.dataset, "dataset", ("mnist", "cifar10"))
        for n in self.ns:
            check_int(n, "n", minimum=2)
        for dh in self.d_heads:
            check_int(dh, "d_head (0 = d)", minimum=0)
        for s in self.seeds:
            check_int(s, "seed", minimum=0)
        check_int(self.data_seed, "data_seed", minimum=0)


def run_qkv_gram_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """kappa_F, kappa_d(G), lambda_1 / lambda_r of G and the bound factors, for every seed of one (n, d_h)."""
    from ..data import sample
    from ..qkv import qkv_gram_spectrum

    X, _ = sample(params["dataset"], params["n"], seed=params["data_seed"])
    dh = params["d_head"] or None
    rows = []
    for s in params["seeds"]:
        sp_ = qkv_gram_spectrum(X, s, d_head=dh, d_value=dh)
        rows.append({**sp_._asdict(), "bound": sp_.bound, "dataset": params["dataset"]})
    return {"rows": rows}


QKV_GRAM = Experiment(
    name="qkv_gram",
    title="Condition number of the QKV-induced Gram against kappa_d(G)^3 (Part IV)",
    chapter="book/part4/trainable_qkv.ipynb",
    config=QKVGramConfig,
    cells=lambda c: [{"dataset": c.dataset, "n": int(n), "d_head": int(dh), "seeds": list(c.seeds),
                      "data_seed": c.data_seed} for n in c.ns for dh in c.d_heads],
    run=run_qkv_gram_cell,
    data=lambda p: [] if p["dataset"] == "mnist" else [(p["dataset"], "train")],
    work=lambda p: 1e-9 * len(p["seeds"]) * p["n"] * 3072 * 3072,
)
