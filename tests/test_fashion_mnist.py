"""Fashion-MNIST in the data layer: checksums, the system copy, the missing-data message, the tasks.

Tests marked ``needs_fashion`` read the real files, from the data folder or from Debian's package
``dataset-fashion-mnist`` (``.ci/run`` installs it); without them they skip, saying how to get them.
The others build small IDX archives of their own and run anywhere.
"""
import gzip
import hashlib
import io
import json
import pathlib
import struct

import numpy as np
import pytest
import torch

from linattn import data

FM = "fashion_mnist"
needs_fashion = pytest.mark.skipif(
    not data.available(FM, "train") or not data.available(FM, "test"),
    reason="Fashion-MNIST not found: `apt-get install dataset-fashion-mnist` (Debian, as root; .ci/run does it) "
           "or `python -m linattn.data download fashion_mnist`",
)
#: Zalando's archives are Debian's with this gzip header (FNAME flag, the file name, this mtime): the
#: compressed streams are identical, so the official files can be rebuilt byte for byte from the package.
OFFICIAL_MTIME = {"train-images-idx3-ubyte.gz": 1504176606, "train-labels-idx1-ubyte.gz": 1504176606,
                  "t10k-images-idx3-ubyte.gz": 1504176627, "t10k-labels-idx1-ubyte.gz": 1504176627}


def _official_bytes(folder: pathlib.Path, fname: str) -> bytes:
    """The official archive ``fname`` rebuilt from the system copy (header name and time restored)."""
    raw = (folder / fname).read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x00", "the system copy's gzip header has changed"
    name = fname[:-3].encode() + b"\0"
    return b"\x1f\x8b\x08\x08" + struct.pack("<I", OFFICIAL_MTIME[fname]) + raw[8:10] + name + raw[10:]


