"""Tests of softmax attention as a model (linattn.softmax, linattn.attention.SoftmaxAttention) and of its
comparison with the linearized proxy (issue 13, item 2)."""
import math

import pytest
import torch

from linattn import attention, softmax
from linattn._validation import ScaleError
from linattn.attention import SoftmaxAttention, check_temperature, softmax_attention, softmax_expansion, softmax_weights
from linattn.kernels import gram_cubed, ntk_relu
from linattn.models import attention_keys, mlp_attn, relu_net, unit_rows
from linattn.ntk import empirical_ntk, empirical_ntk_autodiff
from linattn.spectra import RankDeficientError, kappa, kappa_d


def pixels(n=12, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- the model's features


@pytest.mark.parametrize("T", [0.05, 0.5, 5.0])
def test_model_features_equal_softmax_attention(T):
    X = pixels()
    keys = attention_keys(X)
    net = softmax.softmax_attn(keys, 16, 3, temperature=T, dtype=torch.float64)
    ref = unit_rows(softmax_attention(keys, keys, T))  # queries = keys = the unit training rows
    torch.testing.assert_close(net.features(X), ref, rtol=1e-12, atol=1e-14)
    # a test point: its unit row attends to the training keys
    x = pixels(4, 6, 1)
    torch.testing.assert_close(net.features(x), unit_rows(softmax_attention(unit_rows(x), keys, T)), rtol=1e-12, atol=1e-14)
    assert net.kind == "softmax" and net.feature_map.temperature == T


def test_features_do_not_depend_on_the_scale_of_the_input_and_follow_the_dtype():
    X = pixels()
    keys = attention_keys(X)
    att = SoftmaxAttention(keys, 0.2)
    torch.testing.assert_close(att(3.0 * X), att(X), rtol=1e-12, atol=0)
    out32 = att(X.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), att(X), rtol=1e-5, atol=1e-6)
    # a zero query attends uniformly: the mean key, never a NaN
    torch.testing.assert_close(att(torch.zeros(1, 6, dtype=torch.float64))[0], keys.mean(0))
    # without unit queries the scale matters (it is a temperature)
    raw = SoftmaxAttention(keys, 0.2, unit_queries=False)
    torch.testing.assert_close(raw(2 * X), SoftmaxAttention(keys, 0.1, unit_queries=False)(X), rtol=1e-12, atol=0)


def test_softmax_model_ntk_closed_form_matches_autodiff_and_attacks_get_gradients():
    X = pixels(8, 5)
    net = softmax.softmax_attn(attention_keys(X), 32, 2, temperature=0.3, dtype=torch.float64, seed=1)
    torch.testing.assert_close(empirical_ntk(net, X, full=True), empirical_ntk_autodiff(net, X), rtol=1e-10, atol=1e-12)
    x = X.clone().requires_grad_(True)
    net(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().max()) > 0


def test_keys_rebuilt_or_held_fixed():
    X, X2 = pixels(10, 6, 0), pixels(10, 6, 3)
    net = softmax.softmax_attn(attention_keys(X), 8, 2, temperature=0.4, dtype=torch.float64)
    new = softmax.rebuild_attention(net, X2)
    torch.testing.assert_close(new.feature_map.keys, attention_keys(X2))
    assert new.feature_map.temperature == 0.4 and torch.equal(new.W, net.W)
    assert torch.equal(net.feature_map.keys, attention_keys(X))  # the original is untouched
    softmax.check_softmax_keys(net, X)
    with pytest.raises(ValueError, match="were not built from X_train"):
        softmax.check_softmax_keys(net, X2)
    # the other models go through models.with_attention_keys
    lin = mlp_attn(attention_keys(X), 8, 2, dtype=torch.float64)
    torch.testing.assert_close(softmax.rebuild_attention(lin, X2).feature_map.C, attention_keys(X2).T @ attention_keys(X2))
    relu = relu_net(6, 8, 2)
    assert softmax.rebuild_attention(relu, X2) is relu
    with pytest.raises(TypeError, match="SoftmaxAttention"):
        softmax.with_softmax_keys(lin, X2)


