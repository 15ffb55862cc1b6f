"""Tests of linattn.experiments: configs, the cached-feature run is the model itself, tidy rows and
their summary, the width trends measured at a tiny scale, and the command line."""
import json
import math

import numpy as np
import pytest
import torch

from linattn import experiments, runner
from linattn.distance import DISTANCES
from linattn.experiments import WidthSweepConfig, kernel_facts, prepare_task
from linattn.experiments.part2 import run_sweep_cell
from linattn.kernels import features64, ntk_inf
from linattn.models import mlp_attn, relu_net
from linattn.stats import trend_by
from linattn.store import canonical
from linattn.tables import pivot, summarize, to_text

TINY = dict(tasks=("mnist",), widths=(16, 64, 256, 1024), seeds=(0, 1, 2), n_train=64, n_test=40, n_ntk=32,
            epochs=10, ntk_every=5)


@pytest.fixture(scope="module")
def tiny():
    config = WidthSweepConfig.quick(**TINY)
    rs = runner.collect(experiments.get("width_sweep"), config, live=True)
    curves = {}
    for c in rs.table("curves"):
        curve = curves.setdefault((c["task"], c["model"], c["width"], c["seed"]), {"epoch": [], "drift": []})
        curve["epoch"].append(c["epoch"])
        curve["drift"].append(c["drift"])
    return config, rs.table("rows"), curves


def test_presets_differ_only_in_config():
    q, p = WidthSweepConfig.quick(), WidthSweepConfig.paper()
    assert p.widths == tuple(2**k for k in range(4, 13)) and p.epochs == 500 and p.protocol.lr == 1e-3
    assert (p.protocol.batch_size, p.protocol.weight_decay, p.protocol.optimizer) == (128, 1e-3, "adam")
    assert max(q.widths) <= 4096 and q.epochs < p.epochs and q.n_train < p.n_train
    assert q.loss_for("mnist") == "ce" and q.loss_for("mnist_3v8") == "mse"
    assert WidthSweepConfig.quick(seeds=(7,)).seeds == (7,)
    assert WidthSweepConfig.quick(lr=0.5).protocol.lr == 0.5  # protocol fields by their own names
    assert q.with_settings({"widths": "8,16", "lr": "0.1"}).widths == (8, 16)


def test_every_experiment_has_cells_with_storable_params():
    for name in experiments.names():
        exp = experiments.get(name)
        for scale in ("quick", "paper"):
            cells = exp.cells(exp.configure(scale))
            assert cells, (name, scale)
            keys = {runner.cell_key(name, exp.version, c) for c in cells}
            assert len(keys) == len(cells)
            for c in cells:
                canonical(c)  # JSON-able
                assert all(len(n) == 2 and n[1] in ("train", "test") for n in exp.data(c))
                assert exp.work(c) > 0


@pytest.mark.parametrize("bad, match", [
    (dict(tasks=("imagenet",)), "unknown task"),
    (dict(models=("transformer",)), "unknown model"),
    (dict(widths=(0,)), "width"),
    (dict(n_ntk=500, n_train=100), "n_ntk"),
    (dict(f0="random"), "f0"),
    (dict(distances=("sideways",)), "unknown distances"),
    (dict(widths=()), "at least one"),
    (dict(tasks="mnist"), "tuple of task names"),
    (dict(lr=-1.0), "lr"),
    (dict(penalty="l1"), "penalty must be 'l2'"),
    (dict(input_map="whiten"), "input_map must be"),
    (dict(dtype="float16"), "dtype must be 'float32' or 'float64', got 'float16'"),
])
def test_bad_configs_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WidthSweepConfig.quick(**bad)


def test_the_penalty_is_left_out_of_cell_keys_at_its_default():
    """Cells stored before ``penalty`` existed keep their keys; an anchored sweep gets its own."""
    exp = experiments.get("width_sweep")
    l2 = exp.cells(WidthSweepConfig.quick())
    assert all("penalty" not in c for c in l2)
    assert all("penalty" not in c["protocol"] for c in l2)
    anchored = exp.cells(WidthSweepConfig.quick(penalty="anchored"))
    assert all(c["penalty"] == "anchored" for c in anchored)
    assert WidthSweepConfig.quick().with_settings({"penalty": "anchored"}).penalty == "anchored"
    assert WidthSweepConfig.from_params(anchored[0], tasks=("mnist",)).penalty == "anchored"


