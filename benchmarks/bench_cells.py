"""Per-cell cost of every experiment, from the results store and from short measured runs.

    python benchmarks/bench_cells.py                    # report: stored cells' wall times, by experiment and scale
    python benchmarks/bench_cells.py --measure          # also time one reduced paper-scale cell of each experiment
    python benchmarks/bench_cells.py --measure --write  # ... and write the rates to linattn/cell_costs.json
    python benchmarks/bench_cells.py --from-store --write   # the stored cells' median rates -> linattn/cell_costs.json
    python benchmarks/bench_cells.py --quick            # smoke test (tiny cells)
    python benchmarks/bench_cells.py --report benchmarks/RESULTS.md   # the per-cell times, as a page

The runner estimates a run's time (``linattn reproduce --dry-run``) as rate x work(params), where
work() is each experiment's relative cost model (training steps x batch x width x d, plus the
kernel solves) and the rate (seconds per unit of work) is the median over the stored cells of the
same experiment on the same kind of device, or, where none is stored, the rate measured here
(``linattn/cell_costs.json``). ``--measure`` times the most expensive paper-scale cell of each
experiment with its training shortened to ``--epochs`` epochs (work() accounts for that), on this
machine's CPU with ``--threads`` threads, and extrapolates the full cell as rate x work(full cell).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import torch

from linattn import experiments, runner
from linattn.store import CorruptCell, Store


def stored_report(store: Store) -> list[dict]:
    """Wall time per stored cell, by experiment, scale and device."""
    groups: dict[tuple, list] = {}
    for _, rec in store.records():
        if isinstance(rec, CorruptCell) or rec.provenance.get("wall_s") is None:
            continue
        p = rec.provenance
        key = (rec.experiment, p.get("scale", "?"), f"{p.get('device')}, {p.get('threads')} thr")
        groups.setdefault(key, []).append((p["wall_s"], experiments.get(rec.experiment).work(rec.params)))
    rows = []
    for (name, scale, device), vals in sorted(groups.items()):
        walls = [w for w, _ in vals]
        rates = [w / max(k, 1e-12) for w, k in vals]
        rows.append({"experiment": name, "scale": scale, "device": device, "cells": len(vals),
                     "median_s": statistics.median(walls), "max_s": max(walls), "total_min": sum(walls) / 60,
                     "rate": statistics.median(rates)})
    return rows


def paper_cells(store: Store) -> list[dict]:
    """Wall time of every stored paper-scale cell: one row per (experiment, task, model, variant)."""
    groups: dict[tuple, list] = {}
    for _, rec in store.records():
        if isinstance(rec, CorruptCell) or rec.provenance.get("scale") != "paper":
            continue
        p, prov = rec.params, rec.provenance
        proto = p.get("protocol", {})
        variant = ", ".join(f"{k}={p[k]}" for k in ("kernel", "input_map", "init_scale", "weight_decay", "n_train",
                                                      "width") if k in p and not isinstance(p[k], (list, dict)))
        key = (rec.experiment, p.get("task", "-"), p.get("model", "-"), variant,
               proto.get("epochs", "-"), f"{prov.get('device')}, {prov.get('threads')} thr")
        groups.setdefault(key, []).append(prov["wall_s"])
    return [{"experiment": k[0], "task": k[1], "model": k[2], "variant": k[3], "epochs": k[4], "device": k[5],
             "cells": len(v), "median_s": statistics.median(v), "max_s": max(v), "total_min": sum(v) / 60}
            for k, v in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0])))]


def report(store: Store, profiles: list[dict]) -> str:
    """A Markdown page: the stored cells by experiment, every paper-scale group, and phase profiles."""
    lines = ["# Per-cell wall times", "",
             "Written by `python benchmarks/bench_cells.py --report benchmarks/RESULTS.md` from the results store "
             "(each cell's provenance records its wall time, device and threads) and from the phase profiles in "
             "`benchmarks/profiles/` (`python benchmarks/profile_cell.py ... --json`). Times on a CPU were measured "
             "on whatever else the machine was doing; the device column says which. Not a test: numbers, not "
             "thresholds.", "", "## Stored cells by experiment and scale", "",
             "| experiment | scale | device | cells | median s | max s | total min |", "|---|---|---|---:|---:|---:|---:|"]
    for r in stored_report(store):
        lines.append(f"| {r['experiment']} | {r['scale']} | {r['device']} | {r['cells']} | {r['median_s']:.1f} | "
                     f"{r['max_s']:.1f} | {r['total_min']:.1f} |")
    lines += ["", "## Paper-scale cells", "",
              "| experiment | task | model | variant | epochs | device | cells | median s | max s | total min |",
              "|---|---|---|---|---:|---|---:|---:|---:|---:|"]
    for r in paper_cells(store):
        lines.append(f"| {r['experiment']} | {r['task']} | {r['model']} | {r['variant']} | {r['epochs']} | "
                     f"{r['device']} | {r['cells']} | {r['median_s']:.1f} | {r['max_s']:.1f} | {r['total_min']:.1f} |")
    if profiles:
        lines += ["", "## Where a cell spends its time", ""]
        phases = list(profiles[0]["phases_s"])
        lines += ["| experiment | cell | threads | wall s | " + " | ".join(phases) + " |",
                  "|---|---|---:|---:|" + "---:|" * len(phases)]
        for pr in profiles:
            cell = ", ".join(f"{k}={v}" for k, v in {**pr["cell"], **pr.get("settings", {})}.items())
            lines.append(f"| {pr['experiment']} ({pr['scale']}) | {cell} | {pr['threads']} | {pr['wall_s']:.0f} | "
                         + " | ".join(f"{pr['phases_s'][ph]:.0f} ({100 * pr['phases_s'][ph] / pr['wall_s']:.0f}%)"
                                      for ph in phases) + " |")
    return "\n".join(lines) + "\n"


def _reduced(exp, params: dict, epochs: int) -> dict:
    """The cell with its training shortened to ``epochs`` (checkpoints beyond it dropped)."""
    p = json.loads(json.dumps(params))
    if "protocol" in p:
        p["protocol"]["epochs"] = min(p["protocol"]["epochs"], epochs)
    if "at_epochs" in p:
        p["at_epochs"] = min(p["at_epochs"], epochs)
    if "checkpoints" in p:
        p["checkpoints"] = [e for e in p["checkpoints"] if e <= epochs]
    if "ntk_every" in p:
        p["ntk_every"] = max(1, min(p["ntk_every"], epochs))
    return p


def measure(name: str, scale: str, epochs: int, threads: int) -> dict:
    """Time the most expensive cell of ``name`` at ``scale``, training shortened to ``epochs``."""
    exp = experiments.get(name)
    cells = exp.cells(exp.configure(scale))
    here = [c for c in cells if runner.data_available(exp)(c)]
    if not here:
        return {"experiment": name, "skipped": "its data is not in the data folder ($LINATTN_DATA)"}
    full = max(here, key=exp.work)
    short = _reduced(exp, full, epochs)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    runner.execute_cell(name, short, "cpu", threads)
    wall = time.perf_counter() - t0
    rate = wall / exp.work(short)
    return {"experiment": name, "cell": runner.label(runner.cell_key(name, exp.version, full), full),
            "measured_s": wall, "work_short": exp.work(short), "work_full": exp.work(full), "rate": rate,
            "full_cell_s": rate * exp.work(full), "all_cells_h": rate * sum(exp.work(c) for c in cells) / 3600,
            "n_cells": len(cells)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", action="store_true", help="time one reduced paper-scale cell of each experiment")
    ap.add_argument("--write", action="store_true", help="write the measured rates to linattn/cell_costs.json")
    ap.add_argument("--only", nargs="+", default=None, help="experiments to measure (default all)")
    ap.add_argument("--epochs", type=int, default=5, help="training epochs of the reduced cells")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: quick-scale cells, 1 epoch")
    ap.add_argument("--from-store", action="store_true",
                    help="rates from the stored cells (median over each experiment's cpu cells)")
    ap.add_argument("--report", default=None, metavar="PATH",
                    help="write the stored cells' times and benchmarks/profiles/*.json as a Markdown page")
    args = ap.parse_args(argv)
    if args.report:
        profiles = [json.loads(f.read_text()) for f in sorted((pathlib.Path(__file__).parent / "profiles").glob("*.json"))]
        pathlib.Path(args.report).write_text(report(Store(), profiles))
        print(f"report -> {args.report}")
        return 0
    print(f"torch {torch.__version__}, CPU threads {args.threads}, store {Store().root}")
    print("\nstored cells (wall time per cell):")
    print(f"{'experiment':22s} {'scale':7s} {'device':28s} {'cells':>5s} {'median s':>9s} {'max s':>8s} {'total min':>9s}")
    for r in stored_report(Store()):
        print(f"{r['experiment']:22s} {r['scale']:7s} {r['device'][:28]:28s} {r['cells']:5d} {r['median_s']:9.2f} "
              f"{r['max_s']:8.1f} {r['total_min']:9.1f}")
    if args.from_store:
        rates: dict[str, dict[str, list]] = {}
        for r in stored_report(Store()):
            if r["device"].startswith("cpu"):
                rates.setdefault(r["experiment"], {}).setdefault(r["scale"], []).append(r["rate"])
        # paper-scale cells where there are any (small cells are dominated by fixed overheads)
        _write({k: {"cpu": statistics.median(v.get("paper") or [x for xs in v.values() for x in xs])}
                for k, v in rates.items()}, args.write)
    if not (args.measure or args.quick):
        return 0
    scale, epochs = ("quick", 1) if args.quick else ("paper", args.epochs)
    print(f"\nmeasured: the most expensive {scale}-scale cell of each experiment, training cut to {epochs} epochs:")
    print(f"{'experiment':22s} {'measured s':>10s} {'full cell (est.)':>16s} {'all cells (est.)':>16s}  cell")
    rates = {}
    for name in args.only or experiments.names():
        r = measure(name, scale, epochs, args.threads)
        if "skipped" in r:
            print(f"{name:22s} skipped: {r['skipped']}")
            continue
        rates[name] = {"cpu": r["rate"]}
        print(f"{name:22s} {r['measured_s']:10.1f} {runner.fmt_seconds(r['full_cell_s']):>16s} "
              f"{r['all_cells_h']:13.1f} h  {r['cell']} ({r['n_cells']} cells)", flush=True)
    _write(rates, args.write and not args.quick)
    return 0


def _write(rates: dict, write: bool) -> None:
    """Merge ``rates`` (experiment -> {"cpu": seconds per unit of work}) into linattn/cell_costs.json."""
    for name, r in sorted(rates.items()):
        print(f"  rate {name:22s} {r['cpu']:.3g} s per unit of work")
    if not write:
        return
    old = json.loads(runner.COSTS_PATH.read_text()) if runner.COSTS_PATH.exists() else {}
    old.update(rates)
    runner.COSTS_PATH.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    print(f"rates -> {runner.COSTS_PATH}")


if __name__ == "__main__":
    sys.exit(main())
