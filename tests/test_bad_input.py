"""Regression tests of issue 11: bad input gets a clear error before any work, never a silent wrong number.

One test (or a few) for every kind of defect the issue lists, each checking the error names the
argument, its value and the fix, and that valid input still gives the same numbers.
"""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from linattn import _validation as V
from linattn import attacks, attention, data, distance, influence, kernels, models, spectra
from linattn.experiments import get
from linattn.train import TrainingDivergedError, adversarial_train, train

F64 = torch.float64


def _linear_loss(d, C=2):
    W = torch.randn(d, C, generator=torch.Generator().manual_seed(0), dtype=F64)
    model = lambda z: z.reshape(len(z), -1).to(F64) @ W  # noqa: E731
    return model, attacks.loss_closure(model, torch.arange(4) % C, "ce")


# --------------------------------------------------------------------------- silent wrong results


@pytest.mark.parametrize("name", ["fgsm", "pgd", "mim", "noise"])
def test_attacks_refuse_inputs_outside_the_clip_box(name):
    """Standardised inputs in [-2, 2] were moved by about 2 at eps 0.1 (projected into [0, 1])."""
    _, fn = _linear_loss(5)
    g = torch.Generator().manual_seed(0)
    x_std = 4 * torch.rand(4, 5, generator=g) - 2
    with pytest.raises(ValueError, match=r"x has values in \[-.*outside clip = \(0, 1\).*more than eps"):
        attacks.attack(name, fn, x_std, eps=0.1)
    # given the box the inputs live in, the attack stays in the ball and the box
    out = attacks.attack(name, fn, x_std, eps=0.1, clip=(-2.0, 2.0))
    assert float((out - x_std).abs().max()) <= 0.1 + 1e-6 and float(out.abs().max()) <= 2.0
    x = torch.rand(4, 5, generator=g)  # pixels in [0, 1]: unchanged behaviour
    out = attacks.attack(name, fn, x, eps=0.1)
    assert float((out - x).abs().max()) <= 0.1 + 1e-6 and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_attacks_refuse_integer_images():
    """uint8 images were moved by 253 (clipped from 0-255 into [0, 1])."""
    _, fn = _linear_loss(5)
    x = np.full((4, 5), 254, dtype=np.uint8)
    with pytest.raises(TypeError, match=r"x must hold floating-point pixels, got dtype torch.uint8.*x / 255"):
        attacks.fgsm(fn, x, eps=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        attacks.pgd(fn, torch.from_numpy(x), eps=0.1, steps=1)


def test_adversarial_training_refuses_inputs_outside_clip_before_any_step():
    net = models.relu_net(5, 8, 2, seed=0)
    W0 = net.W.detach().clone()
    X = 4 * torch.rand(6, 5, generator=torch.Generator().manual_seed(0), dtype=F64) - 2
    with pytest.raises(ValueError, match="X has values in .* outside clip"):
        adversarial_train(net, X, torch.arange(6) % 2, eps=0.1, epochs=1, progress=False)
    assert torch.equal(net.W, W0)  # nothing was trained
    with pytest.raises(ValueError, match="attack_loss='margin' needs class indices"):
        adversarial_train(net, X.clamp(0, 1), 2.0 * (torch.arange(6) % 2) - 1, eps=0.1, epochs=1, loss="mse",
                          attack_loss="margin", progress=False)


def test_mse_training_refuses_labels_whose_accuracy_would_be_wrong():
    """0/1 labels under loss='mse': class-0 points could never count as right."""
    X = torch.rand(8, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    y01 = (torch.arange(8) % 2).to(F64)
    with pytest.raises(ValueError, match=r"targets for loss='mse' with one output must be signed.*0/1 labels.*regression_targets"):
        train(models.relu_net(3, 4, 1), X, y01, loss="mse", epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"loss='mse' needs float targets.*class indices"):
        train(models.relu_net(3, 4, 1), X, torch.arange(8) % 2, loss="mse", epochs=1, progress=False)
    with pytest.raises(ValueError, match="one largest entry a row"):
        train(models.relu_net(3, 4, 2), X, torch.zeros(8, 2, dtype=F64), loss="mse", epochs=1, progress=False)
    # +-1 targets: the accuracy is the sign agreement
    net = models.relu_net(3, 4, 1, dtype=F64)
    res = train(net, X, 2 * y01 - 1, loss="mse", epochs=0, progress=False)
    with torch.no_grad():
        want = float((torch.sign(net(X)[:, 0]) == 2 * y01 - 1).double().mean())
    assert res.accuracy == [want]


@pytest.mark.filterwarnings("ignore:LINATTN_DATA")
def test_mistyped_data_folder_never_stands_in_for_the_whole_split(tmp_path, monkeypatch):
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path / "mistyped"))
    with pytest.raises(data.DataMissingError, match="LINATTN_DATA=.*mistyped.* is not an existing folder"):
        data.task_data("mnist_3v8", 20, pool_per_class=None)
    with pytest.raises(data.DataMissingError, match="mistyped"):
        data.sample("mnist", 20, pool_per_class=None)
    with pytest.raises(data.DataMissingError, match="pool_per_class=600 needs more than the offline MNIST subset"):
        data.sample("mnist", 20, pool_per_class=600)
    with pytest.raises(ValueError, match="source='subset' holds 500"):
        data.sample("mnist", 20, pool_per_class=None, source="subset")
    # the quick pool is the same images offline: it falls back, and says so
    with pytest.warns(UserWarning, match="is not an existing folder"):
        data._warn_fallback.cache_clear()
        X, _ = data.sample("mnist", 20)
    assert X.shape == (20, 784)


