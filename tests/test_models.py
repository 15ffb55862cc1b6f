"""Tests of linattn.models: shapes, seeds, NTK parametrisation scale, features, errors."""
import math

import pytest
import torch

from linattn.models import (
    InputMap,
    TwoLayerNet,
    attention_keys,
    check_attention_keys,
    mlp_attn,
    network,
    relu_net,
    unit_rows,
    with_attention_keys,
)


def data(n=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64)


def test_shapes_and_dtypes():
    X = data()
    for net in (relu_net(4, 32, 3, seed=0), mlp_attn(X, 32, 3, seed=0)):
        assert net(X).shape == (5, 3) and net(X).dtype == torch.float32
        assert net.W.shape == (32, 4) and net.a.shape == (32, 3)
        assert (net.width, net.d, net.n_outputs) == (32, 4, 3)
        assert set(net.a.unique().tolist()) <= {-1.0, 1.0}
        assert [n for n, _ in net.named_parameters()] == ["W"]
    assert relu_net(4, 8, dtype=torch.float64)(X).dtype == torch.float64
    assert relu_net(4, 8).kind == "relu" and mlp_attn(X, 8).kind == "attn"


def test_same_seed_same_numbers_and_different_seed_different():
    X = data()
    a, b, c = relu_net(4, 16, 2, seed=7), relu_net(4, 16, 2, seed=7), relu_net(4, 16, 2, seed=8)
    assert torch.equal(a.W, b.W) and torch.equal(a.a, b.a) and torch.equal(a(X), b(X))
    assert not torch.equal(a.W, c.W)
    assert torch.equal(mlp_attn(X, 16, seed=1)(X), mlp_attn(X, 16, seed=1)(X))


def test_features():
    X, Xt = data(5, 4, 1), data(3, 4, 2)
    torch.testing.assert_close(relu_net(4, 8, dtype=torch.float64).features(Xt), unit_rows(Xt))
    C = X.T @ X
    net = mlp_attn(X, 8, dtype=torch.float64)
    torch.testing.assert_close(net.features(Xt), unit_rows(Xt @ C), rtol=1e-13, atol=0)
    torch.testing.assert_close(net.forward_features(net.features(Xt)), net(Xt))
    # the forward pass by hand: m^{-1/2} relu(x^ W^T) a
    xh = net.features(Xt)
    ref = torch.clamp(xh @ net.W.T, min=0) @ net.a / math.sqrt(8)
    torch.testing.assert_close(net(Xt), ref)


@pytest.mark.parametrize("width", [16, 1024])
def test_ntk_parametrisation_output_variance_is_one_half_at_any_width(width):
    """f(x) = m^{-1/2} sum_r a_r relu(w_r.x^), w_r.x^ ~ N(0, 1): Var f = E relu(z)^2 = 1/2, mean 0."""
    x = data(1, 6, 3)
    with torch.no_grad():
        outs = torch.stack([relu_net(6, width, seed=s, dtype=torch.float64)(x)[0, 0] for s in range(600)])
    assert abs(float(outs.var()) - 0.5) < 0.1  # sd of the variance estimate ~ 0.03-0.05
    assert abs(float(outs.mean())) < 4 * math.sqrt(0.5 / 600)


def test_errors():
    X = data()
    with pytest.raises(ValueError, match="width must be at least 1"):
        relu_net(4, 0)
    with pytest.raises(ValueError, match="d must be at least 1"):
        relu_net(0, 4)
    with pytest.raises(ValueError, match="n_outputs"):
        relu_net(4, 4, 0)
    with pytest.raises(TypeError, match="integer"):
        relu_net(4, 2.5)
    net = relu_net(4, 8)
    with pytest.raises(ValueError, match="expects d = 4"):
        net(data(2, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        net(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="zero norm"):
        net(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2 dimensions"):
        net(torch.ones(4))
    with pytest.raises(ValueError, match="attention expects d = 4"):
        mlp_attn(X, 8).feature_map(torch.ones(2, 3))


def test_attention_keys_are_unit_rows_or_raw():
    X = data(6, 4)
    torch.testing.assert_close(attention_keys(X), X / X.norm(dim=1, keepdim=True))
    assert torch.equal(attention_keys(X, unit_keys=False), X)
    assert attention_keys(X.float()).dtype == torch.float64
    with pytest.raises(ValueError, match="zero norm"):
        attention_keys(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2 dimensions"):
        attention_keys(torch.ones(4))


def test_with_attention_keys_copies_w_and_head_and_rebuilds_c():
    X, Xp = data(6, 4, seed=0), data(9, 4, seed=1)
    model = mlp_attn(attention_keys(X), 8, 3, seed=2, dtype=torch.float64)
    m2 = with_attention_keys(model, Xp)
    assert m2 is not model and torch.equal(m2.W, model.W) and torch.equal(m2.a, model.a)
    torch.testing.assert_close(m2.feature_map.C, Xp.T @ Xp)
    U = attention_keys(X)
    torch.testing.assert_close(model.feature_map.C, U.T @ U)  # the original is untouched
    relu = relu_net(4, 8, 3)
    assert with_attention_keys(relu, Xp) is relu
    odd = TwoLayerNet(4, 8, 3, feature_map=lambda x: 2 * x)
    with pytest.raises(TypeError, match="LinearizedAttention"):
        with_attention_keys(odd, Xp)


def test_check_attention_keys():
    X = data(6, 4)
    check_attention_keys(mlp_attn(attention_keys(X), 8, seed=0), X)  # float32 C: within tolerance
    check_attention_keys(mlp_attn(X, 8, dtype=torch.float64), X, unit_keys=False)
    check_attention_keys(relu_net(4, 8), X)  # no attention: nothing to check
    with pytest.raises(ValueError, match="unit_keys=True"):
        check_attention_keys(mlp_attn(X, 8, dtype=torch.float64), X)
    with pytest.raises(ValueError, match="not built from X_train"):
        check_attention_keys(mlp_attn(attention_keys(X), 8, dtype=torch.float64), data(6, 4, seed=3))


@pytest.mark.parametrize("input_map", ["none", "center", "standardize"])
def test_network_is_the_two_builders(input_map):
    """network(kind, X, ...) is relu_net / mlp_attn over attention_keys with the map fitted on X."""
    X, Z = data(6, 4, seed=1), data(3, 4, seed=2)
    im = InputMap.fit(X, input_map)
    built = {"relu": relu_net(4, 16, 3, seed=5, dtype=torch.float64, init_scale=0.5, input_map=im),
             "attn": mlp_attn(attention_keys(X, input_map=im), 16, 3, seed=5, dtype=torch.float64,
                              init_scale=0.5, input_map=im)}
    for kind, expected in built.items():
        net = network(kind, X, 16, 3, input_map=input_map, seed=5, dtype=torch.float64, init_scale=0.5)
        assert torch.equal(net(Z), expected(Z))
        assert (net.input_map is None) == (input_map == "none")


def test_network_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        network("softmax", data(), 8)
    with pytest.raises(ValueError, match="input_map"):
        network("relu", data(), 8, input_map="whiten")
