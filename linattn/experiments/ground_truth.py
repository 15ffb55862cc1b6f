"""Part III: does the NTK influence tell what retraining does? Exact leave-one-out retraining as ground truth.

One cell = one (model, width), all seeds inside (the seed-averaged reading and the retraining
ceiling compare seeds). For each seed:

1. the network at initialisation (:func:`linattn.experiments.part3.paper_model`, untrained) is
   retrained without each training point of the subset (:func:`linattn.retrain.loo_retrain`: same
   initialisation, same minibatch order, the removed point dropped from its batch), for MLP-Attn
   once with the attention rebuilt from the remaining points ("recompute", the model defined by its
   training set, as :mod:`linattn.malleability` treats it) and once with C fixed (the counterfactual
   the closed form computes): the true effects I_true (k, t);
2. the NTK influences of the same points (:func:`linattn.malleability.model_influence`, ridge
   ``ridge``, one-hot targets, true-class readout) from three kernels: the empirical NTK at
   initialisation (the same W_0), the empirical NTK of the trained full run, and Theta_inf of the
   model's feature map (:func:`linattn.kernels.ntk_inf`, the same for every seed);
3. their agreement with I_true (:func:`linattn.retrain.agreement`: Pearson and Spearman over all
   (i, t) pairs, interval from a bootstrap over training points, and over the per-point scores
   s_i = mean_t I(i, t), Fisher interval; the sign agreement on the top tau by |s_i|);
4. the ceiling: the agreement between the true effects of two seeds (retraining's own noise), and,
   for MLP-Attn, between the truths with C recomputed and C fixed;
5. (``malleability``) the transformed PGD intervention of the malleability protocol on the top tau
   points by the trained NTK's |s_i|: the NTK scores before and after (same W, C recomputed), and
   the true scores before and after (the network retrained from W_0 on the intervened set): do the
   true signs flip where the NTK's flip?
6. the wall time of the retraining against the closed form (kernel + influences) in the same run.

The second reading averages over seeds: the mean of the seeds' true effects against the mean of
their NTK influences (Theta_inf: itself).

Tables of a cell: ``nets`` (train and test accuracy of every network), ``agreement`` (one row per
seed or "mean", truth and predictor), ``points`` (per-point scores, for figures), ``malleability``
(flip counts), ``cost`` (seconds; only the key "seconds" is a timing).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_int, check_option, check_range
from ..train import TrainProtocol
from .base import Config, Experiment, dtype_field, torch_dtype

__all__ = ["GroundTruthConfig", "loo_points", "run_ground_truth_cell", "GROUND_TRUTH", "PREDICTORS",
           "agreement_summary", "flip_summary"]

#: the influence predictors compared with retraining (kernel of the closed form), and the ceilings
PREDICTORS = {"ntk_init": "empirical NTK at initialisation", "ntk_trained": "empirical NTK after training",
              "ntk_inf": "infinite-width NTK", "retrain_other_seed": "retraining, another seed (ceiling)",
              "retrain_C_fixed": "retraining with C fixed"}


@dataclass(frozen=True)
class GroundTruthConfig(Config):
    """Exact leave-one-out retraining against NTK influence. [ours] throughout: the paper retrains nothing.

    task, models, widths, seeds: the cells are (model, width); every seed (initialisation and
        minibatch order) is run inside a cell.
    n_train, n_test, pool_per_class, data_seed: the data, as :class:`linattn.experiments.part3.TableConfig`.
    protocol: the training protocol (v1's Adam, batch 128, L2 1e-3; the lr and epochs of the scale).
    n_loo, loo_seed: retrain without each of ``n_loo`` training points drawn at random (seeded;
        None: every point).
    attention_modes: the truths computed for MLP-Attn ("recompute": C rebuilt without the point;
        "fixed": C of the full set); the 2L-ReLU has one.
    divisor: the removed point's batch normaliser (:func:`linattn.retrain.loo_retrain`).
    ridge, tau: the closed form's ridge and the top fraction for the sign agreement (and the
        malleability check) [as Tables 2-3: 1e-3, 0.1]; eps: the PGD radius of the check.
    n_boot: bootstrap resamples of the pair correlations' intervals.
    malleability: run the malleability check (item 5 of the module docstring).
    dtype: the training precision, "float32" [the paper scale] or "float64" (the quick
        scale: see :func:`linattn.experiments.base.dtype_field`). Left out of a cell's key at its default.

    Quick (the book's build): MNIST, n = 100, t = 60, widths 16, 64, 256, 1024, seeds 0 and 1,
    every point retrained, 40 epochs of Adam at lr 1e-2 (batch 128 > n: each epoch is one
    full-batch step). Paper: n = 5,000, t = 1,000 from the official splits, widths 16 to 4096, 3
    seeds, 500 epochs at lr 1e-3, 100 points retrained: 101 runs of the paper's training per model,
    width and seed, about 1,500 CPU hours by the dry-run estimate (from the quick cells' measured
    rate): a GPU job, not run here.
    """

    task: str = "mnist"
    models: tuple[str, ...] = ("relu", "attn")
    widths: tuple[int, ...] = (16, 64, 256, 1024)
    seeds: tuple[int, ...] = (0, 1)
    n_train: int = 100
    n_test: int = 60
    pool_per_class: int | None = 500
    data_seed: int = 0
    protocol: TrainProtocol = TrainProtocol(epochs=40, lr=1e-2)
    n_loo: int | None = None
    loo_seed: int = 0
    attention_modes: tuple[str, ...] = ("recompute", "fixed")
    divisor: str = "batch"
    ridge: float = 1e-3
    tau: float = 0.1
    eps: float = 0.3
    n_boot: int = 200
    malleability: bool = True
    dtype: str = dtype_field()

    SCALES = {"quick": dict(dtype="float64"),
              "paper": dict(n_train=5000, n_test=1000, pool_per_class=None, widths=(16, 64, 256, 1024, 4096),
                            seeds=(0, 1, 2), epochs=500, lr=1e-3, n_loo=100)}

    def __post_init__(self) -> None:
        from ..data import TASKS as KNOWN
        from ..retrain import ATTENTION_MODES, DIVISORS

        check_option(self.task, "task", tuple(KNOWN))
        for m in self.models:
            check_option(m, "model", ("relu", "attn"))
        for w in self.widths:
            check_int(w, "width")
        for s in self.seeds:
            check_int(s, "seed", minimum=0)
        check_int(self.n_train, "n_train", minimum=4)
        check_int(self.n_test, "n_test")
        check_int(self.data_seed, "data_seed", minimum=0)
        check_int(self.loo_seed, "loo_seed", minimum=0)
        if self.n_loo is not None:
            check_int(self.n_loo, "n_loo", minimum=4, maximum=self.n_train)
        if not self.attention_modes:
            raise ValueError("attention_modes needs at least one of 'recompute', 'fixed'")
        for a in self.attention_modes:
            check_option(a, "attention mode", ATTENTION_MODES)
        check_option(self.divisor, "divisor", DIVISORS)
        check_range(self.ridge, "ridge", 0.0, float("inf"), lo_open=True)
        check_range(self.tau, "tau", 0.0, 1.0, lo_open=True)
        check_range(self.eps, "eps", 0.0, 1.0)
        check_int(self.n_boot, "n_boot", minimum=10)
        torch_dtype(self.dtype)
        if round(self.tau * (self.n_loo or self.n_train)) < 1:
            raise ValueError(f"tau = {self.tau} selects no point of the {self.n_loo or self.n_train} retrained; raise tau")

    @property
    def epochs(self) -> int:
        return self.protocol.epochs


def loo_points(n_train: int, n_loo: int | None, loo_seed: int) -> torch.Tensor:
    """The training indices a cell retrains without: all n, or ``n_loo`` drawn without replacement (sorted)."""
    if n_loo is None or n_loo >= n_train:
        return torch.arange(n_train)
    rng = np.random.default_rng(loo_seed)
    return torch.as_tensor(np.sort(rng.choice(n_train, n_loo, replace=False)), dtype=torch.long)


# --------------------------------------------------------------------------- one cell


_AXES = ("models", "widths")


def _cells(config: GroundTruthConfig) -> list[dict]:
    common = config.common_params(_AXES)
    return [dict(common, model=m, width=int(w)) for w in config.widths for m in config.models]


def _ident(kind: str, width: int) -> dict:
    return {"model": kind, "width": width}


def _malleability_rows(kind, width, seed, cfg, td, m0, trained, before, truth_before, pts, res_protocol):
    """Item 5: NTK flips against true flips on the top-tau points after the transformed PGD intervention."""
    from ..malleability import malleability
    from ..retrain import loo_retrain
    from .part3 import accuracy, paper_model

    r = malleability(trained, td.X_train, td.y_train, td.X_test, td.y_test, attack="pgd", eps=cfg.eps, tau=cfg.tau,
                     attention="recompute", ridge=cfg.ridge, seed=seed, before=before)
    sel = r.selected
    ntk_b, ntk_a = before.scores[sel], r.scores_after[sel]
    pos = {int(i): j for j, i in enumerate(pts.tolist())}
    if all(int(i) in pos for i in sel):
        true_b = truth_before.mean(dim=1)[[pos[int(i)] for i in sel]]
    else:
        true_b = loo_retrain(m0, td.X_train, td.y_train, td.X_test, td.y_test, res_protocol, points=sel,
                             seed=seed, divisor=cfg.divisor).effects.mean(dim=1)
    m0_after = paper_model(kind, r.X_after, td.y_train, td.n_classes, width=width, seed=seed,
                           dtype=cfg.dtype)  # same W_0, C of X'
    after = loo_retrain(m0_after, r.X_after, td.y_train, td.X_test, td.y_test, res_protocol, points=sel, seed=seed,
                        divisor=cfg.divisor)
    true_a = after.effects.mean(dim=1)
    ntk_flip = torch.sign(ntk_b) != torch.sign(ntk_a)
    true_flip = torch.sign(true_b) != torch.sign(true_a)
    return [{**_ident(kind, width), "seed": seed, "n_selected": int(sel.numel()),
             "ntk_flipped": int(ntk_flip.sum()), "true_flipped": int(true_flip.sum()),
             "both_flipped": int((ntk_flip & true_flip).sum()), "flips_agree": int((ntk_flip == true_flip).sum()),
             "ntk_sign_true_before": int((torch.sign(ntk_b) == torch.sign(true_b)).sum()),
             "ntk_sign_true_after": int((torch.sign(ntk_a) == torch.sign(true_a)).sum()),
             "train_acc_after": after.train_acc, "test_acc_after": after.test_acc,
             "train_acc": accuracy(trained, td.X_train, td.y_train)}]


def run_ground_truth_cell(params: dict, device: str = "cpu") -> dict[str, list[dict]]:
    """Retrain one (model, width) without each point for every seed, and compare with NTK influences."""
    from ..kernels import ntk_inf
    from ..malleability import model_influence
    from ..ntk import empirical_ntk
    from ..retrain import agreement, loo_retrain
    from .part3 import _task_data, paper_model

    kind, width = params["model"], params["width"]
    cfg = GroundTruthConfig.from_params(params, models=(kind,), widths=(width,))
    td = _task_data(cfg.task, cfg.n_train, cfg.n_test, cfg.data_seed, cfg.pool_per_class)
    pts = loo_points(cfg.n_train, cfg.n_loo, cfg.loo_seed)
    modes = list(cfg.attention_modes) if kind == "attn" else ["n/a"]
    ident = _ident(kind, width)
    agree = lambda a, b: agreement(a, b, tau=cfg.tau, n_boot=cfg.n_boot, seed=0)
    inf_kw = dict(ridge=cfg.ridge)

    t0 = time.perf_counter()
    theta_inf = model_influence(paper_model(kind, td.X_train, td.y_train, td.n_classes, width=width, seed=0,
                                            dtype=cfg.dtype),
                                td.X_train, td.y_train, td.X_test, td.y_test, kernel_fn=ntk_inf, **inf_kw)
    inf_seconds = time.perf_counter() - t0
    truth: dict[tuple[int, str], torch.Tensor] = {}
    pred: dict[tuple[int, str], torch.Tensor] = {}
    nets, cost, points, mall_rows = [], [], [], []
    for seed in cfg.seeds:
        m0 = paper_model(kind, td.X_train, td.y_train, td.n_classes, width=width, seed=seed, dtype=cfg.dtype)
        for mode in modes:
            res = loo_retrain(m0, td.X_train, td.y_train, td.X_test, td.y_test, cfg.protocol, points=pts, seed=seed,
                              attention="recompute" if mode == "n/a" else mode, divisor=cfg.divisor)
            truth[(seed, mode)] = res.effects
            nets.append({**ident, "seed": seed, "truth": mode, "train_acc": res.train_acc, "test_acc": res.test_acc,
                         "full_spread": res.full_spread, "mean_abs_effect": float(res.effects.abs().mean())})
            cost.append({**ident, "seed": seed, "what": f"retrain ({mode})", "runs": int(pts.numel()) + 1,
                         "seconds": res.seconds})
        trained = res.model
        t0 = time.perf_counter()
        before = model_influence(trained, td.X_train, td.y_train, td.X_test, td.y_test, kernel_fn=empirical_ntk, **inf_kw)
        cost.append({**ident, "seed": seed, "what": "closed form (trained NTK)", "runs": 0,
                     "seconds": time.perf_counter() - t0})
        pred[(seed, "ntk_trained")] = before.I[pts]
        pred[(seed, "ntk_init")] = model_influence(m0, td.X_train, td.y_train, td.X_test, td.y_test,
                                                   kernel_fn=empirical_ntk, **inf_kw).I[pts]
        pred[(seed, "ntk_inf")] = theta_inf.I[pts]
        s = {name: pred[(seed, name)].mean(dim=1) for name in ("ntk_init", "ntk_trained", "ntk_inf")}
        st = {mode: truth[(seed, mode)].mean(dim=1) for mode in modes}
        points += [{**ident, "seed": seed, "point": int(i), **{f"s_{k}": float(v[j]) for k, v in s.items()},
                    **{f"s_true_{m.replace('/', '')}": float(v[j]) for m, v in st.items()}}
                   for j, i in enumerate(pts.tolist())]
        if cfg.malleability:
            mall_rows += _malleability_rows(kind, width, seed, cfg, td, m0, trained, before,
                                            truth[(seed, modes[0])], pts, cfg.protocol)
    cost.append({**ident, "seed": -1, "what": "closed form (Theta_inf)", "runs": 0, "seconds": inf_seconds})

    rows = []
    for mode in modes:
        for seed in cfg.seeds:
            for name in ("ntk_init", "ntk_trained", "ntk_inf"):
                rows.append({**ident, "reading": "seed", "seed": seed, "truth": mode, "predictor": name,
                             **agree(pred[(seed, name)], truth[(seed, mode)])})
        for a, b in zip(cfg.seeds, cfg.seeds[1:]):  # the ceiling: another seed's retraining
            rows.append({**ident, "reading": "seed", "seed": a, "truth": mode, "predictor": "retrain_other_seed",
                         "other_seed": b, **agree(truth[(b, mode)], truth[(a, mode)])})
        mean_truth = torch.stack([truth[(s, mode)] for s in cfg.seeds]).mean(dim=0)
        for name in ("ntk_init", "ntk_trained", "ntk_inf"):
            mean_pred = torch.stack([pred[(s, name)] for s in cfg.seeds]).mean(dim=0)
            rows.append({**ident, "reading": "mean", "seed": -1, "truth": mode, "predictor": name,
                         **agree(mean_pred, mean_truth)})
    if {"recompute", "fixed"} <= set(modes):
        for seed in cfg.seeds:
            rows.append({**ident, "reading": "seed", "seed": seed, "truth": "recompute", "predictor": "retrain_C_fixed",
                         **agree(truth[(seed, "fixed")], truth[(seed, "recompute")])})
    return {"agreement": rows, "nets": nets, "points": points, "malleability": mall_rows, "cost": cost}


def _work(params: dict) -> float:
    """Relative cost: (points + 1) runs x steps x batch x width x d, per seed and attention mode."""
    p = TrainProtocol(**params["protocol"])
    n = params["n_train"]
    runs = (params["n_loo"] or n) + 1
    modes = len(params["attention_modes"]) if params["model"] == "attn" else 1
    return 1e-9 * len(params["seeds"]) * modes * runs * p.steps(n) * min(p.batch_size or n, n) * params["width"] * 784


def _needs(params: dict) -> list[tuple[str, str]]:
    from .part3 import _needs as part3_needs

    return part3_needs(params)


GROUND_TRUTH = Experiment(
    name="ground_truth",
    title="NTK influence against exact leave-one-out retraining",
    chapter="book/part3/ground_truth.ipynb",
    config=GroundTruthConfig,
    cells=_cells,
    run=run_ground_truth_cell,
    data=_needs,
    work=_work,
)


# --------------------------------------------------------------------------- summaries


def agreement_summary(rows: list[dict], *, reading: str = "seed", stat: str = "scores_spearman") -> dict[tuple, dict]:
    """{(model, width, truth, predictor): dict(r, lo, hi, seeds, sign_k, sign_n, sign_rate, sign_lo, sign_hi)}
    of one statistic (``stat``: a prefix of :func:`linattn.retrain.agreement`'s keys, "scores_spearman",
    "pairs_pearson", ...) over one reading.

    For reading "seed" there is one row a seed: r and the two ends of its interval are averaged over
    the seeds on Fisher's z scale (atanh), the typical seed's correlation and interval (the seeds
    share their training and test points, so no narrower pooled interval is claimed); the sign
    agreement counts are pooled over seeds (Wilson interval). For "mean", one row a key.
    """
    from ..stats import wilson_interval

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["reading"] == reading:
            groups.setdefault((r["model"], r["width"], r["truth"], r["predictor"]), []).append(r)
    zmean = lambda vals: float(np.tanh(np.mean(np.arctanh(np.clip(vals, -1 + 1e-12, 1 - 1e-12)))))
    out = {}
    for key, g in groups.items():
        k, n = sum(r["sign_k"] for r in g), sum(r["sign_n"] for r in g)
        lo_s, hi_s = wilson_interval(k, n)
        out[key] = {**{e: zmean([r[f"{stat}_{e}"] for r in g]) for e in ("r", "lo", "hi")}, "seeds": len(g),
                    "sign_k": k, "sign_n": n, "sign_rate": k / n, "sign_lo": lo_s, "sign_hi": hi_s}
    return out


def flip_summary(rows: list[dict]) -> dict[tuple, dict]:
    """{(model, width): pooled counts over seeds} of the malleability check, with Wilson intervals:
    ntk (NTK flip rate), true (true flip rate), agree (flip indicators equal)."""
    from ..stats import pooled_rate

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["width"]), []).append(r)
    out = {}
    for key, g in groups.items():
        ns = [r["n_selected"] for r in g]
        out[key] = {"ntk": pooled_rate([r["ntk_flipped"] for r in g], ns),
                    "true": pooled_rate([r["true_flipped"] for r in g], ns),
                    "agree": pooled_rate([r["flips_agree"] for r in g], ns),
                    "train_acc_after": float(np.mean([r["train_acc_after"] for r in g])),
                    "test_acc_after": float(np.mean([r["test_acc_after"] for r in g]))}
    return out