def _idx_bytes(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()


@pytest.fixture
def fake_system(tmp_path, monkeypatch):
    """A small Fashion-MNIST in a fake system folder (4 train, 3 test images), its checksums registered,
    and an empty data folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "system"
    folder.mkdir()
    digests = {}
    for split, n in (("train", 4), ("test", 3)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        for fname, arr in zip(data.IDX_FILES[split], (x, y)):
            payload = _idx_bytes(arr)
            (folder / fname).write_bytes(gzip.compress(payload, mtime=0))
            digests[fname] = hashlib.sha256(payload).hexdigest()
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("LINATTN_DATA", str(empty))
    monkeypatch.setitem(data.SYSTEM_DIRS, FM, (folder,))
    monkeypatch.setitem(data.IDX_SHA256, FM, digests)
    data._load_system_cached.cache_clear()
    yield folder
    data._load_system_cached.cache_clear()


@pytest.fixture
def no_fashion(tmp_path, monkeypatch):
    """No Fashion-MNIST anywhere: an empty data folder and no system copy."""
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("LINATTN_DATA", str(empty))
    monkeypatch.setitem(data.SYSTEM_DIRS, FM, (tmp_path / "not-installed",))
    data._load_system_cached.cache_clear()
    yield empty
    data._load_system_cached.cache_clear()


# --------------------------------------------------------------------------- registration


def test_the_data_set_and_its_tasks_are_registered():
    assert data.DATASETS[FM]["shape"] == (28, 28) and data.DATASETS[FM]["n_classes"] == 10
    assert data.DATASETS[FM]["classes"][0] == "T-shirt/top" and data.DATASETS[FM]["classes"][6] == "Shirt"
    assert data.TASKS[FM] == (FM, tuple(range(10)))
    assert data.TASKS["fashion_tshirt_shirt"] == (FM, (0, 6))
    assert data.input_dim(FM) == data.input_dim("fashion_tshirt_shirt") == 784 and data.input_dim("cifar10") == 3072
    for fname in data.OFFICIAL[FM]:
        assert fname in data.OFFICIAL_SHA256[FM] and fname in data.IDX_SHA256[FM]
    assert sorted(f for pair in data.IDX_FILES.values() for f in pair) == sorted(data.OFFICIAL[FM])


def test_every_experiment_config_accepts_the_tasks():
    from linattn.experiments import part1, part3

    cfg = part3.TableConfig.quick(tasks=(FM, "fashion_tshirt_shirt"))
    assert cfg.tasks == (FM, "fashion_tshirt_shirt")
    assert part3.CurvesConfig.quick(task=FM).task == FM
    assert part1.KappaConfig.quick(datasets=(FM,)).datasets == (FM,)
    assert part1.FullConfig(datasets=(FM,)).datasets == (FM,)
    with pytest.raises(ValueError, match="fashion"):
        part3.TableConfig.quick(tasks=("fashion",))
    cell = dict(part3.MALLEABILITY_TABLES.cells(cfg)[0])
    assert part3.MALLEABILITY_TABLES.data(cell) == [(FM, "train")]  # the quick pool needs the training split
    mnist = dict(cell, task="mnist")
    assert part3.MALLEABILITY_TABLES.work(cell) == pytest.approx(part3.MALLEABILITY_TABLES.work(mnist))  # d = 784


# --------------------------------------------------------------------------- missing data


def test_a_missing_fashion_mnist_says_where_to_get_it(no_fashion):
    assert not data.available(FM) and not data.available(FM, "test")
    for call in (lambda: data.load(FM), lambda: data.load(FM, "test", source="full"),
                 lambda: data.task_data("fashion_tshirt_shirt", 20, 10), lambda: data.sample(FM, 10)):
        with pytest.raises(data.DataMissingError) as err:
            call()
        msg = str(err.value)
        assert "apt-get install dataset-fashion-mnist" in msg
        assert "python -m linattn.data download fashion_mnist" in msg
        assert "fashion-mnist.s3-website" in msg and "zalandoresearch/fashion-mnist" in msg
        assert str(no_fashion / FM) in msg
    with pytest.raises(ValueError, match="offline subset exists for the MNIST training split only"):
        data.load(FM, source="subset")


def test_the_runner_refuses_fashion_cells_without_the_data_and_says_why(no_fashion):
    from linattn import runner

    with pytest.raises(runner.RunnerError, match="dataset-fashion-mnist"):
        runner.check_data({(FM, "train")})


# --------------------------------------------------------------------------- checksums (small fake files)


def test_the_system_copy_is_read_in_place_and_verified(fake_system):
    assert data.available(FM, "train") and data.available(FM, "test")
    ds = data.load(FM, "train")
    assert ds.x.shape == (4, 28, 28) and ds.x.dtype == np.uint8 and ds.y.dtype == np.int64
    assert "dataset-fashion-mnist" in ds.source and str(fake_system) in ds.source
    assert len(data.load(FM, "test", source="full")) == 3
    assert not any(p.suffix == ".npz" for p in fake_system.parent.rglob("*"))  # nothing converted or written


def test_a_corrupt_system_copy_is_refused_with_the_file_named(fake_system, monkeypatch):
    fname = data.IDX_FILES["train"][0]
    path = fake_system / fname
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[-1] ^= 1  # one pixel changed
    path.write_bytes(gzip.compress(bytes(payload), mtime=0))
    with pytest.raises(data.ChecksumError, match=rf"{fname}.*not the official file's.*reinstall"):
        data.load(FM, "train")
    path.write_bytes(b"not gzip at all")
    with pytest.raises(data.ChecksumError, match="not a readable gzip archive"):
        data.load(FM, "train")
    # a payload that matches its checksum but is not an IDX image file
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03junk", mtime=0))
    monkeypatch.setitem(data.IDX_SHA256[FM], fname, hashlib.sha256(b"\x00\x00\x0d\x03junk").hexdigest())
    with pytest.raises(data.ChecksumError, match="not an unsigned-byte IDX file"):
        data.load(FM, "train")


def test_the_data_folder_comes_before_the_system_copy(fake_system, monkeypatch):
    root = pathlib.Path(data.data_dir())
    (root / FM).mkdir()
    x, y = np.zeros((2, 28, 28), np.uint8), np.array([3, 4], np.uint8)
    np.savez_compressed(root / FM / "fashion_mnist_test.npz", x=x, y=y)
    rel = "fashion_mnist/fashion_mnist_test.npz"
    (root / "checksums.json").write_text(json.dumps({rel: data._sha256(root / rel)}))
    ds = data.load(FM, "test")
    assert len(ds) == 2 and ds.source.startswith("full (") and str(root) in ds.source
    assert len(data.load(FM, "train")) == 4  # the other split still from the system copy


def test_verify_reports_the_system_copy(fake_system, capsys):
    assert data.main(["verify"]) == 1  # the data folder itself is empty
    out = capsys.readouterr().out
    assert "fashion_mnist/fashion_mnist_train.npz: missing (system copy: ok, 4 images" in out
    (fake_system / data.IDX_FILES["test"][1]).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    data._load_system_cached.cache_clear()
    assert data.main(["verify"]) == 1
    assert "fashion_mnist/fashion_mnist_test.npz: missing (system copy: FAILED" in capsys.readouterr().out


def test_download_checks_md5_then_sha256_and_says_so(tmp_path, monkeypatch):
    """A served file with the published MD5 but another sha256 is refused (here: the MD5 table patched)."""
    body = b"pretend archive"
    monkeypatch.setitem(data.OFFICIAL, FM, {"train-images-idx3-ubyte.gz": hashlib.md5(body).hexdigest()})
    monkeypatch.setattr(data, "_fetch", lambda url, dest, md5: dest.write_bytes(body))
    with pytest.raises(data.ChecksumError, match="sha256 .* does not match the official 3aede38d"):
        data.download(FM, tmp_path)


# --------------------------------------------------------------------------- the real files


@needs_fashion
def test_shapes_dtypes_range_and_class_counts():
    tr, te = data.load(FM, "train"), data.load(FM, "test")
    assert tr.x.shape == (60000, 28, 28) and te.x.shape == (10000, 28, 28)
    assert tr.x.dtype == np.uint8 and tr.y.dtype == np.int64
    assert int(tr.x.min()) == 0 and int(tr.x.max()) == 255
    assert np.bincount(tr.y).tolist() == [6000] * 10 and np.bincount(te.y).tolist() == [1000] * 10
    mu, sd = data.GLOBAL_STATS_BY_NAME[FM]
    assert float(tr.x.mean() / 255) == pytest.approx(float(mu[0]), abs=5e-5)
    assert float((tr.x / 255.0).std()) == pytest.approx(float(sd[0]), abs=5e-5)


@needs_fashion
def test_the_system_copy_is_the_official_archives():
    """Debian's files with their gzip name and time stamp restored have the published MD5 and sha256."""
    folder = data._system_dir(FM, "train")
    if folder is None:
        pytest.skip("Fashion-MNIST is in the data folder, not installed by the system package")
    for fname in data.OFFICIAL[FM]:
        raw = _official_bytes(folder, fname)
        assert hashlib.md5(raw).hexdigest() == data.OFFICIAL[FM][fname], fname
        assert hashlib.sha256(raw).hexdigest() == data.OFFICIAL_SHA256[FM][fname], fname
        assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == data.IDX_SHA256[FM][fname], fname


@needs_fashion
def test_download_end_to_end_from_the_official_bytes(tmp_path, monkeypatch):
    """download() against a server that hands out the official archives: MD5 and sha256 pass, the .npz
    files and checksums.json are written, and the data folder then serves the same arrays."""
    folder = data._system_dir(FM, "train")
    if folder is None:
        pytest.skip("needs the system package's files to rebuild the official archives")
    served = []

    class Resp(io.BytesIO):
        def __init__(self, body):
            super().__init__(body)
            self.headers = {"Content-Length": str(len(body))}

    monkeypatch.setattr(data.urllib.request, "urlopen",
                        lambda url, timeout=None: served.append(url) or Resp(_official_bytes(folder, url.rsplit("/", 1)[1])))
    out = data.download(FM, tmp_path)
    assert out == tmp_path / FM and all(u.startswith(data.MIRRORS[FM][0]) for u in served) and len(served) == 4
    manifest = json.loads((tmp_path / "checksums.json").read_text())
    assert set(manifest) == {"fashion_mnist/fashion_mnist_train.npz", "fashion_mnist/fashion_mnist_test.npz"}
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path))
    got, want = data.load(FM, "test"), data._load_system(FM, "test")
    assert str(tmp_path) in got.source and np.array_equal(got.x, want.x) and np.array_equal(got.y, want.y)

    # a corrupted download fails its MD5 and is not kept
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: Resp(b"\x1f\x8b broken"))
    with pytest.raises(data.ChecksumError, match="does not match the published"):
        data.download(FM, tmp_path / "again")


