"""Recompute the stored Part I results of book/part1/spectral_amplification.ipynb.

    python scripts/make_partI_results.py                        # both results (about 5 min on 2 cores)
    python scripts/make_partI_results.py --only partI_cifar10_quick
    python scripts/make_partI_results.py --check                # recompute, compare, write nothing

Results (JSON with provenance, written by ``linattn.results.save`` into ``$LINATTN_RESULTS``,
default the repository's ``results/``):

* ``partI_cifar10_quick``: kappa_d(G) = lambda_1 / lambda_min(n, d) of G = X X^T for CIFAR-10
  rows ``data.sample("cifar10", n, seed=0, standardize=s)`` (the quick-scale pool, the first
  500 training images a class), n in NS, for s = raw / global / pixel; plus, at n = 100, kappa(G)
  and kappa of the infinite-width NTKs of the ReLU net and of MLP-Attn (``kernels.ntk_inf``).
* ``partI_kappa_full_train``: kappa_d(G) of the whole official training split (MNIST 60,000 x 784,
  CIFAR-10 50,000 x 3072), raw and globally standardized; ``kappa`` is None where G is
  rank-deficient (MNIST: rank 712 / 713 < 784).

Needs the full data files in ``$LINATTN_DATA`` (``cifar10/cifar10_train.npz`` for both results,
``mnist/mnist_train.npz`` for the second); a missing file is reported before anything is computed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable

import torch

from linattn import data, kernels, results, spectra
from linattn.models import mlp_attn, relu_net

#: Sample sizes of the CIFAR-10 quick-scale sweep.
NS = [10, 20, 30, 50, 80, 100, 150, 200, 300, 500, 1000]
#: Payload key -> ``standardize`` argument of ``data.sample`` / ``data.preprocess``.
PRE = {"raw": False, "global": "global", "pixel": "pixel"}
#: Payload keys of the whole-training-set result.
FULL_PRE = {"raw": False, "global": "global"}
FULL_SETS = ("mnist", "cifar10")
#: Relative tolerance of ``--check`` (float64 spectra).
RTOL = 1e-9


def quick_payload(name: str = "cifar10", ns=NS, n_premise: int = 100) -> tuple[dict, dict]:
    """The quick-scale kappa_d sweep of ``name`` and the n = ``n_premise`` premise numbers.

    payload[s] = [KappaPoint(n, kappa_d, rank, min(n, d)) as dict for n in ns], X_n (n, d) =
    ``data.sample(name, n, seed=0, standardize=PRE[s])[0]``; payload["premise_n<N>"] =
    {kappa_G: kappa_d(X), kappa_ntk_relu: kappa(Theta_relu (N, N)), kappa_ntk_attn:
    kappa(Theta_attn (N, N))} for the raw unit rows X (N, d). Returns (payload, config).
    """
    ns = [int(n) for n in ns]
    payload: dict = {}
    for key, std in PRE.items():
        pts = spectra.kappa_d_sweep(lambda n: data.sample(name, n, seed=0, standardize=std)[0], ns)
        payload[key] = [p._asdict() for p in pts]
    X, _ = data.sample(name, n_premise, seed=0)
    payload[f"premise_n{n_premise}"] = {
        "kappa_G": spectra.kappa_d(X),
        "kappa_ntk_relu": spectra.kappa(kernels.ntk_inf(relu_net(X.shape[1], 1, seed=0), X)),
        "kappa_ntk_attn": spectra.kappa(kernels.ntk_inf(mlp_attn(X, 1, seed=0), X)),
    }
    config = {"data": f"{name} quick pool (first 500 a class), data.sample(seed=0)", "ns": ns,
              "preprocess": PRE,
              "call": f"spectra.kappa_d_sweep(lambda n: data.sample('{name}', n, seed=0, standardize=std)[0], ns)",
              "premise": f"n = {n_premise}, kernels.ntk_inf of relu_net / mlp_attn, spectra.kappa",
              "scale": "quick"}
    return payload, config


def full_train_point(name: str, standardize: bool | str, n: int | None = None) -> dict:
    """kappa_d of the Gram of the first ``n`` (default all) official training images of ``name``.

    X (n, d) = ``data.preprocess(x, standardize=standardize)`` (unit rows, float64); returns
    ``spectra.kappa_d_sweep(lambda _: X, [n])[0]`` as a dict (n, kappa or None, rank, needed).
    """
    ds = data.load(name, "train", source="full")
    x = ds.x if n is None else ds.x[: int(n)]
    X = torch.from_numpy(data.preprocess(x, standardize=standardize))
    (pt,) = spectra.kappa_d_sweep(lambda _: X, [len(X)])
    return pt._asdict()


def full_train_payload(names=FULL_SETS, n: int | None = None,
                       log: Callable[[str], None] = lambda s: None) -> tuple[dict, dict]:
    """payload[f"{name}_{s}"] = :func:`full_train_point` for each data set and s in raw / global."""
    t0 = time.time()
    payload = {}
    for name in names:
        for key, std in FULL_PRE.items():
            payload[f"{name}_{key}"] = pt = full_train_point(name, std, n)
            log(f"  {name} {key}: {pt}  ({time.time() - t0:.0f} s)")
    config = {"data": "the whole official training split (MNIST 60000, CIFAR-10 50000), data.preprocess(x, standardize=std)",
              "call": "spectra.kappa_d_sweep(lambda n: X, [len(X)])", "scale": "paper"}
    return payload, config


#: result name -> (data sets it needs, function computing (payload, config)).
RESULTS: dict[str, tuple[tuple[str, ...], Callable[..., tuple[dict, dict]]]] = {
    "partI_cifar10_quick": (("cifar10",), lambda log: quick_payload("cifar10")),
    "partI_kappa_full_train": (FULL_SETS, lambda log: full_train_payload(log=log)),
}


def missing_data(names) -> list[str]:
    """One message per data set among ``names`` whose full training file cannot be loaded.

    Loads (and so checksum-verifies) each file with ``data.load(name, "train", source="full")``;
    an empty list means everything needed is there.
    """
    problems = []
    for n in dict.fromkeys(names):
        try:
            data.load(n, "train", source="full")
        except (data.DataMissingError, data.ChecksumError) as exc:
            problems.append(str(exc))
    return problems


def max_rel_diff(a, b, path: str = "") -> tuple[float, str]:
    """Largest |a - b| / |b| over the numbers of two JSON payloads, and where it occurs.

    Structures (keys, lengths, None / int / str leaves) must match exactly; a mismatch is
    reported as an infinite difference at its path.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf, f"{path or '/'}: keys {sorted(a)} != {sorted(b)}"
        worst = (0.0, "")
        for k in a:
            worst = max(worst, max_rel_diff(a[k], b[k], f"{path}/{k}"), key=lambda t: t[0])
        return worst
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf, f"{path}: length {len(a)} != {len(b)}"
        worst = (0.0, "")
        for i, (u, v) in enumerate(zip(a, b)):
            worst = max(worst, max_rel_diff(u, v, f"{path}[{i}]"), key=lambda t: t[0])
        return worst
    if isinstance(a, float) and isinstance(b, float):
        if a == b:
            return 0.0, path
        return abs(a - b) / max(abs(b), 1e-300), path
    if type(a) is type(b) and a == b:
        return 0.0, path
    return math.inf, f"{path}: {a!r} != {b!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Writes results/<name>.json (or $LINATTN_RESULTS/<name>.json).",
        epilog="Data: $LINATTN_DATA must hold the full CIFAR-10 (and, for partI_kappa_full_train, "
               "MNIST) training files. Time on 2 CPU cores: about 2-3.5 min (quick) + 3 min (full).")
    parser.add_argument("--only", choices=sorted(RESULTS), action="append",
                        help="make only this result (repeatable; default: all)")
    parser.add_argument("--check", action="store_true",
                        help=f"recompute and compare with the stored results (rtol {RTOL:g}); write nothing")
    args = parser.parse_args(argv)
    names = args.only or list(RESULTS)

    missing = missing_data(n for r in names for n in RESULTS[r][0])
    if missing:
        for msg in missing:
            print(f"error: {msg}", file=sys.stderr)
        print(f"error: nothing computed; the data folder is {data.data_dir()} ($LINATTN_DATA)",
              file=sys.stderr)
        return 2

    status = 0
    for name in names:
        t0 = time.time()
        print(f"{name}: computing (data: {data.data_dir()})", flush=True)
        payload, config = RESULTS[name][1](lambda s: print(s, flush=True))
        wall = time.time() - t0
        if args.check:
            stored = results.load(name)
            diff, where = max_rel_diff(payload, stored["payload"])
            ok = diff <= RTOL and config == stored["config"]
            status |= 0 if ok else 1
            print(f"{name}: max relative difference {diff:.3g} at {where or '-'}; config "
                  f"{'same' if config == stored['config'] else 'DIFFERS'}; "
                  f"{'OK' if ok else 'MISMATCH'} ({wall:.0f} s)", flush=True)
        else:
            path = results.save(name, payload, config, wall_s=wall)
            print(f"{name}: wrote {path} ({wall:.0f} s)", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
