"""Where one cell spends its time: training, kernels, influence solves, attacks, the rest.

    python benchmarks/profile_cell.py malleability_tables --set tasks=mnist --set models=attn --set seeds=0
    python benchmarks/profile_cell.py width_sweep --set tasks=mnist --set widths=1024 --set seeds=0 \\
        --set n_train=2000 --set epochs=20
    python benchmarks/profile_cell.py malleability_tables --quick      # smoke test, a quick-scale cell

Runs the most expensive cell of the experiment at ``--scale`` (paper by default; ``--set``
narrows the config as ``linattn reproduce --set`` does) once under :mod:`cProfile`, without
storing it, and attributes the wall time to phases by the cumulative time of the library
functions that implement them (they do not nest into one another):

    setup        data loading and subsetting; in the width sweep also the features and Theta_inf
                 (linattn.experiments.part2.prepare_task)
    training     linattn.train._fit (standard and adversarial training, with the empirical NTKs
                 the width sweep records during training)
    kernels      linattn.malleability._kernel (the empirical NTK / Theta_inf of every state)
    influence    linattn.influence.influence_loo (the kernel-ridge factorisation and solves)
    attacks      linattn.attacks.attack (FGSM / PGD / MIM / noise on the selected points)

"other" is the wall time less the phases. The profiler adds a few per cent to Python-heavy
parts; the torch kernels themselves run at full speed. Prints one line per phase and, with
``--json PATH``, writes the same numbers.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import pstats
import sys
import time

import torch

from linattn import experiments

PHASES: dict[str, list[tuple[str, str]]] = {
    "setup": [("linattn/experiments/part3.py", "_task_data"), ("linattn/experiments/part2.py", "prepare_task")],
    "training": [("linattn/train.py", "_fit")],
    "kernels": [("linattn/malleability.py", "_kernel")],
    "influence": [("linattn/influence.py", "influence_loo")],
    "attacks": [("linattn/attacks.py", "attack")],
}


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise SystemExit(f"--set {kv!r}: give KEY=VALUE, e.g. --set tasks=mnist")
        k, v = kv.split("=", 1)
        out[k] = v
    return out


def phase_times(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each phase's functions (outermost calls only: recursion is not double counted)."""
    out = dict.fromkeys(PHASES, 0.0)
    for (path, _line, func), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
        for phase, targets in PHASES.items():
            if any(path.replace("\\", "/").endswith(f) and func == fn for f, fn in targets):
                # skip calls made from another function of the same phase (nested instances)
                inner = sum(v[3] for c, v in callers.items()
                            if any(c[0].replace("\\", "/").endswith(f) and c[2] == fn for f, fn in targets))
                out[phase] += ct - inner
    return out


def profile(name: str, scale: str, settings: dict[str, str], threads: int) -> dict:
    """Run the most expensive cell of ``name`` under cProfile; the phases' seconds and the wall time."""
    exp = experiments.get(name)
    cells = exp.cells(exp.configure(scale, settings))
    cell = max(cells, key=exp.work)
    for mod in ("attacks", "data", "influence", "kernels", "malleability", "models", "ntk", "retrain", "train"):
        importlib.import_module(f"linattn.{mod}")  # imports are not the cell's cost
    torch.set_num_threads(threads)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    exp.run(cell, "cpu")
    prof.disable()
    wall = time.perf_counter() - t0
    phases = phase_times(pstats.Stats(prof))
    phases["other"] = max(wall - sum(phases.values()), 0.0)
    label = {k: cell[k] for k in ("task", "model", "width", "seed", "n_train") if k in cell}
    return {"experiment": name, "scale": scale, "settings": settings, "cell": label, "threads": threads,
            "torch": torch.__version__, "wall_s": wall, "phases_s": phases}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a registered experiment (linattn reproduce --list)")
    ap.add_argument("--scale", choices=("quick", "paper"), default="paper")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: the quick scale")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    res = profile(args.name, "quick" if args.quick else args.scale, _settings(args.sets), args.threads)
    print(f"{res['experiment']} at {res['scale']} scale, {res['cell']}, {res['threads']} threads, "
          f"torch {res['torch']}: {res['wall_s']:.1f} s")
    for phase, s in res["phases_s"].items():
        print(f"  {phase:10s} {s:9.1f} s  {100 * s / res['wall_s']:5.1f} %")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