@needs_fashion
def test_the_task_split():
    pair = data.task_data("fashion_tshirt_shirt", 40, 20, seed=3)
    assert pair.classes == ("T-shirt/top", "Shirt") and pair.n_classes == 2 and pair.d == 784
    assert pair.X_train.dtype == torch.float64 and pair.X_train.shape == (40, 784) and pair.X_test.shape == (20, 784)
    assert float(pair.X_train.min()) >= 0 and float(pair.X_train.max()) <= 1
    assert torch.bincount(pair.y_train).tolist() == [20, 20] and torch.bincount(pair.y_test).tolist() == [10, 10]
    # train and test are disjoint, and both come from the first 500 training images of classes 0 and 6
    tr = data.load(FM, "train")
    pool = data.first_per_class(tr.y, 500, (0, 6))
    flat = {tr.x[i].tobytes(): i for i in pool}
    as_bytes = lambda X: [np.rint(r.numpy() * 255).astype(np.uint8).tobytes() for r in X]
    idx_tr, idx_te = [flat[b] for b in as_bytes(pair.X_train)], [flat[b] for b in as_bytes(pair.X_test)]
    assert not set(idx_tr) & set(idx_te)
    assert [tr.y[i] for i in idx_tr] == [(0, 6)[int(v)] for v in pair.y_train]
    again = data.task_data("fashion_tshirt_shirt", 40, 20, seed=3)
    assert torch.equal(again.X_train, pair.X_train) and torch.equal(again.y_test, pair.y_test)
    ten = data.task_data(FM, 30, 20, seed=0, pool_per_class=None)  # paper scale: the official test split
    assert torch.bincount(ten.y_test, minlength=10).tolist() == [2] * 10 and ten.source.startswith("full (")