def test_malleability_runs_the_protocol_for_softmax_and_delegates_otherwise():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 6, generator=g, dtype=torch.float64)
    y = torch.arange(30) % 3
    Xt, yt = torch.rand(8, 6, generator=g, dtype=torch.float64), torch.arange(8) % 3
    net = softmax.softmax_attn(attention_keys(X), 16, 3, temperature=0.2, dtype=torch.float64)
    r1 = softmax.malleability(net, X, y, Xt, yt, attack="noise", eps=0.1, tau=0.2, seed=0)
    r2 = softmax.malleability(net, X, y, Xt, yt, attack="noise", eps=0.1, tau=0.2, seed=0, attention="fixed",
                              X_after=r1.X_after)
    assert r1.n_selected == 6 and 0 <= r1.flip_rate <= 1 and r1.config["attention"] == "recompute"
    assert r2.config["attention"] == "fixed" and torch.equal(r1.X_after, r2.X_after)
    # noise of size 0 changes nothing
    r0 = softmax.malleability(net, X, y, Xt, yt, attack="noise", eps=0.0, tau=0.2)
    assert r0.flip_rate == 0.0 and r0.spearman == pytest.approx(1.0)
    # a model whose keys are not X_train cannot be "recomputed"
    with pytest.raises(ValueError, match="were not built from X_train"):
        softmax.malleability(net, X + 0.01, y, Xt, yt, attack="noise", eps=0.1, tau=0.2)
    # 2L-ReLU: the result of linattn.malleability itself
    from linattn.malleability import malleability as mall

    relu = relu_net(6, 16, 3, dtype=torch.float64)
    a = softmax.malleability(relu, X, y, Xt, yt, attack="noise", eps=0.1, tau=0.2)
    b = mall(relu, X, y, Xt, yt, attack="noise", eps=0.1, tau=0.2)
    assert a.flip_rate == b.flip_rate and torch.equal(a.scores_after, b.scores_after)


# --------------------------------------------------------------------------- the expansion


def test_expansion_terms_sum_to_softmax_and_the_remainder_is_second_order():
    X, keys = pixels(5, 4, 10), pixels(9, 4, 11)
    X, keys = unit_rows(X), unit_rows(keys)
    for T in (1.0, 10.0, 100.0):
        e = softmax_expansion(X, keys, temperature=T)
        torch.testing.assert_close(e.constant + e.first_order + e.remainder, e.exact, rtol=1e-13, atol=1e-15)
        # the first order is X Sigma / T (Sigma the key covariance): the centring identity
        cov = softmax.covariance_form(X, keys, T)
        torch.testing.assert_close(e.first_order, cov["first_order"], rtol=1e-11, atol=1e-15)
        torch.testing.assert_close(cov["C"], keys.shape[0] * (cov["Sigma"] + torch.outer(cov["xbar"], cov["xbar"])),
                                   rtol=1e-12, atol=1e-14)
        # the second-order term: R = c_2 / T^2 + O(T^-3), c_2 = E_k[(k - kbar) <x, k - kbar>^2] / 2
        Kc = keys - keys.mean(0)
        S = X @ Kc.T
        c2 = (S**2) @ Kc / (2 * keys.shape[0])
        rel = float((e.remainder - c2 / T**2).norm() / e.remainder.norm())
        assert rel < 3.0 / T  # the next term is O(1/T^3)
    # far out, the first-order sum is softmax to O(1/T^2): the remainder relative to the first order falls like 1/T
    rel = [float(softmax_expansion(X, keys, temperature=T).remainder.norm()
                 / softmax_expansion(X, keys, temperature=T).first_order.norm()) for T in (1e3, 1e4)]
    assert rel[1] < 1e-4 and rel[0] / rel[1] == pytest.approx(10, rel=0.01)


