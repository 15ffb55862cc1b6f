"""scripts/make_partI_results.py: payload layout, values against independent routes, CLI."""
import importlib.util
import math
import pathlib

import numpy as np
import pytest

from linattn import data

PATH = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "make_partI_results.py"


def load():
    spec = importlib.util.spec_from_file_location("make_partI_results", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kappa_np(K: np.ndarray) -> float:
    ev = np.linalg.eigvalsh(K)
    return float(ev[-1] / ev[0])


def test_quick_payload_on_mnist_matches_independent_spectra():
    mod = load()
    payload, config = mod.quick_payload("mnist", ns=[10, 20], n_premise=20)
    assert list(payload) == ["raw", "global", "pixel", "premise_n20"]
    assert config["ns"] == [10, 20] and config["scale"] == "quick"
    for key, std in mod.PRE.items():
        assert [p["n"] for p in payload[key]] == [10, 20]
        for p in payload[key]:
            assert set(p) == {"n", "kappa", "rank", "needed"} and p["needed"] == p["n"]
            X = data.sample("mnist", p["n"], seed=0, standardize=std)[0].numpy()
            if key == "pixel":  # per-pixel centring removes one direction: rank n - 1
                assert p["kappa"] is None and p["rank"] == p["n"] - 1
            else:  # eigenvalues of G = X X^T directly (the script uses the SVD of X)
                assert p["rank"] == p["n"]
                assert math.isclose(p["kappa"], kappa_np(X @ X.T), rel_tol=1e-9)
    prem = payload["premise_n20"]
    assert prem["kappa_G"] == payload["raw"][1]["kappa"]  # the same 20 rows
    X = data.sample("mnist", 20, seed=0)[0].numpy()
    dist = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
    theta = 2 * np.arcsin(np.clip(dist / 2, 0, 1))
    ntk = np.cos(theta) * (np.pi - theta)  # arc-cosine NTK up to a constant factor
    assert math.isclose(prem["kappa_ntk_relu"], kappa_np(ntk), rel_tol=1e-8)
    assert prem["kappa_ntk_attn"] > prem["kappa_ntk_relu"] > 1


def test_full_train_point_on_a_prefix_of_mnist():
    if not data.available("mnist"):
        pytest.skip("full MNIST not in $LINATTN_DATA")
    mod = load()
    p = mod.full_train_point("mnist", False, n=30)
    X = data.preprocess(data.load("mnist", source="full").x[:30])
    assert p["n"] == 30 and p["rank"] == 30 and p["needed"] == 30
    assert math.isclose(p["kappa"], kappa_np(X @ X.T), rel_tol=1e-9)


def test_max_rel_diff_finds_the_worst_leaf_and_structure_changes():
    mod = load()
    a = {"x": [{"k": 1.0, "r": 3}, {"k": None, "r": 2}], "y": {"z": 2.0}}
    b = {"x": [{"k": 1.0, "r": 3}, {"k": None, "r": 2}], "y": {"z": 2.0 * (1 + 1e-6)}}
    d, where = mod.max_rel_diff(a, b)
    assert where == "/y/z" and math.isclose(d, 1e-6 / (1 + 1e-6), rel_tol=1e-9)
    assert mod.max_rel_diff(a, a)[0] == 0.0
    c = {"x": [{"k": 1.0, "r": 4}, {"k": None, "r": 2}], "y": {"z": 2.0}}
    assert mod.max_rel_diff(a, c)[0] == math.inf
    assert mod.max_rel_diff(a, {"x": a["x"]})[0] == math.inf


def test_cli_help_and_missing_data_message(offline_data, tmp_path, monkeypatch, capsys):
    mod = load()
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0 and "LINATTN_DATA" in capsys.readouterr().out
    out = tmp_path / "results"
    monkeypatch.setenv("LINATTN_RESULTS", str(out))
    assert mod.main(["--only", "partI_kappa_full_train"]) == 2
    err = capsys.readouterr().err
    assert "mnist_train.npz not found" in err and "cifar10_train.npz not found" in err
    assert "nothing computed" in err and not out.exists()
