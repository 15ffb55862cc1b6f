"""The ``linattn`` command.

    linattn reproduce [NAME ...]     compute experiments into the results store (resumable)
        --scale quick|paper --set KEY=VALUE ... --device cpu|cuda|auto --workers N
        --threads T --scheduler ADDRESS --out DIR --dry-run --list
    linattn results list|verify      what the store holds; check every cell file
    linattn results export NAME      an experiment's table as CSV or JSON
    linattn results diff DIR DIR     compare two stores cell by cell
    linattn chapters [--scale S]     re-execute every chapter into a folder
    linattn claims [--json]          the claims registry (paper, ours, verdict)
    linattn info                     versions, device, data found, stored results found
    linattn data verify|download     the data files in $LINATTN_DATA (verify reports every file;
                                     exit 1 if one fails or none is found)
    linattn --version

Exit status: 0 done, 1 a cell failed or results differ, 2 bad input (nothing computed),
130 interrupted (run the same command again to resume).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import pathlib
import signal
import sys
from typing import Any

__all__ = ["main"]

BAD_INPUT, FAILED, INTERRUPTED = 2, 1, 130


class UsageError(ValueError):
    """Bad command-line input (printed without a traceback, exit status 2)."""


# --------------------------------------------------------------------------- reproduce


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--set {pair!r}: write KEY=VALUE, e.g. --set epochs=50")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _configs(names: list[str], scale: str, settings: dict[str, str]) -> list[tuple[Any, Any]]:
    """(experiment, config) for each name, with each --set applied where the config has the key."""
    from . import experiments

    chosen = []
    for name in names or experiments.names():
        try:
            chosen.append(experiments.get(name))
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    for key in settings:
        if not any(key in e.config.keys() for e in chosen):
            known = sorted({k for e in chosen for k in e.config.keys()})
            raise UsageError(f"--set {key}: no selected experiment has this key; keys: {', '.join(known)}")
    out = []
    for e in chosen:
        mine = {k: v for k, v in settings.items() if k in e.config.keys()}
        try:
            out.append((e, e.configure(scale, mine)))
        except (ValueError, TypeError) as exc:
            shown = " ".join(f"{k}={v}" for k, v in mine.items())
            raise UsageError(f"{e.name}: --set {shown}: {exc}") from None
    return out


def _reproduce(args: argparse.Namespace) -> int:
    from . import experiments, runner
    from .store import Store, StoreError

    if args.list:
        for name in experiments.names():
            e = experiments.get(name)
            print(f"{name:24s} {e.title}  [{e.chapter}]")
        return 0
    configs = _configs(args.names, args.scale, _settings(args.set))
    store = Store(args.out)
    try:
        device = runner.resolve_device(args.device)
        if not args.dry_run:
            store.check_writable()
    except (runner.RunnerError, StoreError) as exc:
        raise UsageError(str(exc)) from None
    plans = [runner.plan(e, cfg, store, args.scale) for e, cfg in configs]
    total = 0.0
    for p in plans:
        est = runner.estimate(p, device=device, workers=args.workers)
        total += est if est is not None else math.nan
        print(f"{p.experiment.name:24s} {len(p.cells):4d} cells: {len(p.stored):4d} stored, "
              f"{len(p.corrupt)} corrupt, {len(p.todo):4d} to compute ({runner.fmt_seconds(est)})")
    print(f"store: {store.root}; device: {device}; estimated time: {runner.fmt_seconds(total)}")
    if args.dry_run:
        for p in plans:
            for params in p.todo:
                print(f"  {p.experiment.name} {runner.label(p.key(params), params)}")
        return 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = runner.run(plans, store, device=device, threads=args.threads, workers=args.workers,
                            scheduler=args.scheduler, scheduler_timeout=args.scheduler_timeout,
                            progress=not args.no_progress)
    except (runner.RunnerError, StoreError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{report.computed} cells computed, {report.reused} reused, {report.recomputed_corrupt} corrupt "
          f"recomputed, {len(report.failed)} failed in {report.wall_s:.0f} s -> {store.root}")
    if report.interrupted:
        return INTERRUPTED
    return FAILED if report.failed else 0


def _raise_interrupt(signum, frame):  # pragma: no cover - exercised by the kill tests
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- results


def _results(args: argparse.Namespace) -> int:
    from . import runner
    from .store import CorruptCell, Store

    store = Store(getattr(args, "out", None))
    if args.action == "list":
        if not store.root.is_dir():
            print(f"no results folder at {store.root}")
            return 0
        print(f"{'experiment':24s} {'cells':>6s} {'corrupt':>7s} {'compute (min)':>13s}  last computed  scales")
        for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
            recs = [r for _, r in store.records(folder.name)]
            good = [r for r in recs if not isinstance(r, CorruptCell)]
            wall = sum(r.provenance.get("wall_s") or 0 for r in good) / 60
            last = max((str(r.provenance.get("time_utc", ""))[:16] for r in good), default="-")
            scales = ",".join(sorted({str(r.provenance.get("scale", "?")) for r in good}))
            print(f"{folder.name:24s} {len(good):6d} {len(recs) - len(good):7d} {wall:13.1f}  {last:16s} {scales}")
        return 0
    if args.action == "verify":
        n, problems = 0, []
        for path, rec in store.records():
            n += 1
            if isinstance(rec, CorruptCell):
                problems.append(rec)
                print(f"BAD  {rec}")
        print(f"{n} cell files checked under {store.root}: {n - len(problems)} good, {len(problems)} bad")
        return FAILED if problems or n == 0 else 0
    if args.action == "export":
        ((exp, cfg),) = _configs([args.name], args.scale, _settings(args.set))
        rs = runner.collect(exp, cfg, store=store)
        rows = rs.table(args.table)
        if rs.missing:
            print(f"warning: {len(rs.missing)} of {len(rs.missing) + len(rs.records)} cells are not stored; "
                  f"`linattn reproduce {exp.name} --scale {args.scale}` computes them", file=sys.stderr)
        text = _to_csv(rows) if args.format == "csv" else json.dumps(_json_rows(rows), indent=1)
        if args.output:
            pathlib.Path(args.output).write_text(text)
            print(f"{len(rows)} rows -> {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0 if rows else FAILED
    if args.action == "diff":
        return _diff(Store(args.a), Store(args.b), args.rtol)
    raise UsageError(f"unknown action {args.action!r}")  # pragma: no cover


def _json_rows(rows: list[dict]) -> list[dict]:
    from .store import encode

    return encode(rows)


def _to_csv(rows: list[dict]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _max_rel_diff(a: Any, b: Any) -> float:
    """Largest relative difference between two decoded JSON values (inf where their shapes differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((_max_rel_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((_max_rel_diff(u, v) for u, v in zip(a, b)), default=0.0)
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return math.inf
        if a == b or (math.isnan(a) and math.isnan(b)):
            return 0.0
        return abs(a - b) / max(abs(a), abs(b), 1e-300)
    return 0.0 if a == b else math.inf


_TIMING_KEYS = ("seconds",)


def _strip_timing(tables: dict) -> dict:
    return {t: [{k: v for k, v in row.items() if k not in _TIMING_KEYS} for row in rows] for t, rows in tables.items()}


def _diff(a, b, rtol: float) -> int:
    """Compare every cell of store ``a`` with the same cell of ``b`` (timings left out)."""
    from .store import CorruptCell

    worst, bad, n = 0.0, 0, 0
    for path, rec in a.records():
        n += 1
        other = b.root / path.relative_to(a.root)
        if isinstance(rec, CorruptCell) or not other.exists():
            print(f"{path.relative_to(a.root)}: {'corrupt' if isinstance(rec, CorruptCell) else 'missing in ' + str(b.root)}")
            bad += 1
            continue
        d = _max_rel_diff(_strip_timing(rec.tables), _strip_timing(b.read(other).tables))
        worst = max(worst, d)
        if d > rtol:
            bad += 1
            print(f"{path.relative_to(a.root)}: max relative difference {d:.3g}")
    print(f"{n} cells compared: {n - bad} agree within rtol {rtol:g}, {bad} differ or are missing; "
          f"largest difference {worst:.3g}")
    return FAILED if bad or n == 0 else 0


# --------------------------------------------------------------------------- chapters


def _chapter_paths(root: pathlib.Path) -> list[pathlib.Path]:
    """The notebooks of _toc.yml, in book order."""
    import yaml

    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        raise UsageError(f"{toc_path} not found: run `linattn chapters` in the book's repository "
                         "(or give --root PATH)")
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{toc_path} is not a readable table of contents ({exc}); restore it from git") from None
    if not isinstance(toc, dict):
        raise UsageError(f"{toc_path} must hold a mapping with 'parts' or 'chapters', got {type(toc).__name__}")
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", toc.get("chapters", [])))
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]


def _chapters(args: argparse.Namespace) -> int:
    import os
    import time

    import nbformat
    from nbclient import NotebookClient

    root = pathlib.Path(args.root).resolve()
    out = pathlib.Path(args.out or root / "_build" / "chapters" / args.scale)
    chapters = _chapter_paths(root)
    if args.only:
        chapters = [c for c in chapters if any(k in str(c) for k in args.only)]
    if not chapters:
        raise UsageError("no chapters match --only")
    os.environ["LINATTN_SCALE"] = args.scale
    failed = []
    for nb_path in chapters:
        t0 = time.perf_counter()
        nb = nbformat.read(nb_path, as_version=4)
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(nb_path.parent)}}).execute()
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - report and go on with the next chapter
            status = f"FAILED: {type(exc).__name__}"
            failed.append(nb_path)
        dest = out / nb_path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        print(f"{nb_path.relative_to(root)}: {status} ({time.perf_counter() - t0:.0f} s) -> {dest}")
    return FAILED if failed else 0


