"""Execute chapters repeatedly with nbclient and count stalled executions (issue 16).

    LINATTN_DATA=/work/shared/data nice -n 10 .venv/bin/python scripts/exec_repeat.py \
        book/part3/influence_functions.ipynb -n 100 --stall 60 --log /tmp/exec_repeat

A cell that runs longer than --stall seconds counts as a stall: both processes (the kernel and this
client) are dumped with py-spy into the log folder, and the execution is abandoned after --timeout.
One line per execution goes to stdout: index, chapter, seconds, outcome.
"""
import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def pyspy(pid: int) -> str:
    try:
        out = subprocess.run([str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
        return out.stdout + out.stderr
    except Exception as exc:  # a dump is diagnostics: never let it end the measurement
        return f"py-spy failed: {exc!r}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("-n", type=int, default=100, help="executions in all (cycling over the notebooks)")
    ap.add_argument("--stall", type=float, default=60.0, help="seconds after which a cell counts as stalled")
    ap.add_argument("--timeout", type=float, default=180.0, help="cell timeout passed to nbclient")
    ap.add_argument("--log", default="/tmp/exec_repeat")
    ap.add_argument("--fix", action="store_true", help="poll in short slices (scripts/nbclient_wakeup.py)")
    args = ap.parse_args()
    fix = None
    if args.fix:
        sys.path.insert(0, str(Path(__file__).parent))
        import nbclient_wakeup as fix

        fix.install()
    log = Path(args.log)
    log.mkdir(parents=True, exist_ok=True)
    hangs = 0
    for k in range(args.n):
        path = Path(args.notebooks[k % len(args.notebooks)])
        nb = nbformat.read(path, as_version=4)
        state = {"cell": None, "t": None, "dumped": False}
        client = NotebookClient(nb, timeout=int(args.timeout), kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.on_cell_execute = lambda cell, cell_index: state.update(cell=cell_index, t=time.time())
        client.on_cell_executed = lambda cell, cell_index, execute_reply: state.update(t=None)
        stop = threading.Event()

        def watchdog():
            while not stop.wait(2.0):
                t = state["t"]
                if t is not None and not state["dumped"] and time.time() - t > args.stall:
                    state["dumped"] = True
                    pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
                    dump = log / f"stall_{k:03d}_{path.stem}_cell{state['cell']}.txt"
                    dump.write_text(f"kernel pid {pid}\n{pyspy(pid) if pid else 'no pid'}\n"
                                    f"client pid {os.getpid()}\n{pyspy(os.getpid())}\n")
                    print(f"  stall: {path} cell {state['cell']} > {args.stall:.0f} s, dumps in {dump}", flush=True)

        threading.Thread(target=watchdog, daemon=True).start()
        t0 = time.time()
        try:
            client.execute()
            outcome = "ok"
        except Exception as exc:
            outcome = f"error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        stop.set()
        if state["dumped"]:
            hangs += 1
            outcome += " (stalled)"
        if fix is not None and fix.recovered:
            outcome += f" (missed wake-ups recovered so far: {fix.recovered})"
        print(f"{k:4d} {path} {time.time() - t0:7.1f} s {outcome}", flush=True)
    print(f"executions {args.n}, stalls {hangs}" + (f", missed wake-ups recovered {fix.recovered}" if fix else ""), flush=True)
    return 1 if hangs else 0


if __name__ == "__main__":
    sys.exit(main())