def test_symbolic_expansion_is_the_cumulant_series():
    r = softmax.expansion_symbolic(3, 2, 2)
    assert r["holds"] and r["proxy_identity"] and r["C_split"]
    assert len(r["coefficients"]) == 3
    # a wrong second-order form is caught
    import sympy as sp

    wrong = r["cumulant"][2] * 2
    assert not all(sp.expand(e) == 0 for e in (r["coefficients"][2] - wrong))


def test_proxy_terms_measure_what_they_say():
    X = unit_rows(pixels(20, 8, 4))
    far = softmax.proxy_terms(X, 1e3)
    near = softmax.proxy_terms(X, 0.3)
    assert far["expansion_error"] < 1e-2 < near["expansion_error"]
    assert far["centred_error"] < 1e-2  # the first-order term is the centred proxy
    assert 0.0 <= far["proxy_error"] <= 1.0
    # proxy_error is the sine between softmax's varying part and G X
    e = softmax_expansion(X, temperature=1e3)
    dev = (e.exact - e.constant).flatten()
    cos = float(dev @ e.linearized.flatten() / (dev.norm() * e.linearized.norm()))
    assert far["proxy_error"] == pytest.approx(math.sqrt(1 - cos**2), rel=1e-9)
    # at a high temperature the features collapse onto the mean: their spread shrinks like 1/T
    assert softmax.proxy_terms(X, 1e4)["spread_softmax"] == pytest.approx(far["spread_softmax"] / 10, rel=1e-2)


# --------------------------------------------------------------------------- the kernels


def test_kernel_condition_numbers_are_float64_and_match_the_gram():
    X = unit_rows(pixels(15, 20, 5)).float()  # float32 input: computed in float64 all the same
    T = 0.7
    ks = softmax.kernel_spectra(X, T)
    K = softmax.softmax_feature_gram(X.double(), T)
    assert K.dtype == torch.float64
    assert ks["kappa_softmax"] == pytest.approx(kappa(K), rel=1e-6)
    assert ks["kappa_proxy"] == pytest.approx(kappa(gram_cubed(X.double())), rel=1e-6)
    assert ks["kappa_proxy"] == pytest.approx(ks["kappa_G"] ** 3, rel=1e-8)  # kappa(G^3) = kappa(G)^3
    Fh = unit_rows(softmax_attention(X.double(), X.double(), T))
    assert ks["kappa_softmax_ntk"] == pytest.approx(kappa(ntk_relu(Fh)), rel=1e-9)
    assert ks["kappa_softmax_unit"] == pytest.approx(kappa(softmax.softmax_feature_gram(X.double(), T, normalize=True)), rel=1e-6)
    # hard attention (T -> 0): the softmax features are the rows themselves, the kernel G
    assert softmax.kernel_spectra(X, 1e-4)["kappa_softmax"] == pytest.approx(ks["kappa_G"], rel=1e-9)


def test_a_condition_number_beyond_float64_is_reported_with_the_rank():
    X = unit_rows(pixels(6, 8, 2))
    F = torch.cat([X[:3], X[:3] + 1e-17 * X[3:]])  # rows equal to rounding: rank 3
    out = softmax.feature_spectra(F, "f")
    assert out["kappa_f"] is None and out["rank_f"] < 6
    with pytest.raises(RankDeficientError):
        kappa_d(F)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_temperature_not_positive_or_finite_is_refused(T):
    X = pixels(4, 3)
    for call in (lambda: softmax_attention(X, temperature=T), lambda: softmax_weights(X, temperature=T),
                 lambda: softmax_expansion(X, temperature=T), lambda: SoftmaxAttention(X, T),
                 lambda: softmax.softmax_attn(X, 4, temperature=T), lambda: softmax.proxy_terms(X, T)):
        with pytest.raises(ValueError, match=r"temperature must be a positive finite number.*got .*pass a positive"):
            call()


@pytest.mark.parametrize("T", ["1.0", True, None, [1.0]])
def test_temperature_of_the_wrong_kind_is_a_type_error(T):
    with pytest.raises(TypeError, match="temperature must be a positive finite number"):
        check_temperature(T)


