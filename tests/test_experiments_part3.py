"""The Part III experiments (Tables 2-4): the models as v1 trains them, table rows with counts and
accuracies, one cell equal to the protocol run by hand, configs refused when they make no sense."""
from types import SimpleNamespace

import pytest
import torch

from linattn import experiments, runner
from linattn.experiments.part3 import AdversarialConfig, TableConfig, accuracy, paper_model, table_rows
from linattn.malleability import malleability
from linattn.models import attention_keys, relu_net
from linattn.train import TrainProtocol

F64 = torch.float64
N, T, D, C = 40, 10, 12, 3


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(C, D, generator=g, dtype=F64)
    y = torch.arange(N + T) % C
    X = (centres[y] + 0.15 * torch.randn(N + T, D, generator=g, dtype=F64)).clamp(0.02, 0.98)
    return SimpleNamespace(X_train=X[:N], y_train=y[:N], X_test=X[N:], y_test=y[N:], n_classes=C, name="toy")


def test_paper_model_trains_as_asked(toy):
    X, y = toy.X_train, toy.y_train
    attn0 = paper_model("attn", X, y, C, width=16, seed=0)
    torch.testing.assert_close(attn0.feature_map.C, attention_keys(X).T @ attention_keys(X))  # unit keys
    assert paper_model("relu", X, y % 2, 2, width=16, seed=0).n_outputs == 1  # binary: one output (MSE)
    trained = paper_model("relu", X, y, C, width=16, seed=0, protocol=TrainProtocol(epochs=2, lr=1e-2))
    assert not torch.equal(trained.W, relu_net(D, 16, C, seed=0).W)
    adv = paper_model("attn", X, y, C, width=16, seed=0, protocol=TrainProtocol(epochs=1),
                      adversarial={"eps": 0.1, "steps": 1, "step_size": 0.1})
    assert not torch.equal(adv.W, attn0.W)
    with pytest.raises(ValueError, match="kind"):
        paper_model("cnn", X, y, C, width=4, seed=0)


def test_table_rows_count_flips_and_report_accuracy(toy):
    cfg = TableConfig.quick(width=16, epochs=2, tau=0.25, attacks=("fgsm", "noise"), fixed_attacks=("noise",))
    model = paper_model("attn", toy.X_train, toy.y_train, C, width=16, seed=1, protocol=cfg.protocol)
    rows = table_rows(toy, model, cfg, kind="attn", seed=1)
    assert [(r["attack"], r["attention"]) for r in rows] == [("fgsm", "recompute"), ("noise", "recompute"),
                                                              ("noise", "fixed")]
    for r in rows:
        assert r["n_tracked"] == r["n_selected"] == 10
        assert r["n_flipped"] == round(r["flip_rate"] * 10) and 0 <= r["test_acc"] <= 1
        assert r["train_acc"] == accuracy(model, toy.X_train, toy.y_train)
    direct = malleability(model, toy.X_train, toy.y_train, toy.X_test, toy.y_test, attack="noise", eps=cfg.eps,
                          tau=cfg.tau, attention="fixed", ridge=cfg.ridge, seed=1)
    assert rows[2]["flip_rate"] == direct.flip_rate and rows[2]["spearman"] == direct.spearman
    relu = paper_model("relu", toy.X_train, toy.y_train, C, width=16, seed=1, protocol=cfg.protocol)
    assert len(table_rows(toy, relu, cfg, kind="relu", seed=1)) == 2  # no C to hold fixed


def test_a_cell_is_the_protocol_run_by_hand():
    exp = experiments.get("malleability_tables")
    cfg = exp.configure("quick", n_train=40, n_test=20, width=16, epochs=2, seeds=(1,), tasks=("mnist",),
                        models=("attn",), attacks=("pgd",), fixed_attacks=())
    (cell,) = exp.cells(cfg)
    rows = runner.execute_cell(exp.name, cell)["tables"]["rows"]
    from linattn.data import task_data

    td = task_data("mnist", 40, 20, seed=0)
    model = paper_model("attn", td.X_train, td.y_train, 10, width=16, seed=1, protocol=cfg.protocol)
    by_hand = malleability(model, td.X_train, td.y_train, td.X_test, td.y_test, attack="pgd", eps=0.3, tau=0.1,
                           ridge=1e-3, seed=1)
    assert rows[0]["flip_rate"] == by_hand.flip_rate and rows[0]["overlap"] == by_hand.overlap


@pytest.mark.parametrize("bad, match", [
    (dict(tasks=("imagenet",)), "task"),
    (dict(tasks="mnist"), "tuple of task names"),
    (dict(attacks=("cw",)), "attack"),
    (dict(eps=1.5), "eps"),
    (dict(tau=0.0), "tau"),
    (dict(n_train=5, tau=0.1), "selects no point"),
    (dict(ridge=0.0), "ridge"),
    (dict(width=0), "width"),
])
def test_bad_configs_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TableConfig.quick(**bad)


