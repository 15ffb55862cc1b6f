"""The ``linattn`` command.

    linattn claims                 print the claims registry (paper, ours, verdict)
    linattn data verify            verify the data files in $LINATTN_DATA
    linattn data download NAME     download and convert MNIST or CIFAR-10 (needs internet)
"""
from __future__ import annotations

import argparse
import sys


def _claims(args: argparse.Namespace) -> int:
    from . import claims

    rows = claims.table()
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  paper {r['paper']:<14} ours {r['ours']:<40} {r['verdict']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["data"]:
        from .data import main as data_main

        return data_main(argv[1:])
    p = argparse.ArgumentParser(prog="linattn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("claims", help="print the claims registry")
    sub.add_parser("data", help="data set tools (verify, download)")
    args = p.parse_args(argv)
    if args.cmd == "claims":
        return _claims(args)
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