#: The experiments that train networks (the others compute kernels and spectra in float64).
TRAINING = ["width_sweep", "malleability_tables", "adversarial_tables", "malleability_curves", "ground_truth",
            "qkv_malleability", "softmax_malleability"]


@pytest.mark.parametrize("name", TRAINING)
def test_the_quick_scale_trains_in_float64_and_the_paper_scale_keeps_its_float32_keys(name):
    """float64 at the quick scale (its cells reproduce across CPUs); the paper scale's float32 cells,
    stored before ``dtype`` existed, keep their keys because the default is left out of them."""
    exp = experiments.get(name)
    quick, paper = exp.configure("quick"), exp.configure("paper")
    assert quick.dtype == "float64" and paper.dtype == "float32"
    assert all(c["dtype"] == "float64" for c in exp.cells(quick))
    assert all("dtype" not in c for c in exp.cells(paper))
    assert experiments.base.torch_dtype(quick.dtype) is torch.float64


def test_penalty_curve_follows_the_coupled_penalty_and_the_anchored_one():
    config = WidthSweepConfig.quick(**{**TINY, "n_train": 32, "n_test": 10, "n_ntk": 8})
    prep = prepare_task(config, "mnist")
    l2 = experiments.part2.penalty_curve(config, prep, "relu", 256, 0)
    assert l2["epoch"] == [0, 5, 10] and l2["norm"][0] == 1.0
    assert l2["norm"][-1] < 0.95 and 0.5 < l2["share"][0] <= 1.0  # the penalty shrinks W and wins at most coordinates
    anchored = experiments.part2.penalty_curve(config.replace(penalty="anchored"), prep, "relu", 256, 0)
    assert anchored["share"][0] == 0.0 and anchored["norm"][-1] > l2["norm"][-1]


def test_the_input_map_is_left_out_of_cell_keys_at_its_default_and_centres_both_networks():
    """v1's unit rows of raw pixels keep their cells; a centred sweep gets its own, and its cached
    features are those of the networks Part III builds with the same map (same W, same outputs)."""
    from linattn.experiments.part3 import paper_model
    from linattn.data import task_data

    exp = experiments.get("width_sweep")
    assert all("input_map" not in c for c in exp.cells(WidthSweepConfig.quick()))
    centred = exp.cells(WidthSweepConfig.quick(input_map="center"))
    assert all(c["input_map"] == "center" for c in centred)
    assert WidthSweepConfig.from_params(centred[0], tasks=("mnist",)).input_map == "center"
    config = WidthSweepConfig.quick(**{**TINY, "n_train": 20, "n_test": 10, "n_ntk": 8}, input_map="center")
    prep, plain = prepare_task(config, "mnist"), prepare_task(config.replace(input_map="none"), "mnist")
    td = task_data("mnist", 20, 10, seed=0, pool_per_class=500)
    for kind in ("relu", "attn"):
        Xh, Xh_test = prep.features[kind]
        torch.testing.assert_close(Xh.norm(dim=1), torch.ones(20, dtype=torch.float64))
        assert (Xh - plain.features[kind][0]).norm(dim=1).min() > 0.3  # the map changes what the network sees
        net = paper_model(kind, td.X_train, td.y_train, 10, width=64, seed=3, dtype=torch.float64, input_map="center")
        proxy = relu_net(784, 64, 10, seed=3, dtype=torch.float64)
        torch.testing.assert_close(Xh_test, features64(net, td.X_test))
        torch.testing.assert_close(proxy(Xh_test), net(td.X_test.to(torch.float64)))
        torch.testing.assert_close(prep.kernels[kind][0], ntk_inf(net, td.X_train))
    # centring spreads MLP-Attn's nearly parallel features (the Part II chapter's observation)
    cos = lambda X: (X @ X.T)[~torch.eye(20, dtype=bool)].mean()
    assert cos(prep.features["attn"][0]) < cos(plain.features["attn"][0]) - 0.3


