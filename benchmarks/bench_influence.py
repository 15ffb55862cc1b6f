"""Benchmark: all n x t leave-one-out influences from one factorisation vs n brute-force refits.

    python benchmarks/bench_influence.py            # n = 2000, t = 500 (about a minute on 2 cores)
    python benchmarks/bench_influence.py --quick    # n = 300, t = 60 (seconds; what the tests run)

The kernel is the infinite-width ReLU NTK (linattn.kernels.ntk_relu) of random unit vectors
in d = 64, float64. "Closed form" is linattn.influence.influence_loo: one Cholesky of
K + ridge I (linattn.predictors.KernelRidge), one triangular inverse for diag(A), one solve with the t test columns.
"Brute force" refits kernel ridge without point i (Cholesky of the (n-1) x (n-1) system, solve,
predict) for every i. Brute force is timed on a sample of ``--refits`` points and extrapolated
to all n (the script says so), and the sampled refits are checked against the closed form.
"The limit" is the time of one Cholesky of an n x n matrix plus one GEMM (t x n) @ (n x n),
about what any exact method must spend.
"""
from __future__ import annotations

import argparse
import time

import torch

from linattn.influence import influence_loo
from linattn.kernels import ntk_relu


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--t", type=int, default=500)
    p.add_argument("--refits", type=int, default=40, help="brute-force refits timed (then extrapolated to n)")
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="n = 300, t = 60, 20 refits")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.t, a.refits = 300, 60, 20
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(a.n + a.t, 64, generator=g, dtype=torch.float64)
    Z = Z / Z.norm(dim=1, keepdim=True)
    K, Kt = ntk_relu(Z[: a.n]), ntk_relu(Z[a.n:], Z[: a.n])
    y = torch.sign(torch.randn(a.n, generator=g, dtype=torch.float64))
    n, ridge = a.n, a.ridge

    I = influence_loo(K, y, Kt, ridge=ridge, target="output")  # warm-up
    t_closed = _best_of(lambda: influence_loo(K, y, Kt, ridge=ridge, target="output"), 5)

    M = K + ridge * torch.eye(n, dtype=torch.float64)
    A_full = torch.randn(n, n, generator=g, dtype=torch.float64)
    t_limit = _best_of(lambda: torch.linalg.cholesky(M), 5) + _best_of(lambda: Kt @ A_full, 5)

    f = Kt @ torch.cholesky_solve(y[:, None], torch.linalg.cholesky(M))[:, 0]
    sample = torch.randperm(n, generator=g)[: min(a.refits, n)]

    def refit(i: int) -> torch.Tensor:
        keep = torch.arange(n) != i
        L = torch.linalg.cholesky(M[keep][:, keep])
        return f - Kt[:, keep] @ torch.cholesky_solve(y[keep][:, None], L)[:, 0]

    refit(0)  # warm-up
    err = 0.0
    t0 = time.perf_counter()
    for i in sample.tolist():
        err = max(err, float((refit(i) - I[i]).abs().max()))
    t_sample = time.perf_counter() - t0
    t_brute = t_sample / len(sample) * n
    out = {
        "n": n, "t": a.t, "threads": a.threads,
        "closed_form_s": t_closed,
        "brute_force_s": t_brute,
        "brute_force_timed_refits": int(len(sample)),
        "speedup": t_brute / t_closed,
        "limit_s": t_limit,
        "closed_over_limit": t_closed / t_limit,
        "max_abs_diff": err,
        "max_abs_influence": float(I.abs().max()),
    }
    print(f"n = {n}, t = {a.t}, {a.threads} threads, float64")
    print(f"closed form, all n x t influences:      {t_closed:8.3f} s")
    print(f"brute force, n refits (extrapolated from {len(sample)} timed refits): {t_brute:8.1f} s")
    print(f"speed-up:                              {out['speedup']:8.0f}x  (target >= 100x)")
    print(f"limit (one Cholesky + one t x n x n GEMM): {t_limit:8.3f} s  (closed form = {out['closed_over_limit']:.2f} x limit)")
    print(f"max |closed form - refit| on the sampled points: {err:.2e} (max |I| = {out['max_abs_influence']:.2e})")
    return out


if __name__ == "__main__":
    main()
