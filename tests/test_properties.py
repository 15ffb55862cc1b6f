"""Property-based tests of the public API (hypothesis): bad input gets a clear error, never a wrong number.

Every public function of the numerical modules is called with arguments drawn at random: random
shapes (including the wrong number of dimensions and empty ones), dtypes (float64, float32,
float16, integers, booleans, lists, strings), values with NaN and inf, extreme scales (1e-300 to
1e300) and out-of-range options, seeds and counts. The contract (:func:`outcome`): each call
either

- returns a documented result, every number in it finite (no NaN, no inf unless the docstring
  says inf), or
- raises a ValueError or TypeError (or a documented subclass: RankDeficientError, ScaleError,
  ChecksumError, ...) whose message names one of the arguments, raised by this package (not
  from inside torch, numpy or scipy).

Anything else -- a NaN out, a RuntimeError or IndexError from torch, a numpy broadcasting error,
a message that names no argument -- fails the property, and hypothesis shrinks it to a minimal
example.

Budget: deterministic (``derandomize=True``, no example database) and about a minute in all on
2 cores with the default number of examples; ``LINATTN_HYPOTHESIS_EXAMPLES=N`` sets the examples a
property (e.g. 1000 for a deeper local search).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from linattn import attacks, attention, data, distance, influence, kernels, models, ntk, predictors, spectra  # noqa: E402
from linattn import train as train_mod  # noqa: E402
from linattn import _validation as V  # noqa: E402

EXAMPLES = int(os.environ.get("LINATTN_HYPOTHESIS_EXAMPLES", "300"))

PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
    # LINATTN_HYPOTHESIS_NOSHRINK=1: report the first failing example as found (faster while debugging)
    phases=[p for p in Phase if not (os.environ.get("LINATTN_HYPOTHESIS_NOSHRINK") and p in (Phase.shrink, Phase.explain))],
)

LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) for m in (torch, np))


# --------------------------------------------------------------------------- the contract


def _names_one(msg: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)


def _raised_by_library(exc: BaseException) -> str | None:
    tb, last = exc.__traceback__, None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last if last and last.startswith(LIBRARY_DIRS) else None


def assert_finite(out, *, allow_inf: bool = False, path: str = "result") -> None:
    """Every number in ``out`` (tensors, arrays, floats, tuples, dataclasses, dicts) is finite."""
    if isinstance(out, torch.Tensor):
        if out.is_floating_point():
            bad = torch.isnan(out) if allow_inf else ~torch.isfinite(out)
            assert not bool(bad.any()), f"{path} has NaN{'' if allow_inf else ' or inf'}: {out}"
    elif isinstance(out, np.ndarray):
        if out.dtype.kind == "f":
            bad = np.isnan(out) if allow_inf else ~np.isfinite(out)
            assert not bad.any(), f"{path} has NaN{'' if allow_inf else ' or inf'}"
    elif isinstance(out, float):
        assert not math.isnan(out) and (allow_inf or math.isfinite(out)), f"{path} = {out}"
    elif isinstance(out, dict):
        for k, v in out.items():
            assert_finite(v, allow_inf=allow_inf, path=f"{path}[{k!r}]")
    elif isinstance(out, (list, tuple)):
        for i, v in enumerate(out):
            assert_finite(v, allow_inf=allow_inf, path=f"{path}[{i}]")
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        for f in dataclasses.fields(out):
            assert_finite(getattr(out, f.name), allow_inf=allow_inf, path=f"{path}.{f.name}")


def outcome(fn, *args, names, allow=(), allow_inf: bool = False, finite: bool = True, **kwargs):
    """Call ``fn``: its finite result, or None after a clean ValueError / TypeError naming one of ``names``.

    ``allow``: further exception types the function documents (e.g. DataMissingError).
    """
    label = getattr(fn, "__name__", "call")
    try:
        out = fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        event(f"{label}: {type(exc).__name__}")
        msg = str(exc)
        where = _raised_by_library(exc)
        assert where is None, f"{type(exc).__name__} raised inside {where}: {msg}"
        assert _names_one(msg, names), f"{type(exc).__name__} names none of {list(names)}: {msg}"
        return None
    except allow:
        event(f"{label}: documented error")
        return None
    event(f"{label}: result")
    if finite:
        assert_finite(out, allow_inf=allow_inf)
    return out


# --------------------------------------------------------------------------- strategies

BAD = 20  # percent of draws in which an argument is corrupted (so that about half the calls are valid)
BAD_SCALES = (1e-300, 1e-150, 1e-20, 1e20, 1e150, 1e300)
BAD_DTYPES = ("float32", "float16", "int64", "uint8", "bool", "list")


def maybe(valid, invalid, percent: int = BAD):
    """``valid`` most of the time, ``invalid`` in ``percent`` % of the draws."""
    return st.integers(0, 99).flatmap(lambda u: invalid if u < percent else valid)


@st.composite
def arrays(draw, rows=(1, 6), cols=(1, 6), ndims=(2,), unit=False, nonneg=False, pixels=False, dtypes=("float64",),
           scales=(1.0,), specials=True, torch_out=True, bad: int = BAD):
    """An array-like of ``ndims`` dimensions, (rows, cols, ...) float64 entries (Gaussian; ``nonneg``:
    absolute values; ``pixels``: uniform in [0, 1]; ``unit``: unit rows), as a tensor or a numpy array.

    In ``bad`` % of the draws one thing is corrupted: the dtype (float32, float16, integers, booleans,
    a nested list), the number of dimensions, an empty first dimension, the scale (1e-300 .. 1e300),
    or a NaN / inf entry.
    """
    corrupt = draw(st.sampled_from(["dtype", "ndim", "empty", "scale", "scale", "special"])) \
        if specials and draw(st.integers(0, 99)) < bad else None
    ndim = draw(st.sampled_from(ndims))
    if corrupt == "ndim":
        ndim = draw(st.sampled_from([d for d in (0, 1, 2, 3) if d not in ndims]))
    if ndim == 0:
        shape: tuple = ()
    else:
        shape = (0 if corrupt == "empty" else draw(st.integers(*rows)),)
        shape += tuple(draw(st.integers(*cols)) for _ in range(ndim - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = rng.uniform(0.0, 1.0, shape) if pixels else rng.standard_normal(shape)
    if nonneg:
        base = np.abs(base)
    if unit and base.ndim == 2 and base.shape[1]:
        norms = np.linalg.norm(base, axis=1, keepdims=True)
        base = base / np.where(norms == 0, 1.0, norms)
    a = base * draw(st.sampled_from(BAD_SCALES if corrupt == "scale" else scales))
    if corrupt == "special" and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    kind = draw(st.sampled_from(BAD_DTYPES if corrupt == "dtype" else dtypes))
    if kind == "pixels255":  # 0-255 integer images
        return np.round(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1) * 255).astype(np.uint8) \
            if a.dtype.kind == "f" and corrupt != "special" else a
    if kind == "float_int":  # integer labels as floats
        kind, a = "float64", np.round(a * 3)
    if kind == "list":
        return a.tolist()
    if kind in ("int64", "uint8"):
        with np.errstate(invalid="ignore", over="ignore"):
            a = np.nan_to_num(np.round(a * 3), nan=0, posinf=255, neginf=0)
            a = a.clip(0 if kind == "uint8" else -1e9, 255 if kind == "uint8" else 1e9).astype(kind)
    elif kind == "bool":
        a = a > 0
    else:
        with np.errstate(over="ignore"):
            a = a.astype(kind)
    if torch_out and draw(st.booleans()):
        return torch.from_numpy(np.ascontiguousarray(a))
    return a


@st.composite
def psd_matrices(draw, n=(1, 6), bad: int = BAD):
    """A symmetric PSD matrix X X^T; in ``bad`` % of the draws indefinite, asymmetric or of extreme scale."""
    k = draw(st.integers(*n))
    X = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((k, draw(st.integers(1, 6))))
    K = X @ X.T
    if draw(st.integers(0, 99)) < bad:
        flip = draw(st.sampled_from(["indefinite", "asymmetric", "scale", "scale", "float32", "nan"]))
        if flip == "indefinite":
            K[0, 0] = -abs(K[0, 0]) - 1.0
        elif flip == "asymmetric" and k > 1:
            K[0, 1] += 1.0
        elif flip == "scale":
            K = K * draw(st.sampled_from(BAD_SCALES))
        elif flip == "float32":
            K = K.astype(np.float32)
        elif flip == "nan":
            K[0, 0] = np.nan
    return torch.from_numpy(K) if draw(st.booleans()) else K


def ints(lo=1, hi=8):
    return maybe(st.integers(lo, hi), st.sampled_from([lo - 1, -3, 0.5, 2.0, "3", None, True, 2**70]))


seeds = maybe(st.integers(0, 2**31), st.sampled_from([-1, 1.5, 2.0, "0", None, 2**64]))


def reals(lo=0.0, hi=1.0):
    return maybe(st.floats(lo, hi), st.sampled_from([-1.0, 1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan,
                                                      "0.1", None, True]))


def option(*valid):
    return maybe(st.sampled_from(valid), st.sampled_from(["", "bogus", None, 1, ["a"], valid[0].upper()]))


# --------------------------------------------------------------------------- validation helpers


@PROPERTY
@given(value=st.one_of(ints(), reals(), seeds, st.sampled_from([np.int64(3), np.float64(0.5), np.bool_(True)])),
       lo=st.integers(-2, 2))
def test_scalar_helpers_return_clean_values_or_name_the_argument(value, lo):
    out = outcome(V.check_int, value, "n", minimum=lo, names=("n",))
    if out is not None:  # an integer, never a truncated float
        assert out == value and isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    seed = outcome(V.check_seed, value, names=("seed",))
    if seed is not None:
        assert seed == value and 0 <= seed < 2**63
    eps = outcome(V.check_range, value, "eps", 0.0, 1.0, names=("eps",))
    if eps is not None:
        assert 0.0 <= eps <= 1.0 and not isinstance(value, (str, bool))
    flag = outcome(V.check_bool, value, "flag", names=("flag",))
    assert flag is None or isinstance(value, (bool, np.bool_))


CLIPS = maybe(st.sampled_from([(0.0, 1.0), None, (-1.0, 1.0)]), st.sampled_from([(1, 0), "01", (0, math.nan), 5, (0,)]))


@PROPERTY
@given(x=arrays(ndims=(1, 2), pixels=True), clip=CLIPS)
def test_array_helpers(x, clip):
    t = outcome(V.as_tensor, x, "X", ndim=2, names=("X",))
    if t is not None:
        assert t.dtype == torch.float64 and t.ndim == 2
    c = outcome(V.check_clip, clip, names=("clip",))
    if t is not None and c is not None:
        y = outcome(V.check_pixels, t, "X", c, names=("X",))
        if y is not None and t.numel():
            assert c[0] <= float(t.min()) and float(t.max()) <= c[1]
    labels = outcome(V.check_labels, x, "y", names=("y",))
    if labels is not None:
        assert labels.dtype == torch.int64 and bool((labels >= 0).all())


# --------------------------------------------------------------------------- attacks


def _linear(d: int, C: int):
    W = torch.randn(d, C, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return lambda z: z.reshape(len(z), -1).to(torch.float64) @ W


@PROPERTY
@given(
    x=arrays(rows=(1, 5), cols=(1, 4), ndims=(2, 3), pixels=True),
    eps=reals(),
    name=option("fgsm", "pgd", "mim", "noise"),
    clip=maybe(st.sampled_from([(0.0, 1.0), None, (-2.0, 2.0)]), st.sampled_from([(0.2, 0.8), (1.0, 0.0), "clip"])),
    seed=seeds,
    loss=option("ce", "mse", "margin"),
    labels=maybe(st.sampled_from(["int", "float"]), st.sampled_from(["neg", "big", "short", "nonint"])),
    shift=maybe(st.just(0.0), st.sampled_from([-1.0, 2.0, 254.0])),
)
def test_attacks_stay_in_the_eps_ball_and_the_clip_box(x, eps, name, clip, seed, loss, labels, shift):
    if shift and isinstance(x, (np.ndarray, torch.Tensor)) and x.dtype in (np.float64, torch.float64):
        x = x + shift  # inputs outside the clip box (standardised pixels, 0-255 images)
    n = len(x) if hasattr(x, "__len__") else 1
    d = int(np.prod(np.shape(x)[1:])) if np.ndim(x) >= 2 else 1
    y = {"int": torch.arange(n) % 2, "float": torch.zeros(n, 2, dtype=torch.float64),
         "neg": -torch.ones(n, dtype=torch.long), "big": torch.full((n,), 5),
         "short": torch.zeros(max(n - 1, 0), dtype=torch.long), "nonint": torch.full((n,), 0.5)}[labels]
    fn = outcome(attacks.loss_closure, _linear(max(d, 1), 2), y, loss, names=("y", "loss"))
    if fn is None:
        return
    kw = {"steps": 2} if name in ("pgd", "mim") else {}
    out = outcome(attacks.attack, name, fn, x, eps=eps, seed=seed, clip=clip, **kw,
                  names=("x", "eps", "clip", "seed", "attack", "y", "loss_fn", "model output", "model"))
    if out is None:
        return
    x0 = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(out.dtype)
    assert out.shape == x0.shape
    assert float((out - x0).abs().max()) <= float(eps) * (1 + 1e-6) + 1e-6, "left the eps ball"
    if clip is not None:
        assert float(out.min()) >= clip[0] and float(out.max()) <= clip[1], "left the clip box"


# --------------------------------------------------------------------------- training


@PROPERTY
@given(
    X=arrays(rows=(1, 6), cols=(3, 3), pixels=True),
    targets=maybe(st.sampled_from(["index", "float_index", "pm1", "onehot"]),
                  st.sampled_from(["zero_one", "nonint", "short", "nan", "big", "int_index_mse", "tied"])),
    loss=option("ce", "mse"),
    lr=maybe(st.sampled_from([1e-2, 1e-1]), st.sampled_from([0.0, -1.0, 1e30, math.nan, "0.1"])),
    batch=maybe(st.sampled_from([None, 2]), st.sampled_from([0, 2.5, "2"])),
    seed=seeds,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    adversarial=st.booleans(),
)
def test_train_reports_finite_history_or_names_the_argument(X, targets, loss, lr, batch, seed, dtype, adversarial):
    n = len(X) if hasattr(X, "__len__") else 0
    mse = loss == "mse"
    C = 1 if mse and targets in ("pm1", "zero_one", "nan", "int_index_mse") else 2
    idx = torch.arange(n) % 2
    y = {"index": idx, "float_index": idx.double(), "pm1": 2.0 * idx - 1, "zero_one": idx.double(),
         "onehot": torch.nn.functional.one_hot(idx, 2).double(), "nonint": idx + 0.5, "short": idx[:-1],
         "nan": torch.full((n,), math.nan), "big": idx + 7, "int_index_mse": idx,
         "tied": torch.zeros(n, 2, dtype=torch.float64)}[targets]
    if mse and targets == "index":
        y = data.regression_targets(idx, C) if n else y
    net = models.relu_net(3, 4, C, seed=0, dtype=dtype)
    kw = dict(loss=loss, lr=lr, batch_size=batch, seed=seed, epochs=1, progress=False, weight_decay=0.0)
    fn = train_mod.train
    if adversarial:
        fn = train_mod.adversarial_train
        kw.update(eps=0.1, steps=1, step_size=0.05)
    res = outcome(fn, net, X, y, **kw, names=("X", "targets", "loss", "lr", "batch_size", "seed", "eps", "model"))
    if res is not None:
        assert len(res.loss) == 2 and all(0.0 <= a <= 1.0 for a in res.accuracy)
        assert_finite(res.state)
        if mse and C == 1:  # the accuracy is the sign agreement with +-1 targets
            with torch.no_grad():
                out = net(torch.as_tensor(np.asarray(X), dtype=dtype))[:, 0]
            want = float((torch.sign(out.double()) == torch.sign(torch.as_tensor(y, dtype=torch.float64))).double().mean())
            assert res.accuracy[-1] == pytest.approx(want)


# --------------------------------------------------------------------------- data


@PROPERTY
@given(
    x=arrays(rows=(1, 4), cols=(1, 5), ndims=(2, 3, 4), pixels=True, dtypes=("float64", "uint8", "pixels255")),
    standardize=maybe(st.sampled_from([False, True, "pixel", "global"]), st.sampled_from(["zca", None, 1, "Global"])),
    unit_norm=maybe(st.booleans(), st.sampled_from(["yes", None, 1])),
)
def test_preprocess_gives_unit_rows_in_range_or_names_the_argument(x, standardize, unit_norm):
    out = outcome(data.preprocess, x, standardize=standardize, unit_norm=unit_norm,
                  names=("x", "standardize", "unit_norm", "d"))
    if out is not None:
        assert out.dtype == np.float64 and out.ndim == 2
        if unit_norm is True:
            np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-12)
        elif standardize in (False, None):
            assert out.min() >= 0 and out.max() <= 1


@PROPERTY
@given(
    y=arrays(rows=(1, 12), ndims=(1,), nonneg=True, dtypes=("int64", "float_int")),
    n=ints(1, 6),
    seed=seeds,
    exclude=maybe(st.sampled_from([None, [], [0], np.array([1, 2])]), st.sampled_from([[-1], [99], [0.5], "0"])),
    classes=maybe(st.sampled_from([None, [0, 1], [1]]), st.sampled_from([[0, 0], [], "01", [7]])),
)
def test_balanced_subset_draws_distinct_indices_or_names_the_argument(y, n, seed, exclude, classes):
    idx = outcome(data.balanced_subset, y, n, seed=seed, exclude=exclude, classes=classes,
                  names=("y", "n", "seed", "exclude", "classes", "class"))
    if idx is not None:
        assert len(idx) == n and len(set(idx.tolist())) == n
        if exclude is not None:
            assert not set(idx.tolist()) & set(np.asarray(exclude, dtype=np.int64).tolist())
    first = outcome(data.first_per_class, y, n, classes=classes, names=("y", "k", "classes", "class"))
    if first is not None:
        assert np.all(np.diff(first) > 0)


@PROPERTY
@given(y=arrays(rows=(1, 6), ndims=(1,), nonneg=True, dtypes=("int64", "float_int")),
       n_outputs=ints(1, 4), coding=option("onehot", "pm1"))
def test_regression_targets(y, n_outputs, coding):
    out = outcome(data.regression_targets, y, n_outputs, coding=coding, names=("y", "n_outputs", "coding"))
    if out is not None:
        assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}


@PROPERTY
@given(task=option("mnist_3v8", "mnist"), n_train=ints(2, 20), n_test=ints(0, 10), seed=seeds,
       pool=maybe(st.sampled_from([500, 20]), st.sampled_from([None, 600, 0, 2.5])),
       source=option("auto", "subset"))
def test_task_data_offline(task, n_train, n_test, seed, pool, source):
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning that LINATTN_DATA names no folder
        mp.setenv("LINATTN_DATA", "/nonexistent-linattn-data-folder")
        td = outcome(data.task_data, task, n_train, n_test, seed=seed, pool_per_class=pool, source=source,
                     names=("task", "n_train", "n_test", "seed", "pool_per_class", "source", "class"),
                     allow=(data.DataMissingError,))
    if td is not None:
        assert td.X_train.shape[0] == n_train and float(td.X_train.max()) <= 1.0
        assert "offline subset" in td.source and pool is not None and pool <= data.QUICK_POOL


# --------------------------------------------------------------------------- spectra


@PROPERTY
@given(K=st.one_of(psd_matrices(), arrays(rows=(1, 5), cols=(1, 5))),
       rtol=maybe(st.sampled_from([None, 1e-3]), st.sampled_from([2.0, -1.0, "0"])))
def test_kappa_and_rank_of_a_kernel(K, rtol):
    names = ("K", "rtol")
    k = outcome(spectra.kappa, K, rtol=rtol, names=names)
    if k is not None:
        assert k >= 1.0 - 1e-9
    r = outcome(spectra.numerical_rank, K, rtol=rtol, names=names)
    if r is not None:
        assert 0 <= r <= np.shape(K)[0]
    outcome(spectra.eigvalsh_desc, K, names=names)


@PROPERTY
@given(X=arrays(rows=(2, 6), cols=(1, 6)), d=maybe(st.sampled_from([None, None, 3]), st.sampled_from([0, 2.5])),
       r=ints(1, 6), scale=st.sampled_from([1.0, 1e-200, 1e200]))
def test_kappa_d_is_finite_scale_free_or_names_the_argument(X, d, r, scale):
    names = ("X", "G", "d", "r", "A")
    if d is not None:  # the Gram route: G = X X^T of the data
        Xt = outcome(V.as_tensor, X, "X", ndim=2, names=names)
        X = X if Xt is None else Xt @ Xt.T
    kd = outcome(spectra.kappa_d, X, d, names=names)
    if kd is not None:
        assert kd >= 1.0 - 1e-9
        if d is None and isinstance(X, (np.ndarray, torch.Tensor)) and X.dtype in (np.float64, torch.float64):
            Xs = torch.as_tensor(np.asarray(X)) * scale
            k2 = outcome(spectra.kappa_d, Xs, names=names)
            if k2 is not None and float(Xs.abs().max()) > 1e-290:
                assert k2 == pytest.approx(kd, rel=1e-6)
    outcome(spectra.kappa_top, X, r, d, names=names)
    outcome(spectra.gram_eigenvalues, X, d, names=names)
    amp = outcome(spectra.amplification, X, names=names + ("power", "rtol"), allow_inf=True)
    if amp is not None:
        assert math.isfinite(amp.log10_kappa_d_power)


@PROPERTY
@given(ns=maybe(st.sampled_from([[2, 3], [4]]), st.sampled_from([[1], [2.5], "23", 5])), X=arrays(rows=(2, 5), cols=(1, 4)))
def test_kappa_d_sweep(ns, X):
    out = outcome(spectra.kappa_d_sweep, lambda n: X, ns, names=("ns", "n", "sample(n)", "sample"))
    if out is not None:
        assert all(p.kappa is None or p.kappa >= 1.0 - 1e-9 for p in out)


@PROPERTY
@given(kappa=maybe(st.floats(1.0, 1e80), reals()), eps=reals(1e-6, 1.0), n=ints(2, 10**6))
def test_width_bounds(kappa, eps, n):
    names = ("kappa", "eps", "kappa_d", "n", "m", "reference")
    for fn, args in ((spectra.log10_width_bound_v1, (kappa, eps)), (spectra.width_bound_v1, (kappa, eps)),
                     (spectra.log10_width_bound_v2, (kappa, n)), (spectra.width_bound_v2, (kappa, n)),
                     (spectra.orders_beyond, (kappa, eps))):
        outcome(fn, *args, names=names)


# --------------------------------------------------------------------------- kernels and attention


KERNEL_FNS = {
    "gram": lambda X, X2, p: kernels.gram(X),
    "gram_power": lambda X, X2, p: kernels.gram_power(X, p),
    "gram_cubed": lambda X, X2, p: kernels.gram_cubed(X),
    "attention_kernel": lambda X, X2, p: kernels.attention_kernel(X, X2, X_keys=X2),
    "attention_feature_gram": lambda X, X2, p: kernels.attention_feature_gram(X),
    "sensitivity_bound": lambda X, X2, p: kernels.sensitivity_bound(X[0] if np.ndim(X) and len(X) else X, 0.1, X_keys=X2),
    "attention_matrix": lambda X, X2, p: attention.attention_matrix(X),
    "linearized_attention": lambda X, X2, p: attention.linearized_attention(X, X2),
    "softmax_attention": lambda X, X2, p: attention.softmax_attention(X, X2),
    "softmax_expansion": lambda X, X2, p: attention.softmax_expansion(X, X2),
    "stacked_cross": lambda X, X2, p: attention.stacked_cross(X, p),
    "stacked_self": lambda X, X2, p: attention.stacked_self(X, p),
    "truncated_attention_matrix": lambda X, X2, p: attention.truncated_attention_matrix(X, p),
    "qkv_attention_gram": lambda X, X2, p: attention.qkv_attention_gram(X, p),
    "stacked_cross_map": lambda X, X2, p: attention.stacked_cross_map(X, p)(torch.as_tensor(np.asarray(X2))),
    "stacked_self_map": lambda X, X2, p: attention.stacked_self_map(X, p)(torch.as_tensor(np.asarray(X2))),
    "truncated_attention_map": lambda X, X2, p: attention.truncated_attention_map(X, p)(torch.as_tensor(np.asarray(X2))),
    "LinearizedAttention": lambda X, X2, p: attention.LinearizedAttention(X)(torch.as_tensor(np.asarray(X2))),
    "data_kernel_linear": lambda X, X2, p: kernels.data_kernel("linear")(X, X2),
    "data_kernel_attention": lambda X, X2, p: kernels.data_kernel("attention")(X, X2),
    "data_kernel_ntk_relu": lambda X, X2, p: kernels.data_kernel("ntk_relu")(X, X2),
    "data_kernel_ntk_attn": lambda X, X2, p: kernels.data_kernel("ntk_attn")(X, X2),
}
KERNEL_NAMES = ("X", "X2", "X_keys", "x_j", "p", "k", "r", "seed", "M", "input", "d", "d_head", "d_value", "keys",
                "X_train", "kind")


@pytest.mark.parametrize("name", sorted(KERNEL_FNS))
@PROPERTY
@given(X=arrays(rows=(1, 5), cols=(3, 3)), X2=arrays(rows=(1, 5), cols=(3, 3), bad=5, torch_out=False), p=ints(0, 4))
def test_kernels_and_attention_are_finite_or_name_the_argument(name, X, X2, p):
    out = outcome(KERNEL_FNS[name], X, X2, p, names=KERNEL_NAMES)
    if isinstance(out, torch.Tensor) and out.ndim == 2 and name.startswith("gram"):
        assert torch.equal(out, out.T)


UNIT_FNS = {
    "unit_angle": lambda A, B: kernels.unit_angle(A, B),
    "arccos0": lambda A, B: kernels.arccos0(A, B),
    "arccos0_monte_carlo": lambda A, B: kernels.arccos0_monte_carlo(A, B, n_samples=64, seed=0),
    "ntk_relu": lambda A, B: kernels.ntk_relu(A, B),
    "expected_init_gap": lambda A, B: distance.expected_init_gap(A, 4),
    "unit_rows": lambda A, B: models.unit_rows(torch.as_tensor(np.asarray(A))),
}


@pytest.mark.parametrize("name", sorted(UNIT_FNS))
@PROPERTY
@given(A=arrays(rows=(1, 5), cols=(3, 3), unit=True), B=arrays(rows=(1, 4), cols=(3, 3), unit=True, bad=5))
def test_unit_row_kernels(name, A, B):
    out = outcome(UNIT_FNS[name], A, B, names=("Xh", "Xh2", "X", "rows"))
    if out is not None and name in ("unit_angle",):
        assert float(out.min()) >= 0 and float(out.max()) <= math.pi


# --------------------------------------------------------------------------- models and the NTK


@PROPERTY
@given(
    kind=st.sampled_from(["relu", "attn"]),
    keys=arrays(rows=(1, 5), cols=(3, 3), nonneg=True),
    x=arrays(rows=(1, 4), cols=(3, 3), nonneg=True),
    seed=seeds,
    dtype=maybe(st.sampled_from([torch.float32, torch.float64]), st.sampled_from([torch.int64, "float32"])),
    width=ints(1, 16),
)
def test_models_features_and_ntk(kind, keys, x, seed, dtype, width):
    names = ("X_keys", "x", "X", "seed", "dtype", "width", "keys", "d")
    if kind == "relu":
        net = outcome(models.relu_net, 3, width, 2, seed=seed, dtype=dtype, names=names)
    else:
        net = outcome(models.mlp_attn, keys, width, 2, seed=seed, dtype=dtype, names=names)
    if net is None:
        return
    out = outcome(net, x, names=names)
    if out is not None:
        assert out.shape == (len(x), 2)
    for fn in (ntk.empirical_ntk, kernels.ntk_inf, kernels.features64):
        outcome(fn, net, x, names=names)
    outcome(ntk.empirical_ntk, net, x, full=True, names=names)
    outcome(models.check_attention_keys, net, keys, names=names + ("X_train",))
    outcome(models.InputMap.fit, keys, "standardize", names=names + ("X_train",))


@PROPERTY
@given(widths=maybe(st.sampled_from([[4, 8], [2, 16]]), st.sampled_from([[0, 4], [2.5], "48", 4])),
       seeds_=maybe(st.sampled_from([[0], [0, 1]]), st.sampled_from([[-1], [0.5], "0"])),
       errors=arrays(rows=(2, 4), ndims=(1,), nonneg=True), slope=maybe(st.floats(-2, -0.1), reals()),
       target=reals(1e-6, 1.0))
def test_ntk_width_fits(widths, seeds_, errors, slope, target):
    X = torch.rand(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    names = ("widths", "width", "seeds", "seed", "errors", "slope", "target", "c")
    outcome(ntk.ntk_error_vs_width, lambda m, s: models.relu_net(3, m, seed=s, dtype=torch.float64), X, widths, seeds_,
            names=names)
    w = np.arange(1, len(errors) + 1) * 10 if hasattr(errors, "__len__") else errors
    fit = outcome(ntk.fit_power_law, w, errors, names=names)
    if fit is not None:
        outcome(ntk.width_for_error, fit[1], slope, target, names=names, allow_inf=True)
        outcome(ntk.log10_width_for_error, fit[1], slope, target, names=names)


# --------------------------------------------------------------------------- predictors, influence, distances


@PROPERTY
@given(K=psd_matrices(), y=arrays(rows=(1, 6), cols=(1, 3), ndims=(1, 2)), ridge=reals(1e-6, 1.0),
       t=reals(0.0, 100.0), target=option("true_class", "output", "loss"),
       aggregate=option("mean", "sum", "mean_abs", "max_abs"))
def test_kernel_ridge_flow_and_influence(K, y, ridge, t, target, aggregate):
    names = ("K", "K_train", "K_test_train", "K_test", "y", "y_test", "ridge", "t", "target", "B", "output_class",
             "I", "aggregate", "f0_train", "f0_test")
    if np.ndim(y) and len(y) and np.ndim(K) == 2 and len(y) != len(K):  # mostly the same n: the valid path
        y = y[: len(K)] if len(y) > len(K) else y
    outcome(predictors.kernel_regression, K, K, y, ridge=ridge, names=names)
    outcome(predictors.ntk_flow, K, K, y, t, names=names)
    outcome(influence.loo_predictions, K, y, ridge=ridge, names=names)
    n = np.shape(y)[0] if np.ndim(y) else 0
    y_test = (np.arange(n) % 2) * 2 - 1.0 if np.ndim(y) <= 1 else np.arange(n) % max(np.shape(y)[-1], 1)
    I = outcome(influence.influence_loo, K, y, K, ridge=ridge, y_test=y_test, target=target, output_class=0,
                names=names)
    if I is not None:
        outcome(influence.influence_scores, I, aggregate, names=names)


@PROPERTY
@given(a=arrays(rows=(1, 5), cols=(2, 2), ndims=(1, 2)), b=arrays(rows=(1, 5), cols=(2, 2), ndims=(1, 2)),
       K=psd_matrices(n=(3, 3)), K2=psd_matrices(n=(3, 3)))
def test_distances(a, b, K, K2):
    names = ("f_net", "f_ntk", "K", "K_ref", "K_inf", "Theta_inf", "names", "inputs")
    for kw in ({}, {"relative": True}, {"per_output": True}):
        outcome(distance.function_gap, a, b, **kw, names=names)
    outcome(distance.kernel_gap, K, K2, names=names)
    outcome(distance.operator_gap_over_lmin, K, K2, names=names)
    inputs = distance.DistanceInputs(theta_inf=K, theta_init=K2, theta_final=K2, f_net=a, f_ntk=b)
    res = outcome(distance.compute_distances, inputs, names=names, finite=False)
    if res is not None:  # a rank-deficient Theta_inf is the documented NaN with a note
        for v in res.values():
            assert math.isfinite(v["value"]) or (math.isnan(v["value"]) and "rank-deficient" in v["note"]), v
