"""Influence malleability (linattn.malleability) on small float64 models with a reference NTK."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from linattn.influence import influence_loo, influence_scores
from linattn.malleability import (
    TableConfig,
    attention_keys,
    kernel_malleability,
    malleability,
    model_influence,
    paper_model,
    regression_targets,
    select_top,
    summarize,
    sweep,
    table_rows,
    train_models,
    with_attention_keys,
)
from linattn.malleability import data_kernel as mall_data_kernel
from linattn.models import mlp_attn, relu_net

F64 = torch.float64
N, T, D, C, M = 40, 10, 12, 3, 64


def ref_ntk(model, X, X2):
    """Independent reference: Theta = (X^ X^'^T) * (S S'^T) / m from the formulas, float64."""
    def feats(Z):
        Z = torch.as_tensor(Z, dtype=F64)
        if model.feature_map is not None:
            Z = Z @ model.feature_map.C.to(F64)  # linearized attention C z
        return Z / Z.norm(dim=1, keepdim=True)

    A, B = feats(X), feats(X2)
    W = model.W.detach().to(F64)
    S, S2 = (A @ W.T > 0).to(F64), (B @ W.T > 0).to(F64)
    return (A @ B.T) * (S @ S2.T) / W.shape[0]


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(C, D, generator=g, dtype=F64)
    y = torch.arange(N + T) % C
    X = (centres[y] + 0.15 * torch.randn(N + T, D, generator=g, dtype=F64)).clamp(0.02, 0.98)
    return X[:N], y[:N], X[N:], y[N:]


def _models(X):
    return {"relu": relu_net(D, M, C, seed=1, dtype=F64),
            "attn": mlp_attn(attention_keys(X), M, C, seed=1, dtype=F64)}


def test_select_top_by_absolute_score_ties_by_index():
    s = torch.tensor([0.1, -5.0, 2.0, -2.0, 0.0, 3.0], dtype=F64)
    assert select_top(s, 0.5).tolist() == [1, 5, 2]  # |-2| ties |2|: lower index first
    assert select_top(s, 1.0).tolist() == [1, 5, 2, 3, 0, 4]
    with pytest.raises(ValueError, match="selects no point"):
        select_top(s, 0.05)
    for tau in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="tau"):
            select_top(s, tau)


def test_regression_targets():
    y = torch.tensor([0, 2, 1])
    torch.testing.assert_close(regression_targets(y, 3), torch.eye(3, dtype=F64)[y])
    torch.testing.assert_close(regression_targets(y, 3, coding="pm1"), 2 * torch.eye(3, dtype=F64)[y] - 1)
    torch.testing.assert_close(regression_targets(torch.tensor([0, 1, 1]), 1), torch.tensor([-1.0, 1, 1], dtype=F64))
    with pytest.raises(ValueError, match="class indices"):
        regression_targets(torch.tensor([0, 3]), 3)


def test_model_influence_matches_reference_and_default_kernel(toy):
    X, y, Xt, yt = toy
    for model in _models(X).values():
        st = model_influence(model, X, y, Xt, yt, lam=0.01, kernel_fn=ref_ntk)
        K, Kt = ref_ntk(model, X, X), ref_ntk(model, Xt, X)
        I = influence_loo(K, regression_targets(y, C), Kt, lam=0.01, y_test=yt)
        torch.testing.assert_close(st.I, I, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(st.scores, I.mean(1), rtol=1e-10, atol=1e-13)
        # the default kernel is linattn.ntk.empirical_ntk: the same numbers
        default = model_influence(model, X, y, Xt, yt, lam=0.01)
        torch.testing.assert_close(default.scores, st.scores, rtol=1e-8, atol=1e-11)


def test_zero_eps_changes_nothing(toy):
    X, y, Xt, yt = toy
    for model in _models(X).values():
        for intervention in ("transformed", "adversarial"):
            r = malleability(model, X, y, Xt, yt, intervention=intervention, attack="pgd", eps=0.0, tau=0.25,
                             kernel_fn=ref_ntk, attack_kwargs={"steps": 3})
            assert r.flip_rate == 0.0 and r.overlap == 1.0
            assert r.spearman == pytest.approx(1.0, abs=1e-12)
            torch.testing.assert_close(r.scores_after, r.scores_before, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "mim", "noise"])
def test_transformed_and_adversarial_move_the_right_rows(toy, attack):
    X, y, Xt, yt = toy
    model = _models(X)["attn"]
    eps = 0.1
    kw = dict(attack=attack, eps=eps, tau=0.25, kernel_fn=ref_ntk, seed=3)
    if attack in ("pgd", "mim"):
        kw["attack_kwargs"] = {"steps": 5}
    r = malleability(model, X, y, Xt, yt, intervention="transformed", **kw)
    moved = (r.X_after - X).abs().amax(1) > 0
    assert set(torch.nonzero(moved)[:, 0].tolist()) <= set(r.selected.tolist())
    assert moved[r.selected].float().mean() > 0.9
    assert float((r.X_after - X).abs().max()) <= eps + 1e-12
    assert float(r.X_after.min()) >= 0 and float(r.X_after.max()) <= 1
    ra = malleability(model, X, y, Xt, yt, intervention="adversarial", **kw)
    assert float(((ra.X_after - X).abs().amax(1) > 0).float().mean()) > 0.9
    assert float((ra.X_after - X).abs().max()) <= eps + 1e-12


def test_reported_metrics_follow_their_definitions(toy):
    X, y, Xt, yt = toy
    for model in _models(X).values():
        r = malleability(model, X, y, Xt, yt, attack="fgsm", eps=0.3, tau=0.2, kernel_fn=ref_ntk)
        sel = r.selected
        assert len(sel) == 8 and r.n_selected == 8
        flips = float((torch.sign(r.scores_before[sel]) != torch.sign(r.scores_after[sel])).double().mean())
        assert r.flip_rate == flips
        assert r.spearman == pytest.approx(spearmanr(r.scores_before, r.scores_after).statistic, abs=1e-12)
        top_after = set(np.argsort(-np.abs(r.scores_after.numpy()), kind="stable")[:8].tolist())
        assert r.overlap == len(top_after & set(sel.tolist())) / 8
        # recomputing by hand from the intervened set, with the attention rebuilt from it
        m2 = with_attention_keys(model, attention_keys(r.X_after))
        s2 = influence_scores(influence_loo(ref_ntk(m2, r.X_after, r.X_after), regression_targets(y, C),
                                            ref_ntk(m2, Xt, r.X_after), lam=1e-3, y_test=yt))
        torch.testing.assert_close(r.scores_after, s2, rtol=1e-8, atol=1e-12)


def test_curated_equals_influence_on_the_remaining_points(toy):
    X, y, Xt, yt = toy
    model = _models(X)["relu"]  # its kernel does not depend on the other points
    r = malleability(model, X, y, Xt, yt, intervention="curated", tau=0.25, kernel_fn=ref_ntk)
    keep = torch.ones(N, dtype=torch.bool)
    keep[r.selected] = False
    K = ref_ntk(model, X, X)
    I = influence_loo(K[keep][:, keep], regression_targets(y[keep], C), ref_ntk(model, Xt, X)[:, keep],
                      lam=1e-3, y_test=yt)
    torch.testing.assert_close(r.scores_after, I.mean(1), rtol=1e-9, atol=1e-13)
    assert r.tracked.tolist() == torch.nonzero(keep)[:, 0].tolist()
    flips = float((torch.sign(r.scores_before[keep]) != torch.sign(I.mean(1))).double().mean())
    assert r.flip_rate == flips and r.config["attack"] == "none"


def test_attention_recomputed_versus_fixed(toy):
    X, y, Xt, yt = toy
    model = _models(X)["attn"]
    Xp = X.clone()
    Xp[:5] = (Xp[:5] + 0.2).clamp(0, 1)
    m2 = with_attention_keys(model, Xp)
    assert m2 is not model and torch.equal(m2.W, model.W) and torch.equal(m2.a, model.a)
    torch.testing.assert_close(m2.feature_map.C, Xp.T @ Xp)
    U = attention_keys(X)
    torch.testing.assert_close(model.feature_map.C, U.T @ U)  # the original is untouched
    relu = _models(X)["relu"]
    assert with_attention_keys(relu, Xp) is relu
    # with C fixed, the test-train kernel of the unperturbed points is unchanged; recomputed, it moves
    kw = dict(intervention="transformed", attack="noise", eps=0.2, tau=0.25, kernel_fn=ref_ntk)
    fixed = malleability(model, X, y, Xt, yt, attention="fixed", **kw)
    recomputed = malleability(model, X, y, Xt, yt, attention="recompute", **kw)
    assert fixed.config["attention"] == "fixed" and recomputed.config["attention"] == "recompute"
    untouched = torch.ones(N, dtype=torch.bool)
    untouched[fixed.selected] = False
    Kf = ref_ntk(model, Xt, fixed.X_after)[:, untouched]
    Kr = ref_ntk(with_attention_keys(model, attention_keys(recomputed.X_after)), Xt,
                 recomputed.X_after)[:, untouched]
    torch.testing.assert_close(Kf, ref_ntk(model, Xt, X)[:, untouched], rtol=0, atol=0)
    assert float((Kr - Kf).abs().max()) > 1e-3


def test_determinism(toy):
    X, y, Xt, yt = toy
    model = _models(X)["attn"]
    kw = dict(attack="pgd", eps=0.2, tau=0.2, kernel_fn=ref_ntk, seed=5, attack_kwargs={"steps": 4})
    a = malleability(model, X, y, Xt, yt, **kw)
    b = malleability(model, X, y, Xt, yt, **kw)
    assert a.row() == b.row()
    torch.testing.assert_close(a.X_after, b.X_after, rtol=0, atol=0)


def test_binary_task_with_one_output(toy):
    X, y, Xt, yt = toy
    yb, ytb = (y % 2), (yt % 2)
    model = relu_net(D, M, 1, seed=2, dtype=F64)
    r = malleability(model, X, yb, Xt, ytb, attack="fgsm", eps=0.2, tau=0.2, kernel_fn=ref_ntk)
    K, Kt = ref_ntk(model, X, X), ref_ntk(model, Xt, X)
    I = influence_loo(K, 2.0 * yb.to(F64) - 1, Kt, lam=1e-3, y_test=2.0 * ytb.to(F64) - 1)
    torch.testing.assert_close(r.scores_before, I.mean(1), rtol=1e-10, atol=1e-13)
    assert 0.0 <= r.flip_rate <= 1.0


def test_sweep_rows(toy):
    X, y, Xt, yt = toy

    def model_fn(width, seed):
        return mlp_attn(attention_keys(X), width, C, seed=seed, dtype=F64)

    rows = sweep(model_fn, X, y, Xt, yt, widths=(16, 32), seeds=(0,), eps_values=(0.1, 0.3), taus=(0.25,),
                 attacks=("fgsm", "noise"), interventions=("transformed", "curated"),
                 attention_modes=("recompute", "fixed"), kernel_fn=ref_ntk)
    # per width: transformed 2 attacks x 2 eps x 2 modes = 8, curated 2 modes = 2
    assert len(rows) == 2 * (8 + 2)
    keys = {"model", "width", "intervention", "attack", "eps", "tau", "attention", "flip_rate", "spearman", "overlap"}
    assert all(keys <= set(r) for r in rows)
    assert {r["width"] for r in rows} == {16, 32}
    one = [r for r in rows if r["width"] == 32 and r["attack"] == "fgsm" and r["eps"] == 0.3
           and r["attention"] == "fixed"][0]
    direct = malleability(model_fn(32, 0), X, y, Xt, yt, attack="fgsm", eps=0.3, tau=0.25, attention="fixed",
                          kernel_fn=ref_ntk)
    assert one == direct.row()
    relu_rows = sweep(lambda w, s: relu_net(D, w, C, seed=s, dtype=F64), X, y, Xt, yt, widths=(16,),
                      attacks=("fgsm",), attention_modes=("recompute", "fixed"), kernel_fn=ref_ntk)
    assert len(relu_rows) == 1 and relu_rows[0]["attention"] == "n/a"


def test_errors(toy):
    X, y, Xt, yt = toy
    model = _models(X)["relu"]
    kw = dict(kernel_fn=ref_ntk)
    for eps in (-0.1, 1.2):
        with pytest.raises(ValueError, match="eps"):
            malleability(model, X, y, Xt, yt, eps=eps, **kw)
    for tau in (0.0, 1.01):
        with pytest.raises(ValueError, match="tau"):
            malleability(model, X, y, Xt, yt, tau=tau, **kw)
    with pytest.raises(ValueError, match="selects no point"):
        malleability(model, X, y, Xt, yt, tau=0.01, **kw)
    with pytest.raises(ValueError, match="fewer than 2"):
        malleability(model, X, y, Xt, yt, intervention="curated", tau=1.0, **kw)
    with pytest.raises(ValueError, match="intervention"):
        malleability(model, X, y, Xt, yt, intervention="poisoned", **kw)
    with pytest.raises(ValueError, match="attention"):
        malleability(model, X, y, Xt, yt, attention="frozen", **kw)
    with pytest.raises(ValueError, match="labels"):
        model_influence(model, X, y[:-1], Xt, yt, **kw)
    raw = mlp_attn(X, M, C, seed=1, dtype=F64)  # keys = raw rows: recomputing needs unit_keys=False
    with pytest.raises(ValueError, match="unit_keys"):
        malleability(raw, X, y, Xt, yt, **kw)
    r = malleability(raw, X, y, Xt, yt, unit_keys=False, eps=0.0, attack="fgsm", **kw)
    assert r.flip_rate == 0.0 and r.overlap == 1.0
    with pytest.raises(ValueError, match="must return"):
        model_influence(model, X, y, Xt, yt, kernel_fn=lambda m, A, B: torch.zeros(3, 3))


def test_data_kernels_match_their_formulas(toy):
    from linattn import kernels

    X, _, Xt, _ = toy
    U, Ut = attention_keys(X), attention_keys(Xt)
    G = U @ U.T
    torch.testing.assert_close(mall_data_kernel("linear")(X, X), G, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mall_data_kernel("attention")(X, X), G @ G @ G, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(mall_data_kernel("attention")(Xt, X), Ut @ (U.T @ U) @ (U.T @ U) @ U.T,
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(mall_data_kernel("ntk_relu")(Xt, X), kernels.ntk_relu(Ut, U), rtol=1e-12, atol=1e-12)
    F, Ft = U @ (U.T @ U), Ut @ (U.T @ U)  # attention features C x, C from the unit training rows
    F, Ft = F / F.norm(dim=1, keepdim=True), Ft / Ft.norm(dim=1, keepdim=True)
    torch.testing.assert_close(mall_data_kernel("ntk_attn")(Xt, X), kernels.ntk_relu(Ft, F), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="kind"):
        mall_data_kernel("rbf")


def test_kernel_malleability(toy):
    X, y, Xt, yt = toy
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, generator=g, dtype=F64)
    f_tr, f_te = attention_keys(X) @ w, attention_keys(Xt) @ w
    k = mall_data_kernel("linear")
    r0 = kernel_malleability(k, X, f_tr, Xt, f_te, eps=0.0, tau=0.25, lam=0.1)
    assert r0.flip_rate == 0.0 and r0.overlap == 1.0 and r0.spearman == pytest.approx(1.0)
    r = kernel_malleability(k, X, f_tr, Xt, f_te, eps=0.2, tau=0.25, lam=0.1, seed=1)
    I = influence_loo(k(X, X), f_tr, k(Xt, X), lam=0.1, y_test=f_te, target="loss")
    torch.testing.assert_close(r.scores_before, I.mean(1), rtol=1e-10, atol=1e-14)
    I2 = influence_loo(k(r.X_after, r.X_after), f_tr, k(Xt, r.X_after), lam=0.1, y_test=f_te, target="loss")
    torch.testing.assert_close(r.scores_after, I2.mean(1), rtol=1e-10, atol=1e-14)
    moved = torch.nonzero((r.X_after - X).abs().amax(1) > 0)[:, 0]
    assert set(moved.tolist()) <= set(r.selected.tolist())
    assert float((r.X_after - X).abs().max()) <= 0.2 + 1e-12
    with pytest.raises(ValueError, match="eps"):
        kernel_malleability(k, X, f_tr, Xt, f_te, eps=2.0)
    with pytest.raises(ValueError, match="target"):
        kernel_malleability(k, X, f_tr, Xt, f_te, target="true_class")


def test_summarize():
    rows = [{"a": 1, "v": 0.1, "flip_rate": 0.0}, {"a": 1, "v": 0.3, "flip_rate": 0.5}, {"a": 2, "v": 0.2, "flip_rate": 1.0}]
    out = {r["a"]: r for r in summarize(rows, by=("a",))}
    assert out[1]["mean"] == 0.25 and out[1]["min"] == 0.0 and out[1]["max"] == 0.5 and out[1]["count"] == 2
    assert summarize(rows, by=("a",), value="v")[0]["mean"] == pytest.approx(0.2)


def test_paper_model_and_table_rows(toy):
    from types import SimpleNamespace

    X, y, Xt, yt = toy
    cfg = TableConfig.quick(width=16, seeds=(0, 1), epochs=2, tau=0.25, attacks=("fgsm", "noise"),
                            fixed_attacks=("noise",), at_epochs=1, at_steps=1)
    td = SimpleNamespace(X_train=X, y_train=y, X_test=Xt, y_test=yt, n_classes=C, name="toy")
    attn0 = paper_model("attn", X, y, C, width=16, seed=0, epochs=0, config=cfg)
    torch.testing.assert_close(attn0.feature_map.C, attention_keys(X).T @ attention_keys(X))  # unit keys
    binary = paper_model("relu", X, y % 2, 2, width=16, seed=0, epochs=1, config=cfg)
    assert binary.n_outputs == 1
    trained = paper_model("relu", X, y, C, width=16, seed=0, epochs=2, config=cfg)
    assert not torch.equal(trained.W, relu_net(D, 16, C, seed=0).W)  # the weights moved
    adv = paper_model("attn", X, y, C, width=16, seed=0, training="adversarial", config=cfg)
    assert not torch.equal(adv.W, attn0.W)
    models = train_models(td, cfg, kinds=("relu", "attn"))
    assert sorted(models) == [("attn", 0), ("attn", 1), ("relu", 0), ("relu", 1)]
    rows = table_rows(td, models, cfg, kernel_fn=ref_ntk)
    # relu: 2 attacks; attn: 2 attacks + noise with C fixed; times 2 seeds
    assert len(rows) == 2 * 2 + 3 * 2
    assert all(r["task"] == "toy" and 0.0 <= r["train_acc"] <= 1.0 for r in rows)
    # the C-fixed row uses the same perturbed points as the recomputed one: rerun it directly
    fixed = [r for r in rows if r["attention"] == "fixed" and r["seed"] == 1][0]
    direct = malleability(models[("attn", 1)], X, y, Xt, yt, attack="noise", eps=cfg.eps, tau=cfg.tau,
                          attention="fixed", lam=cfg.lam, kernel_fn=ref_ntk, seed=1)
    assert fixed["flip_rate"] == direct.flip_rate and fixed["spearman"] == direct.spearman
    with pytest.raises(ValueError, match="kind"):
        paper_model("cnn", X, y, C, width=4, seed=0)


def test_x_after_reuse_is_checked(toy):
    X, y, Xt, yt = toy
    model = _models(X)["attn"]
    kw = dict(attack="fgsm", eps=0.1, tau=0.25, kernel_fn=ref_ntk)
    r = malleability(model, X, y, Xt, yt, **kw)
    again = malleability(model, X, y, Xt, yt, X_after=r.X_after, **kw)
    assert again.row() == r.row()
    bad = r.X_after.clone()
    keep = torch.ones(N, dtype=torch.bool)
    keep[r.selected] = False
    bad[torch.nonzero(keep)[0, 0]] += 0.01
    with pytest.raises(ValueError, match="does not touch"):
        malleability(model, X, y, Xt, yt, X_after=bad, **kw)
