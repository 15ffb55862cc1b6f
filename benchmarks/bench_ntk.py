"""Benchmark: the closed-form empirical NTK against the generic torch.func path.

The closed form of the two-layer models, Theta_m = (X^ X^^T) * (S S^T) / m with
S = 1[X^ W^T > 0], is two matrix products (O(n m d + n^2 m) flops, O(n^2 + n m) memory).
The generic path (linattn.ntk.empirical_ntk_autodiff) builds the per-example Jacobians
(n, C, P), P = m d, and contracts them: O(n^2 C^2 P) flops and O(n C P) memory, 26 GB in
float64 at the default n = 1000, d = 784, m = 4096, more than this machine holds.

When the Jacobians would not fit in ``--mem-limit-gb``, the autodiff path is timed on
pieces and extrapolated (and the output says so):

- Jacobians: ``param_jacobian`` (``--jac-chunk`` rows a jacrev call) on a block of
  ``--jac-rows`` rows, scaled by n / rows;
- contraction: the (N C x P) (P x N C) product on a block of ``--contract-rows`` rows and a
  slice of P / ``--p-split`` parameter columns, scaled by (n / rows)^2 * p_split (the
  product's cost is linear in its inner dimension and in each outer one).

That is a lower bound for the autodiff path: it assumes every Jacobian is computed once
and kept, which needs the full O(n C P) memory it reports as "needed".

Peak memory is the growth of the process's resident set (sampled every 2 ms from
/proc/self/statm on Linux) during each timed call, above the resident set before it.

Usage: ``python benchmarks/bench_ntk.py`` (CPU, a few minutes), ``--quick`` (seconds).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import torch

from linattn.models import relu_net
from linattn.ntk import empirical_ntk, empirical_ntk_autodiff, param_jacobian

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:  # not Linux: no sampling, report 0
        return 0


class PeakRSS:
    """Context manager: the peak resident-set growth (bytes) while the block runs."""

    def __enter__(self):
        self.base = _rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())
        self.bytes = self.peak - self.base
        return False


def timed(fn, repeat: int = 1):
    """(best wall time over ``repeat`` runs, peak RSS growth of the first run, result).

    The best of several runs: on a shared machine the minimum is the least disturbed one.
    """
    best, mem, out = float("inf"), 0, None
    for i in range(repeat):
        with PeakRSS() as p:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        best = min(best, dt)
        if i == 0:
            mem = p.bytes
    return best, mem, out


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="number of inputs (default 1000)")
    ap.add_argument("--d", type=int, default=784, help="input dimension (default 784, MNIST)")
    ap.add_argument("--m", type=int, default=4096, help="width (default 4096)")
    ap.add_argument("--classes", type=int, default=1, help="outputs C (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--mem-limit-gb", type=float, default=4.0,
                    help="run the autodiff path whole only if its Jacobians fit in this (default 4)")
    ap.add_argument("--jac-rows", type=int, default=32, help="rows of the timed Jacobian block")
    ap.add_argument("--jac-chunk", type=int, default=8, help="chunk_size of param_jacobian (default 8)")
    ap.add_argument("--contract-rows", type=int, default=250, help="rows of the timed contraction block")
    ap.add_argument("--p-split", type=int, default=16, help="parameter slices of the timed contraction")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of each timed call (best time)")
    ap.add_argument("--quick", action="store_true", help="a small run for tests (n=64, d=32, m=128)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.m = 64, 32, 128
    for k in ("n", "d", "m", "classes", "jac_rows", "jac_chunk", "contract_rows", "p_split", "repeat"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> dict:
    """Run the benchmark; print and return the numbers (times in s, memory in bytes)."""
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n, d, m, C = args.n, args.d, args.m, args.classes
    g = torch.Generator().manual_seed(args.seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    model = relu_net(d, m, C, seed=args.seed, dtype=torch.float64)
    P = m * d
    jac_bytes = n * C * P * 8
    print(f"n = {n}, d = {d}, m = {m}, C = {C}, P = m d = {P:,}; torch threads {torch.get_num_threads()}")

    t_closed, mem_closed, T = timed(lambda: empirical_ntk(model, X, full=C > 1), repeat=args.repeat)
    print(f"closed form   : {t_closed:10.3f} s   peak +{mem_closed / 2**20:9.1f} MiB")

    res = {"n": n, "d": d, "m": m, "C": C, "t_closed": t_closed, "mem_closed": mem_closed,
           "jacobian_bytes_needed": jac_bytes}
    if jac_bytes <= args.mem_limit_gb * 2**30:
        t_auto, mem_auto, Ta = timed(lambda: empirical_ntk_autodiff(model, X, chunk_size=args.jac_chunk),
                                     repeat=args.repeat)
        Tc = T if C > 1 else T[:, None, :, None]
        err = float((Ta - Tc).abs().max())
        print(f"torch.func    : {t_auto:10.3f} s   peak +{mem_auto / 2**20:9.1f} MiB   (measured whole)")
        print(f"max |closed - autodiff| = {err:.3g}")
        res.update(t_auto=t_auto, mem_auto=mem_auto, extrapolated=False, max_abs_diff=err)
    else:
        b = min(args.jac_rows, n)
        t_jac, mem_jac, J = timed(lambda: param_jacobian(model, X[:b], chunk_size=args.jac_chunk),
                                  repeat=min(args.repeat, 2))
        rows = min(args.contract_rows, n)
        ps = min(args.p_split, P)
        cols = P // ps
        A = torch.randn(rows * C, cols, generator=g, dtype=torch.float64)  # stands in for a Jacobian block
        t_con, mem_con, _ = timed(lambda: A @ A.T, repeat=min(args.repeat, 2))
        del A
        t_jac_all = t_jac * n / b
        t_con_all = t_con * (n / rows) ** 2 * (P / cols)
        t_auto = t_jac_all + t_con_all
        # the check on the block that was computed
        Tb = empirical_ntk(model, X[:b], full=True)
        err = float((torch.einsum("icp,jdp->icjd", J, J) - Tb).abs().max())
        del J
        print(f"torch.func    : {t_auto:10.3f} s   EXTRAPOLATED (Jacobians {jac_bytes / 2**30:.1f} GiB > "
              f"--mem-limit-gb {args.mem_limit_gb:g}):")
        print(f"  Jacobians   : {t_jac:.3f} s for {b} rows -> {t_jac_all:.3f} s for {n}   "
              f"(peak +{mem_jac / 2**20:.1f} MiB for the block)")
        print(f"  contraction : {t_con:.3f} s for {rows} x {rows} rows x {cols:,} params -> {t_con_all:.3f} s")
        print(f"  memory needed for all Jacobians: {jac_bytes / 2**30:.1f} GiB "
              f"(closed form: +{mem_closed / 2**20:.1f} MiB)")
        print(f"  max |closed - autodiff| on the {b}-row block = {err:.3g}")
        mem_auto = jac_bytes
        res.update(t_auto=t_auto, mem_auto=mem_auto, extrapolated=True, max_abs_diff=err,
                   t_jac_block=t_jac, jac_rows=b, mem_jac_block=mem_jac, t_contract_block=t_con,
                   contract_rows=rows, contract_cols=cols)
    ratio = t_auto / t_closed
    res["ratio"] = ratio
    print(f"speed-up of the closed form: {ratio:,.0f}x (target >= 50x)")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
