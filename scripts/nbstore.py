"""Execute chapter notebooks and keep only the outputs nbval must compare.

    python scripts/nbstore.py book/gram_spectrum.ipynb [more.ipynb ...]
    python scripts/nbstore.py --strip book/x.ipynb     # strip all outputs, execute nothing

Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their outputs (and execution counts), so
``pytest --nbval-lax`` compares them; every other cell is saved without outputs (the
book build executes the notebooks). Run with the thread count CI uses (setup() fixes 2).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import nbclient_wakeup  # noqa: E402  (issue 16: a missed zmq wake-up must not stall a cell for its whole timeout)

nbclient_wakeup.install()

MARK = "# NBVAL_CHECK_OUTPUT"


def strip(nb, keep_checked: bool) -> None:
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell.metadata.pop("execution", None)
        if keep_checked and MARK in cell.source:
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=pathlib.Path)
    p.add_argument("--strip", action="store_true", help="strip all outputs without executing")
    args = p.parse_args(argv)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if not args.strip and any(MARK in c.source for c in nb.cells if c.cell_type == "code"):
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            strip(nb, keep_checked=True)
        else:
            strip(nb, keep_checked=False)
        nbformat.write(nb, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