# --------------------------------------------------------------------------- claims, info


def _claims(args: argparse.Namespace) -> int:
    from . import claims

    rows = claims.table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  paper {r['paper']:<14} ours {r['ours']:<40} {r['verdict']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import platform

    import numpy as np
    import torch

    from . import __version__, data, experiments
    from .store import Store, git_state

    commit, dirty = git_state()
    print(f"linattn {__version__} (commit {commit[:12]}{' +dirty' if dirty else ''}), python "
          f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    print(f"device: {', '.join(gpus) if gpus else 'no CUDA device'}; CPU threads {torch.get_num_threads()}")
    print(f"data folder: {data.data_dir()} ($LINATTN_DATA)")
    for name in data.DATASETS:
        found = [s for s in ("train", "test") if data.available(name, s)]
        extra = " (offline MNIST subset: 5,000 training images)" if name == "mnist" and "train" not in found else ""
        print(f"  {name:8s} {'found: ' + ', '.join(found) if found else 'not found'}{extra}")
    store = Store(args.out)
    counts: dict[str, int] = {}
    for _, rec in store.records():
        name = getattr(rec, "experiment", "corrupt")
        counts[name] = counts.get(name, 0) + 1
    print(f"results store: {store.root}")
    for name in experiments.names():
        print(f"  {name:24s} {counts.get(name, 0):5d} cells stored")
    return 0


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="linattn", description="Linearized attention and the kernel regime: "
                                "the book's experiments, results, claims and data.")
    p.add_argument("--version", action="version", version=f"linattn {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("reproduce", help="compute experiments into the results store (resumable)")
    r.add_argument("names", nargs="*", metavar="NAME", help="experiments (default: all; --list names them)")
    r.add_argument("--scale", choices=("quick", "paper"), default="quick")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    r.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: in-process)")
    r.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    r.add_argument("--scheduler-timeout", type=float, default=10.0, help="seconds to wait for the scheduler")
    r.add_argument("--out", default=None, metavar="DIR", help="results store (default: the repository's results/)")
    r.add_argument("--dry-run", action="store_true", help="list the cells to compute and the estimated time")
    r.add_argument("--list", action="store_true", help="list the experiments and exit")
    r.add_argument("--no-progress", action="store_true")

    res = sub.add_parser("results", help="inspect, verify, export or compare stored results")
    rsub = res.add_subparsers(dest="action", required=True)
    for action, text in (("list", "what the store holds"), ("verify", "check every cell file")):
        a = rsub.add_parser(action, help=text)
        a.add_argument("--out", default=None, metavar="DIR")
    e = rsub.add_parser("export", help="an experiment's table as CSV or JSON")
    e.add_argument("name")
    e.add_argument("--scale", choices=("quick", "paper"), default="quick")
    e.add_argument("--set", action="append", metavar="KEY=VALUE")
    e.add_argument("--table", default="rows")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--output", "-o", default=None, metavar="FILE")
    e.add_argument("--out", default=None, metavar="DIR")
    d = rsub.add_parser("diff", help="compare two stores cell by cell")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--rtol", type=float, default=1e-9)

    c = sub.add_parser("chapters", help="re-execute every chapter and keep the executed notebooks")
    c.add_argument("--scale", choices=("quick", "paper"), default="quick")
    c.add_argument("--root", default=".", help="the repository root (default: .)")
    c.add_argument("--out", default=None, help="folder for executed notebooks (default _build/chapters/SCALE)")
    c.add_argument("--only", nargs="+", default=None, help="substrings of chapter paths to run")
    c.add_argument("--timeout", type=int, default=7200, help="seconds a cell may take")

    cl = sub.add_parser("claims", help="print the claims registry")
    cl.add_argument("--json", action="store_true")
    i = sub.add_parser("info", help="versions, device, data found, stored results found")
    i.add_argument("--out", default=None, metavar="DIR")
    sub.add_parser("data", help="data set tools (verify, download)")
    from .assign import add_commands  # linattn assign | grade: assignments for teachers (issue 12)

    add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["data"]:
        from .data import main as data_main

        return data_main(argv[1:])
    args = _parser().parse_args(argv)
    handlers = {"reproduce": _reproduce, "results": _results, "chapters": _chapters, "claims": _claims,
                "info": _info}
    from .data import ChecksumError, DataMissingError

    try:
        return handlers.get(args.cmd, getattr(args, "handler", None))(args)
    except (UsageError, DataMissingError, ChecksumError) as exc:  # bad input or data: no traceback
        print(f"linattn {args.cmd}: error: {exc}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
