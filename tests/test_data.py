"""The data layer: checksums, shapes, class balance, preprocessing, the errors."""
import hashlib
import os
import pathlib
import shutil

import numpy as np
import pytest
import torch

from linattn import data

FULL = pathlib.Path(os.environ.get("LINATTN_DATA", "/nonexistent"))
needs_full_mnist = pytest.mark.skipif(not (FULL / "mnist" / "mnist_train.npz").exists(),
                                      reason="full MNIST not in LINATTN_DATA")
needs_cifar = pytest.mark.skipif(not (FULL / "cifar10" / "cifar10_train.npz").exists(),
                                 reason="CIFAR-10 not in LINATTN_DATA")


def test_offline_default_is_first_500_per_class(offline_data):
    ds = data.load("mnist")
    assert ds.x.shape == (5000, 28, 28) and ds.x.dtype == np.uint8
    assert np.bincount(ds.y).tolist() == [500] * 10
    assert "offline subset" in ds.source
    assert not data.available("mnist")


def test_offline_default_refuses_other_splits(offline_data):
    with pytest.raises(data.DataMissingError, match="download"):
        data.load("mnist", "test")
    with pytest.raises(data.DataMissingError, match="LINATTN_DATA"):
        data.load("cifar10")


@needs_full_mnist
def test_full_mnist_shapes_and_counts():
    tr, te = data.load("mnist", "train"), data.load("mnist", "test")
    assert tr.x.shape == (60000, 28, 28) and te.x.shape == (10000, 28, 28)
    assert np.bincount(tr.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert tr.source.startswith("full")


@needs_full_mnist
@pytest.mark.filterwarnings("ignore:LINATTN_DATA=/nonexistent-folder is not an existing folder")
def test_offline_subset_equals_first_500_per_class_of_full(monkeypatch):
    full = data.load("mnist")
    idx = data.first_per_class(full.y, 500)
    monkeypatch.setenv("LINATTN_DATA", "/nonexistent-folder")
    sub = data.load("mnist")
    # the subset is grouped by class; within each class both keep the official order,
    # which is all that first_per_class and balanced_subset depend on
    for c in range(10):
        assert np.array_equal(full.x[idx][full.y[idx] == c], sub.x[sub.y == c])


@needs_full_mnist
@pytest.mark.filterwarnings("ignore:LINATTN_DATA=/nonexistent-folder is not an existing folder")
def test_quick_task_data_is_the_same_offline_and_full(monkeypatch):
    a = data.task_data("mnist_3v8", 60, 40, seed=3)
    monkeypatch.setenv("LINATTN_DATA", "/nonexistent-folder")
    b = data.task_data("mnist_3v8", 60, 40, seed=3)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.X_test, b.X_test)
    assert torch.equal(a.y_train, b.y_train)


@needs_cifar
def test_cifar_shapes_and_binary_task():
    tr = data.load("cifar10")
    assert tr.x.shape == (50000, 32, 32, 3) and np.bincount(tr.y).tolist() == [5000] * 10
    t = data.task_data("cifar_car_plane", 20, 10, seed=0)
    assert t.classes == ("airplane", "automobile") and t.d == 3072
    assert t.y_train.tolist().count(0) == 10


def _copy_mnist(tmp_path):
    dst = tmp_path / "mnist"
    dst.mkdir()
    shutil.copy(FULL / "mnist" / "mnist_test.npz", dst / "mnist_test.npz")
    return dst / "mnist_test.npz"


@needs_full_mnist
def test_corrupt_file_is_refused_with_its_name(tmp_path, monkeypatch):
    path = _copy_mnist(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path))
    with pytest.raises(data.ChecksumError, match="mnist_test.npz"):
        data.load("mnist", "test")


@needs_full_mnist
def test_verified_copy_loads_from_another_folder(tmp_path, monkeypatch):
    _copy_mnist(tmp_path)
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path))
    assert len(data.load("mnist", "test")) == 10000


def test_sha256_table_matches_the_shared_readme_format():
    for rel, digest in data.KNOWN_SHA256.items():
        assert rel.endswith(".npz") and len(digest) == 64 and int(digest, 16) >= 0


def test_checksum_helper_is_sha256(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"linattn")
    assert data._sha256(p) == hashlib.sha256(b"linattn").hexdigest()


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "valid")
    with pytest.raises(ValueError, match="unknown task"):
        data.task_data("mnist_1v7", 10)


def test_preprocess_scaling_and_unit_norm():
    x = np.array([[[0, 255], [0, 0]], [[51, 0], [0, 102]]], dtype=np.uint8)
    raw = data.preprocess(x, unit_norm=False)
    assert raw.shape == (2, 4) and raw.max() == 1.0 and raw.dtype == np.float64
    unit = data.preprocess(x)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(unit[1], np.array([51, 0, 0, 102]) / np.hypot(51, 102))


