"""Tests of linattn.attention: linearized, softmax, stacked, truncated and QKV attention."""
import math

import numpy as np
import pytest
import torch

from linattn.attention import (
    FixedLinearMap,
    LinearizedAttention,
    attention_matrix,
    linearized_attention,
    qkv_attention_gram,
    softmax_attention,
    softmax_expansion,
    stacked_cross,
    stacked_cross_map,
    stacked_self,
    stacked_self_map,
    truncated_attention_map,
    truncated_attention_matrix,
)
from linattn.kernels import gram, gram_power
from linattn.models import TwoLayerNet
from linattn.ntk import empirical_ntk, empirical_ntk_autodiff
from linattn.spectra import kappa, kappa_d


def data(n=6, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64)


def test_existing_api_unchanged():
    X = data()
    torch.testing.assert_close(attention_matrix(X), X.T @ X)
    torch.testing.assert_close(linearized_attention(X), X @ X.T @ X, rtol=1e-13, atol=0)
    att = LinearizedAttention(X)
    torch.testing.assert_close(att(X), linearized_attention(X), rtol=1e-13, atol=0)
    assert att.d == 4


def test_softmax_attention_matches_explicit_loop():
    X, keys = data(3, 4, 1), data(5, 4, 2)
    out = softmax_attention(X, keys, temperature=0.7)
    Xn, Kn = X.numpy(), keys.numpy()
    for i in range(3):
        a = np.exp(Kn @ Xn[i] / 0.7)
        np.testing.assert_allclose(out[i].numpy(), (a / a.sum()) @ Kn, rtol=1e-12)
    default = softmax_attention(X, keys)
    torch.testing.assert_close(default, softmax_attention(X, keys, temperature=2.0))  # sqrt(d) = 2
    # an infinite temperature averages the values
    torch.testing.assert_close(
        softmax_attention(X, keys, temperature=1e12), keys.mean(0).expand(3, 4), rtol=1e-9, atol=0
    )


def test_linearization_of_softmax_is_gx_plus_the_dropped_terms():
    """For inputs s X with s -> 0: out_i = s xbar + (s^3/n)[(G X)_i - (G 1)_i xbar] + O(s^5) (T = 1)."""
    X = data(7, 3, 3)
    n = X.shape[0]
    xbar = X.mean(0)
    G = gram(X)
    first = linearized_attention(X) - (G @ torch.ones(n, dtype=torch.float64))[:, None] * xbar[None]
    for s in (1e-2, 1e-3):
        out = softmax_attention(s * X, temperature=1.0)
        rest = (out - s * xbar) * n / s**3
        assert float((rest - first).abs().max()) < 50 * s**2 * float(first.abs().max())