def test_data_folder_that_is_a_file_is_an_error(tmp_path, monkeypatch):
    f = tmp_path / "data.txt"
    f.write_text("not a folder")
    monkeypatch.setenv("LINATTN_DATA", str(f))
    with pytest.raises(data.DataMissingError, match="is a file, not a folder"):
        data.load("mnist")
    with pytest.raises(data.DataMissingError, match="is a file"):
        data.available("mnist")


def test_kappa_of_a_float32_gram_is_judged_at_float32_resolution():
    K = torch.diag(torch.tensor([1.0, 1e-3, 1e-9]))
    with pytest.raises(spectra.RankDeficientError, match=r"numerical rank 2 < 3") as err:
        spectra.kappa(K.to(torch.float32))
    assert err.value.tol > 1e-8  # 3 eps32, not 3 eps64
    assert spectra.kappa(K.to(F64)) == pytest.approx(1e9)  # float64: resolvable
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert spectra.kappa_d(X.float()) == pytest.approx(spectra.kappa_d(X), rel=1e-5)


def test_preprocess_scales_every_integer_dtype_and_refuses_float_255():
    x8 = np.array([[0, 51, 255, 102]], np.uint8)
    for dtype in (np.uint8, np.int16, np.int64, np.uint16):
        np.testing.assert_array_equal(data.preprocess(x8.astype(dtype), unit_norm=False),
                                      data.preprocess(x8, unit_norm=False))
    with pytest.raises(ValueError, match=r"x holds float values in \[0, 255\], not pixels in \[0, 1\].*divide"):
        data.preprocess(x8.astype(np.float64))
    with pytest.raises(ValueError, match="integer images must hold 0-255"):
        data.preprocess(np.array([[0, 300]], np.int64))


def test_preprocess_reads_the_channel_layout_for_global_statistics():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    chw = hwc.transpose(0, 3, 1, 2).copy()
    a = data.preprocess(hwc, standardize="global", unit_norm=False).reshape(3, 32, 32, 3)
    b = data.preprocess(chw, standardize="global", unit_norm=False).reshape(3, 3, 32, 32)
    np.testing.assert_allclose(a, b.transpose(0, 2, 3, 1), rtol=1e-15)
    mu, sd = data.GLOBAL_STATS[3072]
    np.testing.assert_allclose(b[:, 0], (chw[:, 0] / 255 - mu[0]) / sd[0])


