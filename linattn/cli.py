"""The ``linattn`` command.

    linattn claims                 print the claims registry (paper, ours, verdict)
    linattn reproduce [--scale S]  re-execute every chapter (quick or paper scale) into a folder
    linattn data verify            verify the data files in $LINATTN_DATA
    linattn data download NAME     download and convert MNIST or CIFAR-10 (needs internet)
"""
from __future__ import annotations

import argparse
import pathlib
import sys


def _claims(args: argparse.Namespace) -> int:
    from . import claims

    rows = claims.table()
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  paper {r['paper']:<14} ours {r['ours']:<40} {r['verdict']}")
    return 0


def _chapters(root: pathlib.Path) -> list[pathlib.Path]:
    """The notebooks of _toc.yml, in book order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
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


def _reproduce(args: argparse.Namespace) -> int:
    import os
    import time

    import nbformat
    from nbclient import NotebookClient

    root = pathlib.Path(args.root).resolve()
    out = pathlib.Path(args.out or root / "_build" / "reproduce" / args.scale)
    chapters = _chapters(root)
    if args.only:
        chapters = [c for c in chapters if any(k in str(c) for k in args.only)]
    if not chapters:
        print("no chapters to run", file=sys.stderr)
        return 1
    os.environ["LINATTN_SCALE"] = args.scale
    failed = []
    for nb_path in chapters:
        t0 = time.perf_counter()
        nb = nbformat.read(nb_path, as_version=4)
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(nb_path.parent)}}).execute()
            status = "ok"
        except Exception as exc:  # report and go on with the next chapter
            status = f"FAILED: {type(exc).__name__}"
            failed.append(nb_path)
        dest = out / nb_path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        print(f"{nb_path.relative_to(root)}: {status} ({time.perf_counter() - t0:.0f} s) -> {dest}")
    print()
    _claims(args)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["data"]:
        from .data import main as data_main

        return data_main(argv[1:])
    p = argparse.ArgumentParser(prog="linattn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("claims", help="print the claims registry")
    sub.add_parser("data", help="data set tools (verify, download)")
    r = sub.add_parser("reproduce", help="re-execute every chapter and keep the executed notebooks")
    r.add_argument("--scale", choices=("quick", "paper"), default="quick")
    r.add_argument("--root", default=".", help="the repository root (default: .)")
    r.add_argument("--out", default=None, help="folder for executed notebooks (default _build/reproduce/SCALE)")
    r.add_argument("--only", nargs="+", default=None, help="substrings of chapter paths to run")
    r.add_argument("--timeout", type=int, default=7200, help="seconds a cell may take")
    args = p.parse_args(argv)
    if args.cmd == "claims":
        return _claims(args)
    if args.cmd == "reproduce":
        return _reproduce(args)
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