def test_scales_and_adversarial_recipe():
    q, p = TableConfig.quick(), TableConfig.paper()
    assert (p.n_train, p.n_test, p.width, p.epochs, p.pool_per_class) == (5000, 1000, 1024, 500, None)
    assert (p.protocol.lr, p.protocol.batch_size, p.protocol.weight_decay) == (1e-3, 128, 1e-3)
    assert q.n_train < p.n_train
    a = AdversarialConfig.paper()
    assert (a.at_epochs, a.at_steps, a.at_step_size, a.tasks, a.attacks) == (100, 40, 0.01, ("mnist", "cifar10"), ("pgd",))
    with pytest.raises(ValueError, match="at_steps"):
        AdversarialConfig.quick(at_steps=0)


def test_input_map_and_init_scale_are_open_choices_that_keep_old_keys(toy):
    from linattn.models import InputMap, model_keys

    exp = experiments.get("malleability_tables")
    base = exp.cells(TableConfig.quick())
    assert "input_map" not in base[0] and "init_scale" not in base[0]  # defaults leave the keys as they were
    alt = exp.cells(TableConfig.quick(input_map="center", init_scale=0.01))
    assert alt[0]["input_map"] == "center" and alt[0]["init_scale"] == 0.01
    X, y = toy.X_train, toy.y_train
    m = paper_model("attn", X, y, C, width=16, seed=0, input_map="center", init_scale=0.01)
    mu = X.mean(0)
    torch.testing.assert_close(m.input_map(X), X - mu)
    keys = (X - mu) / (X - mu).norm(dim=1, keepdim=True)
    torch.testing.assert_close(m.feature_map.C.to(F64), keys.T @ keys)      # attention over centred rows
    torch.testing.assert_close(model_keys(m, X), keys)
    ref = paper_model("attn", X, y, C, width=16, seed=0)
    torch.testing.assert_close(m.W, 0.01 * ref.W)                           # same directions, smaller
    std = InputMap.fit(X, "standardize")
    torch.testing.assert_close(std(X).std(0), torch.ones(D, dtype=F64))
    assert InputMap.fit(X, "none") is None
    with pytest.raises(ValueError, match="input_map"):
        TableConfig.quick(input_map="whiten")
    with pytest.raises(ValueError, match="init_scale"):
        TableConfig.quick(init_scale=0.0)


def test_flip_summary_pools_counts_over_seeds_with_wilson_intervals():
    from linattn.experiments.part3 import flip_ratio, flip_summary, near_chance
    from linattn.stats import rate_ratio, wilson_interval

    rows = [dict(task="t", model=m, attention="a", attack="pgd", seed=s, flip_rate=k / 20, n_flipped=k, n_tracked=20,
                 spearman=0.5, overlap=0.4, train_acc=0.9, test_acc=0.8)
            for m, ks in (("attn", (6, 8, 4)), ("relu", (1, 0, 2))) for s, k in enumerate(ks)]
    attn, relu = flip_summary(rows)
    assert (attn["k"], attn["n"], attn["seeds"]) == (18, 60, 3) and attn["rate"] == 0.3
    assert (attn["lo"], attn["hi"]) == pytest.approx(wilson_interval(18, 60))
    assert (attn["seed_min"], attn["seed_max"]) == (0.2, 0.4) and attn["test_acc"] == pytest.approx(0.8)
    r = flip_ratio(attn, relu)
    assert r["ratio"] == pytest.approx(6.0) and r == rate_ratio(18, 60, 3, 60)
    assert r["lo"] < 6.0 < r["hi"]
    assert near_chance(0.15, 10) and not near_chance(0.5, 10) and near_chance(0.55, 2)