def test_cached_features_give_the_models_own_function_and_kernel():
    """run_one trains relu_net on cached features x^; for MLP-Attn that is mlp_attn itself."""
    config = WidthSweepConfig.quick(**{**TINY, "n_train": 20, "n_test": 10, "n_ntk": 8})
    prep = prepare_task(config, "mnist")
    Xh, Xh_test = prep.features["attn"]
    model = mlp_attn(prep.X_train, 64, 10, seed=3)
    proxy = relu_net(784, 64, 10, seed=3)
    assert torch.equal(model.W, proxy.W) and torch.equal(model.a, proxy.a)
    torch.testing.assert_close(proxy(Xh_test), model(prep.X_test), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(prep.kernels["attn"][1], ntk_inf(model, prep.X_test, prep.X_train))
    torch.testing.assert_close(Xh, features64(model, prep.X_train))
    torch.testing.assert_close(prep.kernels["relu"][0], ntk_inf(relu_net(784, 1), prep.X_train))


def test_rows_are_tidy_and_complete(tiny):
    config, rows, keep = tiny
    assert len(rows) == len(config.widths) * len(config.seeds) * 2 * len(DISTANCES)
    keys = {(r["task"], r["model"], r["width"], r["seed"], r["distance"]) for r in rows}
    assert len(keys) == len(rows)
    assert all(math.isfinite(r["value"]) and r["value"] >= 0 for r in rows)
    assert all(0 < r["weight_change"] < 2 for r in rows)  # ||W_T - W_0|| / ||W_0||
    assert len(keep) == len(config.widths) * len(config.seeds) * 2
    curve = keep[("mnist", "attn", 64, 0)]
    assert curve["epoch"] == [0, 5, 10] and curve["drift"][0] == 0.0
    drift = [r["value"] for r in rows if (r["model"], r["width"], r["seed"], r["distance"]) == ("attn", 64, 0, "kernel_drift_rel")]
    assert drift == [pytest.approx(curve["drift"][-1], rel=1e-12)]


def test_same_config_same_numbers(tiny):
    config, rows, _ = tiny
    cell = next(c for c in experiments.get("width_sweep").cells(config)
                if (c["model"], c["width"], c["seed"]) == ("attn", 64, 1))
    again = run_sweep_cell(cell)["rows"] + run_sweep_cell(dict(cell, model="relu"))["rows"]
    first = {(r["model"], r["distance"]): r["value"] for r in rows if (r["width"], r["seed"]) == (64, 1)}
    assert {(r["model"], r["distance"]): r["value"] for r in again} == first


def test_summary_matches_numpy(tiny):
    _, rows, _ = tiny
    summ = summarize(rows, by=("task", "model", "width", "distance"))
    s = next(x for x in summ if (x["model"], x["width"], x["distance"]) == ("relu", 256, "kernel_init_rel"))
    v = np.array([r["value"] for r in rows if (r["model"], r["width"], r["distance"]) == ("relu", 256, "kernel_init_rel")])
    assert s["n"] == 3 and s["n_nan"] == 0
    assert (s["mean"], s["std"], s["min"], s["max"]) == pytest.approx((v.mean(), v.std(), v.min(), v.max()), rel=1e-12)
    table = pivot([x for x in summ if x["distance"] == "kernel_init_rel"], ("task", "model"), "width",
                  extra=("std",))
    assert [(r["task"], r["model"]) for r in table] == [("mnist", "relu"), ("mnist", "attn")]
    assert table[0][256] == pytest.approx(v.mean()) and table[0]["256_std"] == pytest.approx(v.std())
    text = to_text(table, ["model", 16, 1024])
    assert "relu" in text and "attn" in text and len(text.splitlines()) == 4
    nan_rows = [dict(rows[0], value=float("nan")), dict(rows[0], value=2.0)]
    s2 = summarize(nan_rows, by=("task",))[0]
    assert (s2["n"], s2["n_nan"], s2["mean"]) == (1, 1, 2.0)


def test_width_trends_measured_at_tiny_scale(tiny, record_property):
    """Spearman rho of each reading against width, over seeds.

    Asserted: the kernel at initialisation approaches the limit as width grows (rho < 0 for
    2L-ReLU: the law of large numbers), and, as measured here, every kernel-space reading falls
    with width for both models. The function-space readings are recorded, not asserted: at this
    scale their trend is not significant (we do not assert the paper's trends for them)."""
    _, rows, _ = tiny
    trend = {(t["model"], t["distance"]): t for t in trend_by(rows, ("task", "model", "distance"))}
    assert trend[("relu", "kernel_init_rel")]["rho"] < -0.9 and trend[("relu", "kernel_init_rel")]["p"] < 1e-3
    for (model, dist), t in trend.items():
        record_property(f"rho_{model}_{dist}", round(t["rho"], 3))
        assert math.isfinite(t["rho"]) and t["n"] == 12
        if DISTANCES[dist].space != "function":
            assert t["rho"] < -0.7, (model, dist, t)


def test_attention_kernel_solve_is_far_from_the_limit_at_every_width(tiny):
    """Measured: ||Theta_m(0) - Theta_inf||_2 / lambda_min(Theta_inf) is at least 10x larger for
    MLP-Attn than for 2L-ReLU at each width (lambda_min of the attention NTK is tiny)."""
    _, rows, _ = tiny
    mean = {(s["model"], s["width"]): s["mean"] for s in summarize(rows, by=("model", "width", "distance"))
            if s["distance"] == "kernel_init_op_lmin"}
    for w in TINY["widths"]:
        assert mean[("attn", w)] > 10 * mean[("relu", w)]


def test_kernel_facts_against_direct_computations():
    from linattn.distance import expected_init_gap
    from linattn.kernels import ntk_relu

    config = WidthSweepConfig.quick(**{**TINY, "n_train": 20, "n_test": 10, "n_ntk": 12})
    prep = prepare_task(config, "mnist")
    facts = kernel_facts(prep, 12)
    G = prep.X_train[:12] @ prep.X_train[:12].T
    ev = np.linalg.eigvalsh(G.numpy())
    assert facts["kappa_d"] == pytest.approx(ev[-1] / ev[0], rel=1e-6)
    for kind in ("relu", "attn"):
        Xh = prep.features[kind][0][:12]
        lam = np.linalg.eigvalsh(ntk_relu(Xh).numpy())
        f = facts["models"][kind]
        assert f["lambda_min"] == pytest.approx(lam[0], rel=1e-8) and f["kappa"] == pytest.approx(lam[-1] / lam[0], rel=1e-8)
        assert f["log10_m_suff"] == pytest.approx(2 * math.log10(expected_init_gap(Xh, 1) / lam[0]), rel=1e-10)
        cos = np.clip(Xh.numpy() @ Xh.numpy().T, -1, 1)
        assert f["max_angle"] == pytest.approx(np.arccos(cos).max(), abs=1e-6)
    # attention features are closer together than raw images
    assert facts["models"]["attn"]["max_angle"] < facts["models"]["relu"]["max_angle"]


def test_lazy_control_sees_the_kernel_regime_of_the_relu_net(record_property):
    """Full-batch GD on the MSE against the NTK flow from the network's own f_0: 2L-ReLU's gap shrinks
    with width (the kernel regime), measured at a tiny scale; MLP-Attn's gap is recorded, not asserted."""
    exp = experiments.get("lazy_control")
    cfg = exp.configure("quick", tasks=("mnist_3v8",), widths=(64, 4096), seeds=(0,), n_train=64, n_test=40,
                        steps=100)
    rows = {(r["model"], r["width"]): r for r in runner.collect(exp, cfg, live=True).table()}
    narrow, wide = rows[("relu", 64)], rows[("relu", 4096)]
    assert wide["gap_init_train"] < narrow["gap_init_train"] / 4 and wide["gap_init_train"] < 0.02
    assert wide["weight_change"] < narrow["weight_change"] / 4   # lazy: W moves like m^{-1/2}
    for (model, width), r in rows.items():
        assert r["kernel_time"] == pytest.approx(2 * 1.0 * 100 / 64) and 0 <= r["gap_inf_test"]
        record_property(f"gap_init_train_{model}_{width}", round(r["gap_init_train"], 4))
    with pytest.raises(ValueError, match="binary tasks"):
        exp.configure("quick", tasks=("mnist",))