def test_named_temperatures():
    assert softmax.resolve_temperature("sqrt(d)", 784) == 28.0
    assert softmax.resolve_temperature("1/sqrt(d)", 784) == pytest.approx(1 / 28)
    assert softmax.resolve_temperature("0.3", 784) == 0.3
    assert softmax.resolve_temperature(2, 784) == 2.0
    with pytest.raises(ValueError, match="sqrt"):
        softmax.resolve_temperature("hot", 784)
    with pytest.raises(ValueError, match="positive finite"):
        softmax.resolve_temperature("-1", 784)


def test_large_finite_scores_never_overflow():
    """A max-subtracted logsumexp: scores up to 1e300 give one-hot weights, never inf or NaN."""
    X = pixels(5, 3)
    A = softmax_weights(X, temperature=1e-300)  # scores up to ~1e300
    assert bool(torch.isfinite(A).all())
    torch.testing.assert_close(A.sum(1), torch.ones(5, dtype=torch.float64))
    assert set(torch.unique(A).tolist()) <= {0.0, 1.0}
    # the textbook formula exp(s) / sum exp(s) would give NaN here
    S = X @ X.T / 1e-300
    assert bool(torch.isnan(torch.exp(S) / torch.exp(S).sum(1, keepdim=True)).any())
    att = SoftmaxAttention(unit_rows(X), 1e-30)
    assert bool(torch.isfinite(att(X.float())).all())


def test_scores_beyond_float64_are_reported_not_returned_as_nan():
    X = pixels(4, 3)
    with pytest.raises(ScaleError, match=r"temperature overflow float64.*temperature = 1e-310.*raise temperature to at least"):
        softmax_attention(X, temperature=1e-310)
    with pytest.raises(OverflowError):  # ScaleError is also an OverflowError
        softmax_weights(X, temperature=1e-310)
    with pytest.raises(ScaleError, match=r"<x, k> overflow float64 .*X has entries up to 9.7e\+199.*scale X and X_keys down"):
        softmax_attention(X * 1e200, temperature=1.0)
    # float32 features: the model's dtype decides; the message says to use float64
    att = SoftmaxAttention(X, 1e-38, unit_queries=False)
    with pytest.raises(ScaleError, match="use float64"):
        att(X.float() * 10)
    assert bool(torch.isfinite(att(X * 10)).all())  # the same in float64 is fine


def test_softmax_weights_give_softmax_attention():
    """softmax_attention (checked against an explicit loop in test_attention) is its weights times the keys."""
    X, keys = pixels(3, 4, 1), pixels(5, 4, 2)
    torch.testing.assert_close(softmax_weights(X, keys, 0.7) @ keys, softmax_attention(X, keys, temperature=0.7))
    assert attention.softmax_attention is softmax_attention


# --------------------------------------------------------------------------- the experiments


def test_experiment_configs_validate_and_cells():
    from linattn.experiments import part4_softmax as p4

    cfg = p4.SoftmaxMalleabilityConfig.quick()
    cells = p4._mall_cells(cfg)
    assert len(cells) == len(cfg.seeds) * (2 + len(cfg.temperatures))
    assert {c["temperature"] for c in cells if c["model"] != "softmax"} == {"n/a"}
    with pytest.raises(ValueError, match="temperature"):
        p4.SoftmaxMalleabilityConfig.quick(temperatures=("cold",))
    with pytest.raises(ValueError, match="model"):
        p4.SoftmaxMalleabilityConfig.quick(models=("transformer",))
    pc = p4.ProxyConfig.quick(datasets=("mnist",), ns=(20,), seeds=(0,), temperatures=("1/sqrt(d)", "1"))
    (cell,) = p4._proxy_cells(pc)
    rows = p4.run_proxy_cell(cell)["rows"]
    assert [r["temperature"] for r in rows] == ["1/sqrt(d)", "1"] and rows[0]["T"] == pytest.approx(1 / 28)
    assert rows[0]["kappa_proxy"] == pytest.approx(rows[0]["kappa_G"] ** 3, rel=1e-8)