@needs_fashion
def test_global_standardisation_uses_fashion_mnists_own_statistics():
    ds = data.load(FM)
    x = ds.x[:5]
    own = data.preprocess(x, standardize="global", unit_norm=False, dataset=FM)
    mu, sd = data.GLOBAL_STATS_BY_NAME[FM]
    np.testing.assert_allclose(own, (x.reshape(5, -1) / 255.0 - mu) / sd)
    by_d = data.preprocess(x, standardize="global", unit_norm=False)  # d = 784 alone means MNIST's statistics
    assert not np.allclose(own, by_d)
    X, _ = data.sample(FM, 10, standardize="global", unit_norm=False)  # a black pixel is at -mu / sd
    assert float(X.min()) == pytest.approx(float(-mu[0] / sd[0]))
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.preprocess(x, standardize="global", dataset="fashion")
    with pytest.raises(ValueError, match="not the 3072 of a cifar10 image"):
        data.preprocess(x, standardize="global", dataset="cifar10")


# --------------------------------------------------------------------------- the chapter


def test_the_chapter_parses_for_assignments_and_hides_its_solutions():
    import nbformat

    from linattn import assign

    path = pathlib.Path(__file__).resolve().parents[1] / "book" / "part4" / "fashion_mnist.ipynb"
    nb = nbformat.read(path, as_version=4)
    ch = assign.parse_chapter(nb, str(path))
    assert len(ch.blocks) >= 2
    spec = {"chapter": path.stem, "exercises": [{"label": b.label, "title": ch.exercise(b.label).title, "values": []}
                                                for b in ch.blocks]}
    assert assign.solution_traces(assign.student_notebook(nb, ch, spec)) == []
