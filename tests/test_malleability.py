"""Influence malleability (linattn.malleability) on small float64 models with a reference NTK."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from linattn.data import regression_targets
from linattn.influence import influence_loo, influence_scores
from linattn.kernels import data_kernel
from linattn.malleability import (
    Intervened,
    attack_perturbation,
    intervene,
    kernel_malleability,
    malleability,
    measure,
    model_influence,
    select_top,
    sweep,
)
from linattn.models import attention_keys, mlp_attn, relu_net, with_attention_keys

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


def test_model_influence_matches_reference_and_default_kernel(toy):
    X, y, Xt, yt = toy
    for model in _models(X).values():
        st = model_influence(model, X, y, Xt, yt, ridge=0.01, kernel_fn=ref_ntk)
        K, Kt = ref_ntk(model, X, X), ref_ntk(model, Xt, X)
        I = influence_loo(K, regression_targets(y, C), Kt, ridge=0.01, y_test=yt)
        torch.testing.assert_close(st.I, I, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(st.scores, I.mean(1), rtol=1e-10, atol=1e-13)
        # the default kernel is linattn.ntk.empirical_ntk: the same numbers
        default = model_influence(model, X, y, Xt, yt, ridge=0.01)
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
                                            ref_ntk(m2, Xt, r.X_after), ridge=1e-3, y_test=yt))
        torch.testing.assert_close(r.scores_after, s2, rtol=1e-8, atol=1e-12)


def test_curated_equals_influence_on_the_remaining_points(toy):
    X, y, Xt, yt = toy
    model = _models(X)["relu"]  # its kernel does not depend on the other points
    r = malleability(model, X, y, Xt, yt, intervention="curated", tau=0.25, kernel_fn=ref_ntk)
    keep = torch.ones(N, dtype=torch.bool)
    keep[r.selected] = False
    K = ref_ntk(model, X, X)
    I = influence_loo(K[keep][:, keep], regression_targets(y[keep], C), ref_ntk(model, Xt, X)[:, keep],
                      ridge=1e-3, y_test=yt)
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
    I = influence_loo(K, 2.0 * yb.to(F64) - 1, Kt, ridge=1e-3, y_test=2.0 * ytb.to(F64) - 1)
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


def test_kernel_malleability(toy):
    X, y, Xt, yt = toy
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, generator=g, dtype=F64)
    f_tr, f_te = attention_keys(X) @ w, attention_keys(Xt) @ w
    k = data_kernel("linear")
    r0 = kernel_malleability(k, X, f_tr, Xt, f_te, eps=0.0, tau=0.25, ridge=0.1)
    assert r0.flip_rate == 0.0 and r0.overlap == 1.0 and r0.spearman == pytest.approx(1.0)
    r = kernel_malleability(k, X, f_tr, Xt, f_te, eps=0.2, tau=0.25, ridge=0.1, seed=1)
    I = influence_loo(k(X, X), f_tr, k(Xt, X), ridge=0.1, y_test=f_te, target="loss")
    torch.testing.assert_close(r.scores_before, I.mean(1), rtol=1e-10, atol=1e-14)
    I2 = influence_loo(k(r.X_after, r.X_after), f_tr, k(Xt, r.X_after), ridge=0.1, y_test=f_te, target="loss")
    torch.testing.assert_close(r.scores_after, I2.mean(1), rtol=1e-10, atol=1e-14)
    moved = torch.nonzero((r.X_after - X).abs().amax(1) > 0)[:, 0]
    assert set(moved.tolist()) <= set(r.selected.tolist())
    assert float((r.X_after - X).abs().max()) <= 0.2 + 1e-12
    with pytest.raises(ValueError, match="eps"):
        kernel_malleability(k, X, f_tr, Xt, f_te, eps=2.0)
    with pytest.raises(ValueError, match="target"):
        kernel_malleability(k, X, f_tr, Xt, f_te, target="true_class")



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


def test_protocol_steps_compose_to_malleability(toy):
    """model_influence -> select_top -> intervene -> model_influence -> measure is malleability()."""
    X, y, Xt, yt = toy
    model = _models(X)["attn"]
    kw = dict(ridge=1e-3, kernel_fn=ref_ntk)
    before = model_influence(model, X, y, Xt, yt, **kw)
    selected = select_top(before.scores, 0.25)
    perturb = attack_perturbation(model, "fgsm", eps=0.1)
    iv = intervene(X, y, selected, perturb, intervention="transformed", eps=0.1)
    assert isinstance(iv, Intervened) and iv.kept.tolist() == list(range(N))
    assert iv.tracked.tolist() == selected.tolist() and torch.equal(iv.y, y)
    m2 = with_attention_keys(model, attention_keys(iv.X))
    after = model_influence(m2, iv.X, iv.y, Xt, yt, **kw)
    r = measure(before.scores, after.scores, iv, tau=0.25)
    direct = malleability(model, X, y, Xt, yt, attack="fgsm", eps=0.1, tau=0.25, **kw)
    assert (r.flip_rate, r.spearman, r.overlap, r.n_selected) == (direct.flip_rate, direct.spearman,
                                                                  direct.overlap, direct.n_selected)
    torch.testing.assert_close(r.X_after, direct.X_after, rtol=0, atol=0)
    torch.testing.assert_close(r.scores_after, direct.scores_after, rtol=0, atol=0)


def test_intervene_each_intervention():
    X = torch.linspace(0.1, 0.9, 12, dtype=F64).reshape(6, 2)
    y = torch.arange(6) % 2
    sel = torch.tensor([4, 1])
    plus = lambda Xr, yr: Xr + 0.05  # noqa: E731 - a perturbation that moves every row it gets
    t = intervene(X, y, sel, plus, intervention="transformed", eps=0.05)
    torch.testing.assert_close(t.X[sel], X[sel] + 0.05)
    assert torch.equal(t.X[[0, 2, 3, 5]], X[[0, 2, 3, 5]]) and t.tracked.tolist() == [4, 1]
    a = intervene(X, y, sel, plus, intervention="adversarial", eps=0.05)
    torch.testing.assert_close(a.X, X + 0.05)
    assert a.tracked.tolist() == [4, 1]
    c = intervene(X, y, sel, None, intervention="curated")
    assert c.kept.tolist() == [0, 2, 3, 5] and c.tracked.tolist() == [0, 2, 3, 5]
    assert torch.equal(c.X, X[[0, 2, 3, 5]]) and torch.equal(c.y, y[[0, 2, 3, 5]])
    # the flip rate of a curated set compares the remaining points in their original order
    s0 = torch.tensor([1.0, -9.0, 2.0, -3.0, 8.0, 4.0], dtype=F64)
    r = measure(s0, torch.tensor([1.0, -2.0, -3.0, 0.5], dtype=F64), c, tau=0.5)
    assert r.flip_rate == 0.25 and r.n_selected == 2 and r.overlap == 0.5
    with pytest.raises(ValueError, match="perturb"):
        intervene(X, y, sel, None, intervention="transformed")
    with pytest.raises(ValueError, match="y_train has 5 labels for the 6 rows of X_train"):
        intervene(X, y[:5], sel, plus)
    with pytest.raises(ValueError, match="intervention must be 'transformed', 'adversarial' or 'curated'"):
        intervene(X, y, sel, plus, intervention="poisoned")
    with pytest.raises(ValueError, match="scores_after"):
        measure(s0, s0[:3], c, tau=0.5)


def test_lam_is_gone_and_moved_helpers_live_elsewhere(toy):
    import inspect

    from linattn import influence, malleability as mall, predictors

    X, y, Xt, yt = toy
    with pytest.raises(TypeError, match="lam"):
        malleability(_models(X)["relu"], X, y, Xt, yt, lam=1e-3, kernel_fn=ref_ntk)
    from linattn.experiments.part3 import TableConfig

    assert "lam" not in TableConfig.__dataclass_fields__ and TableConfig().ridge == 1e-3
    for fn in (mall.malleability, mall.model_influence, mall.kernel_malleability, influence.influence_loo,
               influence.loo_predictions, influence.ridge_bias, predictors.kernel_regression,
               predictors.KernelRidge):
        params = inspect.signature(fn).parameters
        assert "lam" not in params and "ridge" in params, fn
    for name in ("regression_targets", "attention_keys", "with_attention_keys", "data_kernel", "KernelRidge"):
        assert not hasattr(mall, name), name
    assert not hasattr(influence, "KernelRidge") or influence.KernelRidge is predictors.KernelRidge
    row = malleability(_models(X)["relu"], X, y, Xt, yt, attack="fgsm", tau=0.25, kernel_fn=ref_ntk).row()
    assert row["ridge"] == 1e-3 and "lam" not in row