def test_labels_are_never_truncated():
    y = np.array([0.0, 1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="y must hold integer labels, got non-integer floats"):
        data.balanced_subset(y, 2)
    with pytest.raises(ValueError, match="y must hold integer labels"):
        data.first_per_class(y, 1)
    with pytest.raises(ValueError, match="targets must hold class indices .*0.5"):
        train(models.relu_net(3, 4, 2), torch.rand(4, 3), torch.tensor(y), loss="ce", epochs=1, progress=False)
    with pytest.raises(ValueError, match="y must hold class indices"):
        V.check_labels(y, "y")
    # integer-valued floats are labels
    assert V.check_labels(np.array([0.0, 2.0]), "y").tolist() == [0, 2]


@pytest.mark.parametrize("call", [
    lambda: models.relu_net(3, 4, seed=1.7),
    lambda: data.balanced_subset(np.arange(4) % 2, 2, seed=1.5),
    lambda: attacks.pgd(_linear_loss(3)[1], torch.rand(4, 3), eps=0.1, steps=1, seed=2.0),
    lambda: attacks.random_sign_noise(torch.rand(4, 3), 0.1, seed=0.5),
    lambda: kernels.arccos0_monte_carlo(torch.eye(2, dtype=F64), n_samples=10, seed=1.5),
    lambda: attention.qkv_attention_gram(torch.eye(3, dtype=F64), 1.5),
    lambda: train(models.relu_net(3, 4, 2), torch.rand(4, 3), torch.arange(4) % 2, epochs=1, seed=3.0, progress=False),
])
def test_float_seeds_are_refused_not_truncated(call):
    with pytest.raises(TypeError, match=r"seed must be an integer, got \d\.\d"):
        call()


def test_negative_or_out_of_range_exclude_is_refused():
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match=r"exclude holds index -1, outside \[0, 9\].*not counted from the end"):
        data.balanced_subset(y, 2, exclude=[-1])
    with pytest.raises(ValueError, match="exclude holds index 10"):
        data.balanced_subset(y, 2, exclude=[10])
    with pytest.raises(ValueError, match="exclude must hold integer indices"):
        data.balanced_subset(y, 2, exclude=[1.5])
    assert 3 not in data.balanced_subset(y, 8, exclude=3)


def test_overflow_is_an_error_naming_the_input_never_inf_or_nan():
    X = torch.randn(5, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    with pytest.raises(V.ScaleError, match=r"G\^p of X \(p = 5\) overflows.*scale X down"):
        kernels.gram_power(X * 1e50, 5)
    with pytest.raises(ValueError, match="stacked_cross"):
        attention.stacked_cross(X * 1e100, 3)
    with pytest.raises(OverflowError, match="scale X down"):  # a ScaleError is an OverflowError too
        attention.stacked_self(X * 1e30, 3)
    with pytest.raises(V.ScaleError, match="X_keys"):
        models.mlp_attn(X * 1e160, 4)
    net = models.mlp_attn(X * 1e30, 4)  # C fits float64 but not the model's float32
    with pytest.raises(V.ScaleError, match="attention features x C of the input overflows torch.float32.*float64"):
        net(X)
    with pytest.raises(V.ScaleError, match=r"x has entries up to 2.31e\+39, beyond the range of torch.float32"):
        models.relu_net(8, 4)(X * 1e39)
    with pytest.raises(V.ScaleError, match="underflows to zero"):
        kernels.gram(X * 1e-200)
    # scale-free results are rescaled instead of failing
    torch.testing.assert_close(kernels.attention_feature_gram(X * 1e-120), kernels.attention_feature_gram(X))
    xr = models.relu_net(8, 4).features(torch.full((2, 8), 1e20))  # ||x|| overflows float32: rescaled
    torch.testing.assert_close(xr.norm(dim=1), torch.ones(2))


def test_width_bound_overflow_names_the_log10_form():
    with pytest.raises(OverflowError, match=r"log10_width_bound_v1\(kappa, eps\), which gives"):
        spectra.width_bound_v1(1e60, 0.1)
    with pytest.raises(ValueError, match=r"kappa_d = 1e\+60"):
        spectra.width_bound_v2(1e60, 100)


# --------------------------------------------------------------------------- unhelpful errors


def _fake_split(root, name="mnist", split="test", n=4):
    (root / name).mkdir(parents=True, exist_ok=True)
    path = root / name / f"{name}_{split}.npz"
    np.savez_compressed(path, x=np.zeros((n, 28, 28), np.uint8), y=np.arange(n, dtype=np.uint8) % 10)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupt_checksums_json_blocks_no_verified_file_and_names_itself(tmp_path, monkeypatch):
    path, digest = _fake_split(tmp_path)
    (tmp_path / "checksums.json").write_text("{not json")
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path))
    monkeypatch.setitem(data.KNOWN_SHA256, "mnist/mnist_test.npz", digest)  # a verified file
    data._verified.cache_clear()
    assert len(data.load("mnist", "test")) == 4
    monkeypatch.setitem(data.KNOWN_SHA256, "mnist/mnist_test.npz", "0" * 64)  # only the manifest could vouch
    data._verified.cache_clear()
    with pytest.raises(data.ChecksumError, match=r"checksums.json is not a valid checksums file.*delete it"):
        data.load("mnist", "test")
    (tmp_path / "checksums.json").write_text(json.dumps(["a", "list"]))
    data._verified.cache_clear()
    with pytest.raises(data.ChecksumError, match="checksums.json must map file names"):
        data.load("mnist", "test")