def test_curve_points_move_one_axis_at_a_time():
    from linattn.experiments.part3 import CurvesConfig, curve_points, curve_ratios, flip_summary

    cfg = CurvesConfig.quick(ns=(100, 200), widths=(32, 128), base_n=200, base_width=128, epochs=4,
                             checkpoints=(0,), eps_values=(0.1, 0.3), taus=(0.1,), attacks=("pgd",))
    rows = []
    for model, attention in (("relu", "n/a"), ("attn", "recompute")):
        for n, w, epoch, eps in ((100, 128, 4, 0.3), (200, 128, 4, 0.3), (200, 32, 4, 0.3), (200, 128, 0, 0.3),
                                 (200, 128, 4, 0.1), (100, 32, 4, 0.1)):  # the last is on no curve
            rows.append(dict(model=model, attention=attention, attack="pgd", n=n, width=w, epoch=epoch, eps=eps,
                             tau=0.1, seed=0, flip_rate=0.5 if model == "attn" else 0.25, n_flipped=5 if model == "attn" else 2,
                             n_tracked=10 if model == "attn" else 8, spearman=0.5, overlap=0.5, train_acc=0.9, test_acc=0.9))
    pts = curve_points(rows, cfg)
    axes = sorted({(k[3], k[4]) for k in pts})
    assert axes == [("epoch", 0), ("epoch", 4), ("eps", 0.1), ("eps", 0.3), ("n", 100), ("n", 200), ("tau", 0.1),
                    ("width", 32), ("width", 128)]
    assert pts[("attn", "recompute", "pgd", "n", 100)]["n"] == 10  # "n" of a summary is the count, the axis is in the key
    ratios = curve_ratios(pts)
    assert ratios[("width", 32)]["ratio"] == pytest.approx(0.5 / 0.25)
    with pytest.raises(ValueError, match="overwritten"):
        flip_summary(rows, by=("model", "n"))


def test_the_kernel_regime_control_uses_theta_inf(toy):
    from linattn.experiments.part3 import kernel_fn_of, verdict_summary
    from linattn.kernels import ntk_inf

    assert kernel_fn_of("empirical") is None and kernel_fn_of("infinite") is ntk_inf
    with pytest.raises(ValueError, match="kernel"):
        TableConfig.quick(kernel="gaussian")
    exp = experiments.get("malleability_tables")
    assert "kernel" not in exp.cells(TableConfig.quick())[0]
    cfg = TableConfig.quick(width=16, epochs=2, tau=0.25, attacks=("pgd", "noise"), fixed_attacks=(), kernel="infinite")
    model = paper_model("attn", toy.X_train, toy.y_train, C, width=16, seed=1, protocol=cfg.protocol)
    rows = table_rows(toy, model, cfg, kind="attn", seed=1, kernel_fn=kernel_fn_of(cfg.kernel))
    direct = malleability(model, toy.X_train, toy.y_train, toy.X_test, toy.y_test, attack="pgd", eps=cfg.eps,
                          tau=cfg.tau, ridge=cfg.ridge, kernel_fn=ntk_inf, seed=1)
    assert rows[0]["flip_rate"] == direct.flip_rate and rows[0]["spearman"] == direct.spearman
    relu = paper_model("relu", toy.X_train, toy.y_train, C, width=16, seed=1, protocol=cfg.protocol)
    rows += table_rows(toy, relu, cfg, kind="relu", seed=1, kernel_fn=ntk_inf)
    rows = [dict(r, attack=r["attack"]) for r in rows] + [dict(r, attack="fgsm") for r in rows if r["attack"] == "pgd"] \
        + [dict(r, attack="mim") for r in rows if r["attack"] == "pgd"]
    v = verdict_summary(rows, "toy")
    assert set(v) >= {"ratio", "noise_ratio", "pgd_relu", "pgd_attn", "train_acc_attn"}


def test_adversarial_change_grades_table_4_against_the_same_setting():
    from linattn.experiments.part3 import adversarial_change
    from linattn.stats import rate_difference

    def row(model, attention, seed, k, training, **acc):
        return {"task": "mnist", "model": model, "attention": attention, "attack": "pgd", "seed": seed,
                "n_flipped": k, "n_tracked": 50, "flip_rate": k / 50, "spearman": 0.5, "overlap": 0.5,
                "train_acc": acc.get("train", 0.9), "test_acc": 0.8, "training": training,
                **({"robust_acc": acc["robust"]} if "robust" in acc else {})}

    adv = [row("relu", "n/a", s, 20, "adversarial", train=0.6, robust=0.2 + 0.1 * s) for s in (0, 1)]
    adv += [row("attn", "recompute", s, 10, "adversarial", train=0.1, robust=0.1) for s in (0, 1)]
    adv += [row("attn", "fixed", s, 49, "adversarial", train=0.1, robust=0.1) for s in (0, 1)]  # not graded
    std = [row("relu", "n/a", s, 5, "standard") for s in (0, 1)]
    out = adversarial_change(adv, std, "mnist")
    assert set(out) == {"relu"}  # MLP-Attn has no standard rows: left out, not guessed
    r = out["relu"]
    assert r["change"] == rate_difference(40, 100, 10, 100)
    assert r["change"]["lo"] > 0 and abs(r["robust_acc"] - 0.25) < 1e-12 and not r["chance"]
    std += [row("attn", "recompute", s, 30, "standard") for s in (0, 1)]
    a = adversarial_change(adv, std, "mnist")["attn"]
    assert a["chance"] and a["change"]["hi"] < 0 and a["adv"]["k"] == 20  # the fixed-C rows stay out