def test_preprocess_standardisations():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = 0  # an always-blank pixel
    z = data.preprocess(x, standardize="pixel", unit_norm=False)
    np.testing.assert_allclose(z[:, 1:].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, 1:].std(0), 1, rtol=1e-12)
    assert (z[:, 0] == 0).all()
    g = data.preprocess(x, standardize="global", unit_norm=False)
    np.testing.assert_allclose(g, (x.reshape(50, -1) / 255 - 0.1307) / 0.3081)
    with pytest.raises(ValueError, match="standardize"):
        data.preprocess(x, standardize="zca")


def test_preprocess_errors():
    with pytest.raises(ValueError, match="all zero"):
        data.preprocess(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        data.preprocess(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2 dimensions"):
        data.preprocess(np.zeros(5))


def test_balanced_subset_is_balanced_seeded_and_disjoint():
    y = np.repeat(np.arange(10), 30)
    a = data.balanced_subset(y, 53, seed=1)
    b = data.balanced_subset(y, 53, seed=1)
    c = data.balanced_subset(y, 53, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    counts = np.bincount(y[a], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 53 and len(set(a)) == 53
    rest = data.balanced_subset(y, 40, seed=1, exclude=a)
    assert not set(rest) & set(a)
    with pytest.raises(ValueError, match="requested"):
        data.balanced_subset(y, 400)


def test_task_data_binary_targets_and_balance(offline_data):
    t = data.task_data("mnist_3v8", 40, 20, seed=0)
    assert t.classes == ("3", "8") and t.n_classes == 2
    assert t.X_train.shape == (40, 784) and t.X_train.dtype == torch.float64
    assert float(t.X_train.min()) >= 0 and float(t.X_train.max()) <= 1
    assert sorted(set(t.targets_pm1().tolist())) == [-1.0, 1.0]
    assert t.y_train.bincount().tolist() == [20, 20]
    # test points are held out of the training points
    tr = {tuple(r) for r in t.X_train.numpy().round(6)}
    assert not any(tuple(r) in tr for r in t.X_test.numpy().round(6))
    with pytest.raises(ValueError, match="binary"):
        data.task_data("mnist", 20).targets_pm1()
    with pytest.raises(ValueError, match="at least 2"):
        data.task_data("mnist", 1)


def test_sample_rows_are_unit_and_seeded(offline_data):
    X, y = data.sample("mnist", 30, seed=4)
    X2, _ = data.sample("mnist", 30, seed=4)
    assert torch.equal(X, X2)
    torch.testing.assert_close(X.norm(dim=1), torch.ones(30, dtype=torch.float64))


def test_idx_and_cifar_binary_converters(tmp_path):
    """The download converters parse the official formats (built here from known arrays)."""
    import gzip
    import io
    import tarfile

    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in imgs.shape)
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(header + imgs.tobytes())
    assert np.array_equal(data._idx(p), imgs)

    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    labels = np.array([4, 0, 9], np.uint8)
    rec = np.concatenate([labels[:, None], chw.reshape(3, -1)], axis=1).tobytes()
    tar = tmp_path / "c.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = len(rec)
        t.addfile(info, io.BytesIO(rec))
    x, y = data._cifar_binary(tar, ["test_batch.bin"])
    assert np.array_equal(y, labels) and np.array_equal(x, chw.transpose(0, 2, 3, 1))


def test_download_needs_network_and_says_so(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    with pytest.raises(data.DataMissingError, match="could not download"):
        data.download("mnist", tmp_path)


F64 = torch.float64


def test_regression_targets():
    from linattn.data import regression_targets

    y = torch.tensor([0, 2, 1])
    torch.testing.assert_close(regression_targets(y, 3), torch.eye(3, dtype=F64)[y])
    torch.testing.assert_close(regression_targets(y, 3, coding="pm1"), 2 * torch.eye(3, dtype=F64)[y] - 1)
    torch.testing.assert_close(regression_targets(torch.tensor([0, 1, 1]), 1), torch.tensor([-1.0, 1, 1], dtype=F64))
    with pytest.raises(ValueError, match="class indices"):
        regression_targets(torch.tensor([0, 3]), 3)


def test_regression_targets_agree_with_task_data_and_check_their_input():
    from linattn.data import TaskData, regression_targets

    y = torch.tensor([1, 0, 0, 1])
    td = TaskData(torch.zeros(4, 2), y, torch.zeros(4, 2), y, "toy", (0, 1), "test")
    torch.testing.assert_close(regression_targets(y, 1), td.targets_pm1())
    torch.testing.assert_close(regression_targets(y, 2), td.targets_onehot())
    torch.testing.assert_close(regression_targets(torch.tensor([1.0, 0.0]), 1), torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(ValueError, match="coding must be 'onehot' or 'pm1', got 'binary'"):
        regression_targets(y, 2, coding="binary")
    with pytest.raises(ValueError, match="integers"):
        regression_targets(torch.tensor([0.5, 1.0]), 2)
    with pytest.raises(ValueError, match="1 dimensions"):
        regression_targets(torch.zeros(2, 2, dtype=torch.long), 2)
