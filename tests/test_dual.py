"""linattn.dual: target constructions, the fit-and-malleability rows, and their summaries."""
import math

import pytest
import torch

from linattn import dual, kernels, malleability, predictors, stats


def _data(n=30, t=10, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    Xt = torch.rand(t, d, generator=g, dtype=torch.float64)
    return X, Xt


@pytest.mark.parametrize("construction", ["unit_top", "attn_top", "raw_top", "raw_random"])
def test_linear_target_is_linear_in_its_features_and_unit_mean_square(construction):
    X, Xt = _data()
    y, yt = dual.linear_target(construction, X, Xt, seed=3)
    assert y.shape == (30,) and yt.shape == (10,)
    assert float(y.pow(2).mean()) == pytest.approx(1.0, rel=1e-12)
    F = {"unit": X / X.norm(dim=1, keepdim=True), "raw": X}.get(construction.split("_")[0])
    if F is None:  # attention features a(x) = C x^ / ||C x^||
        U = X / X.norm(dim=1, keepdim=True)
        A = U @ (U.T @ U)
        F = A / A.norm(dim=1, keepdim=True)
    # y lies in the column space of F: a least-squares fit on F reproduces it exactly
    coef = torch.linalg.lstsq(F, y[:, None]).solution[:, 0]
    assert torch.allclose(F @ coef, y, atol=1e-10)
    # the same seed gives the same target, another seed another
    assert torch.equal(dual.linear_target(construction, X, Xt, seed=3)[0], y)
    assert not torch.allclose(dual.linear_target(construction, X, Xt, seed=4)[0], y)


def test_top_targets_lie_in_the_top_singular_directions():
    X, Xt = _data()
    y, _ = dual.linear_target("raw_top", X, Xt, seed=0)
    U, s, _ = torch.linalg.svd(X, full_matrices=False)
    inside = U[:, :5] @ (U[:, :5].T @ y)
    assert torch.allclose(inside, y, atol=1e-10)


def test_tail_needs_enough_rows_and_unknown_constructions_are_refused():
    X, Xt = _data(n=30)
    with pytest.raises(ValueError, match="needs 150 singular directions"):
        dual.linear_target("unit_tail", X, Xt)
    with pytest.raises(ValueError, match="construction must be"):
        dual.linear_target("labels", X, Xt)
    with pytest.raises(ValueError, match="columns"):
        dual.linear_target("raw_top", X, Xt[:, :5])


def test_label_targets_flip_exactly_the_asked_fraction_of_training_labels_only():
    y = torch.tensor([0, 1] * 20)
    yt = torch.tensor([1, 0, 1])
    clean, clean_t = dual.label_targets(y, yt)
    assert torch.equal(clean, (y == 1).double() * 2 - 1) and torch.equal(clean_t, torch.tensor([1.0, -1.0, 1.0]))
    noisy, noisy_t = dual.label_targets(y, yt, noise=0.25, seed=1)
    assert int((noisy != clean).sum()) == 10 and torch.equal(noisy_t, clean_t)
    assert torch.equal(dual.label_targets(y, yt, noise=0.25, seed=1)[0], noisy)
    zero_pos, _ = dual.label_targets(y, yt, positive=0)
    assert torch.equal(zero_pos, -clean)
    with pytest.raises(ValueError, match="noise"):
        dual.label_targets(y, yt, noise=1.0)


def test_dual_rows_agree_with_a_direct_fit_and_kernel_malleability():
    X, Xt = _data()
    y, yt = dual.linear_target("raw_random", X, Xt, seed=0)
    rows = dual.dual_rows(X, Xt, {"r": (y, yt)}, ridge=1e-2, eps=0.1, tau=0.2, seed=2, kernel_names=("G", "NTK MLP-Attn"),
                          draw="d0")
    assert [r["kernel"] for r in rows] == ["G", "NTK MLP-Attn"]
    for r in rows:
        kfn = kernels.data_kernel(dual.KERNELS[r["kernel"]])
        K = kfn(X, X)
        kr = predictors.KernelRidge(1e-2).fit(0.5 * (K + K.T), y)
        assert r["test_mse"] == pytest.approx(float((yt - kr.predict(kfn(Xt, X))).pow(2).mean()), rel=1e-10)
        ref = malleability.kernel_malleability(kfn, X, y, Xt, yt, eps=0.1, tau=0.2, ridge=1e-2, seed=2)
        assert r["flip_rate"] == ref.flip_rate and r["spearman"] == pytest.approx(ref.spearman, abs=1e-12)
        assert r["n_selected"] == 6 and r["n_flips"] == round(ref.flip_rate * 6)
        assert r["draw"] == "d0" and r["target"] == "r" and math.isnan(r["test_err"])


def test_dual_rows_label_error_and_input_checks():
    X, Xt = _data()
    g = torch.Generator().manual_seed(0)
    ylab = torch.randint(0, 2, (30,), generator=g)
    y, yt = dual.label_targets(ylab, torch.tensor([0, 1] * 5))
    rows = dual.dual_rows(X, Xt, {"lab": (y, yt, yt)}, kernel_names=("NTK 2L-ReLU",))
    assert 0.0 <= rows[0]["test_err"] <= 1.0
    with pytest.raises(ValueError, match="targets is empty"):
        dual.dual_rows(X, Xt, {})
    with pytest.raises(ValueError, match="kernel name"):
        dual.dual_rows(X, Xt, {"lab": (y, yt)}, kernel_names=("RBF",))
    with pytest.raises(ValueError, match="y_train"):
        dual.dual_rows(X, Xt, {"lab": (y[:-1], yt)})


def _rows():
    out = []
    for seed in range(3):
        for k, (mse, flips) in {"A": (0.1 + seed, 1), "B": (0.5, 3)}.items():
            out.append({"target": "t", "kernel": k, "seed": seed, "train_mse": mse / 2, "test_mse": mse,
                        "test_err": float("nan"), "flip_rate": flips / 10, "n_flips": flips, "n_selected": 10,
                        "spearman": 0.5})
    return out


def test_wins_flip_summary_and_fit_fragility():
    rows = _rows()
    assert dual.wins(rows, "A", "B") == {"t": (1, 3)}          # A's test error 0.1 < 0.5 only in draw 0
    assert dual.wins(rows, "B", "A", "train_mse") == {"t": (2, 3)}
    with pytest.raises(ValueError, match="no draw"):
        dual.wins(rows, "A", "C")
    s = dual.flip_summary(rows)[("t", "B")]
    assert (s["k"], s["n"], s["draws"]) == (9, 30, 3)
    assert (s["lo"], s["hi"]) == pytest.approx(stats.wilson_interval(9, 30))
    assert s["test_mean"] == pytest.approx(0.5) and s["rho_min"] == s["rho_max"] == 0.5
    f = dual.fit_fragility(rows)
    assert f["n"] == 6 and -1 <= f["rho"] <= 1
    with pytest.raises(ValueError, match="at least 3 rows"):
        dual.fit_fragility(rows, targets=("other",))