def test_softmax_expansion_pieces_and_order():
    X, keys = data(5, 4, 10), data(9, 4, 11)
    for T in (10.0, 100.0):
        e = softmax_expansion(X, keys, temperature=T)
        torch.testing.assert_close(e.exact, softmax_attention(X, keys, temperature=T))
        torch.testing.assert_close(e.exact, e.constant + e.first_order + e.remainder, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(e.linearized, linearized_attention(X, keys), rtol=1e-13, atol=0)
        G = X @ keys.T
        torch.testing.assert_close(e.centring, G.sum(1, keepdim=True) * keys.mean(0)[None], rtol=1e-13, atol=0)
    # the remainder is second order: T -> 10 T shrinks it about 100-fold
    r10 = float(softmax_expansion(X, keys, temperature=10.0).remainder.abs().max())
    r100 = float(softmax_expansion(X, keys, temperature=100.0).remainder.abs().max())
    assert 70 < r10 / r100 < 130


def test_softmax_attention_errors():
    with pytest.raises(ValueError):
        softmax_attention(data(), temperature=0.0)
    with pytest.raises(ValueError, match="keys have d"):
        softmax_attention(data(3, 4), data(3, 5))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_stacked_cross_gives_odd_powers(k):
    X = data(5, 4, 4)
    Xk = stacked_cross(X, k)
    Y = X.clone()
    for _ in range(k):
        Y = Y @ X.T @ X
    torch.testing.assert_close(Xk, Y, rtol=1e-12, atol=0)
    ref = np.linalg.matrix_power(X.numpy() @ X.numpy().T, 2 * k + 1)
    np.testing.assert_allclose((Xk @ Xk.T).numpy(), ref, rtol=1e-11)


@pytest.mark.parametrize("k", [1, 2])
def test_stacked_self_gives_powers_of_three(k):
    X = torch.eye(4, 5, dtype=torch.float64) + 0.3 * data(4, 5, 5)  # well conditioned: kappa^9 stays resolvable
    Xk = stacked_self(X, k)
    ref = np.linalg.matrix_power(X.numpy() @ X.numpy().T, 3**k)
    np.testing.assert_allclose((Xk @ Xk.T).numpy(), ref, rtol=1e-10)
    # kappa of the induced kernel is kappa(G)^(3^k), from eigenvalues of the layer-k data
    assert math.isclose(kappa_d(Xk), kappa_d(X) ** (3**k), rel_tol=1e-6)


def test_stacked_self_overflow_is_an_error():
    with pytest.raises(OverflowError, match="scale X down"):
        stacked_self(1e30 * data(), 3)


def test_stacking_cross_vs_self_condition_numbers_differ():
    X = data(4, 6, 6)
    kc = kappa(gram(stacked_cross(X, 2)))
    assert math.isclose(kc, kappa_d(X) ** 5, rel_tol=1e-6)
    assert kappa_d(stacked_self(X, 2)) > 10 * kc  # 3^2 = 9 > 5


def test_truncated_attention_keeps_top_r_eigenvalues_cubed():
    X = data(8, 5, 7)
    r = 3
    Cr = truncated_attention_matrix(X, r)
    assert Cr.shape == (5, 5) and torch.equal(Cr, Cr.T)
    assert int(torch.linalg.matrix_rank(Cr)) == r
    lam = np.linalg.eigvalsh(gram(X).numpy())[::-1]
    K = X @ Cr @ Cr @ X.T
    ev = np.linalg.eigvalsh(K.numpy())[::-1]
    np.testing.assert_allclose(ev[:r], lam[:r] ** 3, rtol=1e-10)
    assert np.abs(ev[r:]).max() < 1e-10 * ev[0]
    # r = rank gives back C
    torch.testing.assert_close(truncated_attention_matrix(X, 5), X.T @ X, rtol=1e-10, atol=1e-12)


def test_truncated_attention_errors():
    X = data(8, 5, 7)
    X[:, 1] = 0  # rank 4
    with pytest.raises(ValueError, match="numerical rank 4"):
        truncated_attention_matrix(X, 5)
    with pytest.raises(ValueError, match="exceeds min"):
        truncated_attention_matrix(X, 6)
    with pytest.raises(ValueError):
        truncated_attention_matrix(X, 0)


def test_feature_maps_reproduce_the_training_rows_and_work_under_a_model():
    X = data(6, 4, 8)
    torch.testing.assert_close(stacked_cross_map(X, 2)(X), stacked_cross(X, 2), rtol=1e-12, atol=0)
    torch.testing.assert_close(stacked_self_map(X, 2)(X), stacked_self(X, 2), rtol=1e-12, atol=0)
    torch.testing.assert_close(truncated_attention_map(X, 2)(X), X @ truncated_attention_matrix(X, 2))
    net = TwoLayerNet(4, 20, 2, feature_map=stacked_self_map(X, 1), seed=0, dtype=torch.float64)
    torch.testing.assert_close(
        empirical_ntk(net, X, full=True), empirical_ntk_autodiff(net, X), rtol=1e-12, atol=1e-14
    )
    with pytest.raises(ValueError, match="expects d = 4"):
        FixedLinearMap(torch.eye(4))(torch.ones(2, 3))


def test_qkv_attention_formula_and_seed():
    X = data(6, 5, 9)
    q = qkv_attention_gram(X, seed=3)
    F = (X @ q.W_Q) @ (X @ q.W_K).T @ (X @ q.W_V)
    torch.testing.assert_close(q.features, F, rtol=1e-12, atol=0)
    M, N = q.W_Q @ q.W_K.T, q.W_V @ q.W_V.T
    torch.testing.assert_close(q.gram, (X @ M @ X.T) @ (X @ N @ X.T) @ (X @ M.T @ X.T), rtol=1e-10, atol=1e-12)
    assert torch.equal(q.gram, qkv_attention_gram(X, seed=3).gram)
    assert not torch.equal(q.gram, qkv_attention_gram(X, seed=4).gram)
    small = qkv_attention_gram(X, seed=0, d_head=2, d_value=3)
    assert small.W_Q.shape == (5, 2) and small.features.shape == (6, 3)


def test_qkv_initialisation_variance_is_one_over_d():
    d = 400
    q = qkv_attention_gram(torch.ones(2, d, dtype=torch.float64), seed=0)
    for W in (q.W_Q, q.W_K, q.W_V):
        assert abs(float(W.var()) * d - 1) < 0.02  # 160,000 draws: sd of the estimate 0.0035
