"""Tests of linattn.spectra: eigenvalues, ranks, condition numbers, width bounds."""
import math

import numpy as np
import pytest
import torch

from linattn.kernels import gram, gram_power
from linattn.spectra import (
    EPS,
    MODEL_SIZES,
    RankDeficientError,
    amplification,
    eigvalsh_desc,
    gram_eigenvalues,
    kappa,
    kappa_d,
    kappa_top,
    log10_width_bound_v1,
    log10_width_bound_v2,
    numerical_rank,
    orders_beyond,
    width_bound_v1,
    width_bound_v2,
)


def with_singular_values(s, n, d, seed=0):
    """X (n, d) = U diag(s) V^T with random orthogonal U, V: known spectrum of G = X X^T."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    k = len(s)
    return U[:, :k] @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ V[:, :k].T


def test_eigvalsh_desc_matches_numpy():
    X = torch.rand(6, 4, dtype=torch.float64)
    G = gram(X)
    ev = eigvalsh_desc(G)
    assert ev.dtype == torch.float64 and ev.shape == (6,)
    np.testing.assert_allclose(ev.numpy(), np.linalg.eigvalsh(G.numpy())[::-1], rtol=1e-12, atol=1e-13)
    assert bool((ev[:-1] >= ev[1:]).all())


def test_eigvalsh_desc_refuses_non_symmetric_and_non_square():
    with pytest.raises(ValueError, match="symmetric"):
        eigvalsh_desc(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        eigvalsh_desc(torch.ones(2, 3))


def test_numerical_rank_matches_numpy_rule():
    for r in (1, 3, 5):
        X = with_singular_values([3.0, 2.0, 1.5, 1.0, 0.5][:r], 8, 6, seed=r)
        G = gram(X)
        assert numerical_rank(G) == r == np.linalg.matrix_rank(G.numpy(), hermitian=True)
    assert numerical_rank(torch.diag(torch.tensor([1.0, 1e-3, 1e-9])), rtol=1e-6) == 2


def test_kappa_of_known_spectrum():
    X = with_singular_values([4.0, 2.0, 1.0], 3, 5)
    assert math.isclose(kappa(gram(X)), 16.0, rel_tol=1e-12)


def test_kappa_of_rank_deficient_matrix_raises_with_rank():
    X = with_singular_values([4.0, 2.0, 1.0], 6, 5)  # rank 3, n = 6
    with pytest.raises(RankDeficientError, match="numerical rank 3 < 6") as info:
        kappa(gram(X))
    assert info.value.rank == 3 and info.value.needed == 6
    assert isinstance(info.value, ValueError)


def test_kappa_refuses_small_or_zero_or_nan():
    with pytest.raises(ValueError, match="at least 2 rows"):
        kappa(torch.ones(1, 1))
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        kappa(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        kappa(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]))


def test_kappa_d_from_data_and_from_gram_agree():
    X = with_singular_values([5.0, 3.0, 2.0, 1.0], 4, 9, seed=2)  # n = 4 <= d: kappa_d = kappa
    assert math.isclose(kappa_d(X), 25.0, rel_tol=1e-10)
    assert math.isclose(kappa_d(gram(X), d=9), kappa(gram(X)), rel_tol=1e-10)
    Y = with_singular_values([5.0, 3.0, 2.0, 1.0], 10, 4, seed=3)  # n > d: lambda_1 / lambda_d
    ev = np.linalg.eigvalsh(gram(Y).numpy())[::-1]
    assert math.isclose(kappa_d(Y), ev[0] / ev[3], rel_tol=1e-10)
    assert math.isclose(kappa_d(gram(Y), d=4), ev[0] / ev[3], rel_tol=1e-8)


def test_kappa_d_names_the_rank_when_a_feature_is_constant_zero():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(12, 6, generator=g, dtype=torch.float64)
    X[:, 2] = 0  # like MNIST's always-zero pixels: rank G <= d - 1 < min(n, d)
    with pytest.raises(RankDeficientError, match="numerical rank 5 < 6"):
        kappa_d(X)
    assert kappa_d(X[:5]) > 1  # n = 5 <= rank: fine


def test_kappa_d_from_data_resolves_what_the_gram_cannot():
    # kappa(G) = 1e16: below the float64 resolution of G itself, resolvable from the SVD of X
    X = with_singular_values([1.0, 1e-4, 1e-8], 3, 6, seed=4)
    assert math.isclose(kappa_d(X), 1e16, rel_tol=1e-6)
    with pytest.raises(RankDeficientError):
        kappa_d(gram(X), d=6)


def test_kappa_top():
    X = with_singular_values([4.0, 2.0, 1.0, 0.5], 6, 5, seed=5)
    assert math.isclose(kappa_top(X, 2), 4.0, rel_tol=1e-12)
    assert math.isclose(kappa_top(gram(X), 3, d=5), 16.0, rel_tol=1e-10)
    with pytest.raises(RankDeficientError, match="numerical rank 4 < 5"):
        kappa_top(X, 5)
    with pytest.raises(ValueError, match="exceeds n"):
        kappa_top(X, 7)


def test_gram_eigenvalues_pads_zeros_when_n_exceeds_d():
    X = with_singular_values([2.0, 1.0], 5, 3, seed=6)
    ev, tol, d = gram_eigenvalues(X)
    assert d == 3 and ev.shape == (5,)
    np.testing.assert_allclose(ev.numpy(), [4.0, 1.0, 0, 0, 0], atol=1e-14)
    assert math.isclose(tol, (5 * EPS * 2.0) ** 2, rel_tol=1e-12)


def test_amplification_cubes_the_condition_number():
    X = with_singular_values([2.0, 1.5, 1.0], 3, 4, seed=7)
    a = amplification(X)
    assert math.isclose(a.kappa_d, 4.0, rel_tol=1e-12)
    assert math.isclose(a.kappa_d_power, 64.0, rel_tol=1e-10)
    assert math.isclose(a.log10_kappa_d_power, 3 * math.log10(4.0), rel_tol=1e-12)
    # the direct route (G^3 formed, diagonalised) agrees where it can resolve lambda_k
    assert a.direct is not None and a.agrees
    assert math.isclose(a.direct, kappa(gram_power(X, 3)), rel_tol=1e-12)


def test_amplification_does_not_trust_the_formed_cube_when_unresolvable():
    X = with_singular_values([1.0, 1e-3, 1e-6], 3, 5, seed=8)  # kappa(G) = 1e12, kappa(G^3) = 1e36
    a = amplification(X)
    assert a.direct is None and a.agrees is None
    assert math.isclose(a.log10_kappa_d_power, 36.0, rel_tol=1e-6)
    # forming G^3 in float64 cannot see 1e36: its condition number is rounding noise or an error
    with pytest.raises(RankDeficientError):
        kappa(gram_power(X, 3))


def test_width_bounds_values():
    assert math.isclose(width_bound_v1(10.0, 0.1), 1e8, rel_tol=1e-12)
    assert math.isclose(width_bound_v2(10.0, 100), 1e6 * 100 * math.log(100), rel_tol=1e-12)
    assert math.isclose(log10_width_bound_v1(1e3, 1.0), 18.0, rel_tol=1e-12)
    # DIGEST: v1 kappas with the full training sets give the v2 thresholds
    assert f"{width_bound_v2(1.2e3, 60000):.1e}" == "2.0e+24"
    assert f"{width_bound_v2(8.7e3, 50000):.1e}" == "2.3e+29"


def test_width_bounds_overflow_and_log_form():
    with pytest.raises(OverflowError, match="log10_"):
        width_bound_v2(1e60, 10)
    assert math.isclose(log10_width_bound_v2(1e60, 10), 360 + 1 + math.log10(math.log(10)), rel_tol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: width_bound_v1(10, 0.0),
        lambda: width_bound_v1(10, 1.5),
        lambda: width_bound_v1(0.5, 0.1),
        lambda: width_bound_v1(float("nan"), 0.1),
        lambda: width_bound_v2(10, 1),
        lambda: width_bound_v2(-3, 10),
        lambda: orders_beyond(0, 1e12),
        lambda: orders_beyond(1e24, float("inf")),
    ],
)
def test_width_bounds_refuse_bad_input(call):
    with pytest.raises(ValueError):
        call()


def test_orders_beyond_and_model_sizes():
    ref = MODEL_SIZES["paper reference"]
    assert ref.params == 1e12 and "v2" in ref.citation
    assert math.isclose(orders_beyond(1e24, ref.params), 12.0, rel_tol=1e-12)
    assert math.isclose(orders_beyond(1e29, ref.params), 17.0, rel_tol=1e-12)
    assert MODEL_SIZES["GPT-3"].params == 175e9 and "Brown" in MODEL_SIZES["GPT-3"].citation
    assert MODEL_SIZES["PaLM"].params == 540e9 and "Chowdhery" in MODEL_SIZES["PaLM"].citation
    for size in MODEL_SIZES.values():
        assert size.params > 1e8 and len(size.citation) > 10


def test_kappa_d_sweep_reports_rank_where_kappa_stops_existing():
    from linattn.spectra import kappa_d_sweep

    g = torch.Generator().manual_seed(3)
    pool = torch.rand(20, 6, generator=g, dtype=torch.float64)
    pool[:, 0] = 0  # rank <= 5
    pts = kappa_d_sweep(lambda n: pool[:n], [3, 5, 8])
    assert [p.n for p in pts] == [3, 5, 8]
    assert math.isclose(pts[0].kappa, kappa_d(pool[:3]), rel_tol=1e-12) and pts[0].rank == 3
    assert pts[2].kappa is None and pts[2].rank == 5 and pts[2].needed == 6