def test_data_verify_reports_every_file_and_fails_on_any_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path))
    assert data.main(["verify"]) == 1  # nothing to verify: a failure, not a silent 0
    assert "no data file found" in capsys.readouterr().out
    good, digest = _fake_split(tmp_path, split="test")
    monkeypatch.setitem(data.KNOWN_SHA256, "mnist/mnist_test.npz", digest)
    bad, _ = _fake_split(tmp_path, split="train")  # matches no checksum
    data._verified.cache_clear()
    assert data.main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "mnist/mnist_train.npz: FAILED" in out and "mnist/mnist_test.npz: ok (4 images)" in out
    assert "cifar10/cifar10_train.npz: missing" in out and "cifar10/cifar10_test.npz: missing" in out
    bad.unlink()
    assert data.main(["verify"]) == 0
    from linattn.cli import main

    assert main(["data", "verify"]) == 0


def test_kappa_d_is_scale_free_and_says_not_psd_for_an_indefinite_matrix():
    X = torch.randn(5, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    k = spectra.kappa_d(X)
    assert spectra.kappa_d(X * 1e-200) == pytest.approx(k, rel=1e-12)  # was "rank 0"
    assert spectra.kappa_d(X * 1e200) == pytest.approx(k, rel=1e-12)  # was a bare OverflowError
    assert spectra.kappa_top(X * 1e200, 3) == pytest.approx(spectra.kappa_top(X, 3), rel=1e-12)
    with pytest.raises(V.ScaleError, match="scale X"):
        spectra.gram_eigenvalues(X * 1e200)  # the eigenvalues themselves do not fit float64
    G = X @ X.T
    G[0, 0] = -5.0
    with pytest.raises(ValueError, match="G is not positive semi-definite") as err:
        spectra.kappa_d(G, d=8)
    assert not isinstance(err.value, spectra.RankDeficientError)
    with pytest.raises(ValueError, match="K is not positive semi-definite"):
        spectra.kappa(G)


def test_messages_do_not_blame_clean_input():
    X = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    net = models.mlp_attn(X * 1e19, 4, 2)  # C ~ 1e38: features overflow float32 (an internal overflow)
    with pytest.raises(V.ScaleError) as err:
        train(net, X, torch.arange(6) % 2, epochs=1, progress=False)
    assert "clean the input" not in str(err.value) and "lower lr" not in str(err.value)
    assert "float64" in str(err.value)
    with pytest.raises(TrainingDivergedError, match="diverged.*lower lr"):  # a real divergence still says lr
        train(models.relu_net(3, 4, 1, dtype=F64), X, 2.0 * (torch.arange(6) % 2) - 1, loss="mse", lr=1e200,
              epochs=3, optimizer="gd", progress=False)


@pytest.mark.parametrize("call, kind, match", [
    (lambda: get("width_sweep").config.quick(tasks="mnist"), TypeError, r"write tasks=\('mnist',\)"),
    (lambda: get("kappa_vs_n").config.quick(datasets="cifar10"), TypeError, r"write datasets=\('cifar10',\)"),
    (lambda: get("width_sweep").config.quick(seeds=3), TypeError, r"seeds must be a tuple of integers"),
    (lambda: get("width_sweep").config.quick(widths=(64.0,)), TypeError, r"the item 64.0"),
    (lambda: distance.compute_distances(distance.DistanceInputs(), "function_abs"), TypeError, "names must be a list"),
    (lambda: data.preprocess("images"), TypeError, "x must be an array"),
    (lambda: V.as_tensor([[1, 2], [3]], "X"), TypeError, "X must be an array"),
    (lambda: V.as_tensor(["a", "b"], "X"), TypeError, "X must be a numeric array"),
    (lambda: data.load(["mnist"]), ValueError, "unknown data set"),
    (lambda: data.TaskData(torch.zeros(2, 1), torch.tensor([0, 1]), torch.zeros(2, 1), torch.tensor([0, 1]),
                           "t", (0, 1), "s").targets_pm1("tset"), ValueError, "split must be 'train' or 'test'"),
    (lambda: influence.influence_loo(torch.eye(3, dtype=F64), torch.eye(3, dtype=F64), torch.eye(3, dtype=F64),
                                     ridge=0.1, target="output", output_class=0.5), TypeError, "output_class"),
    (lambda: attacks.fgsm(_linear_loss(3)[1], torch.rand(4, 3), eps=0.1, clip=0.5), TypeError, "clip must be a pair"),
    (lambda: attacks.loss_closure(lambda z: z, "abc"), TypeError, "y must be an array"),
    (lambda: attacks.pgd(_linear_loss(3)[1], torch.rand(4, 3), eps=0.1, random_start="no"), TypeError, "random_start"),
    (lambda: attention.LinearizedAttention(torch.eye(3, dtype=F64))(torch.ones(3, dtype=torch.bool)), TypeError,
     "input x must be a floating tensor"),
    (lambda: kernels.data_kernel("linear")(torch.rand(2, 3), torch.rand(2, 4)), ValueError, "X_train has d = 4"),
    (lambda: kernels.gram_power(torch.eye(2), 2**70), ValueError, "p must be at most"),
    (lambda: models.relu_net(3, 2**60), ValueError, "choose a smaller width"),
    (lambda: kernels.features64(torch.nn.Linear(2, 2), torch.rand(2, 2)), TypeError, "two-layer network"),
    (lambda: train(models.relu_net(3, 4, 2), torch.rand(4, 3), torch.arange(4) % 2, epochs=1, record_ntk_at=3,
                   progress=False), TypeError, "record_ntk_at must be a list"),
    (lambda: spectra.kappa_d_sweep(lambda n: torch.rand(n, 3), "23"), TypeError, "ns must be a list"),
    (lambda: data.regression_targets([0, 1], 2**40), ValueError, "n_outputs must be at most"),
])
def test_deep_library_errors_are_now_clear(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


def test_cli_reports_a_bad_data_folder_without_a_traceback(tmp_path, monkeypatch, capsys):
    from linattn.cli import main

    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv("LINATTN_DATA", str(f))
    assert main(["info", "--out", str(tmp_path / "store")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "_toc.yml").write_text("parts: [unclosed")
    assert main(["chapters", "--root", str(tmp_path)]) == 2
    assert "not a readable table of contents" in capsys.readouterr().err


def test_valid_numbers_do_not_move():
    """Pixels in [0, 1] with unit rows: the same bits as the arithmetic before the checks."""
    X = torch.rand(6, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    Xh = X / X.norm(dim=1, keepdim=True)
    G = Xh @ Xh.T
    assert torch.equal(kernels.gram(Xh), (G + G.T) / 2)
    s = torch.linalg.svdvals(Xh)
    assert spectra.kappa_d(Xh) == float(s[0] ** 2 / s[3] ** 2)
    C = Xh.T @ Xh
    Fx = Xh @ C
    Fx = Fx / Fx.norm(dim=1, keepdim=True)
    K = Fx @ Fx.T
    assert torch.equal(kernels.attention_feature_gram(Xh), (K + K.T) / 2)
    x8 = (X * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(data.preprocess(x8, unit_norm=False), x8.reshape(6, -1).astype(np.float64) / 255.0)
    assert math.isfinite(spectra.amplification(Xh).log10_kappa_d_power)
