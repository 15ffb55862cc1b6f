"""The committed results store: every cell file holds up, carries its provenance, and the cheapest
stored cell of each experiment is what today's code computes (so the book never reads stale numbers)."""
import pytest

from linattn import cli, experiments, runner
from linattn.store import CorruptCell, Store

STORE = Store()  # the repository's results/
RECORDS = [r for _, r in STORE.records()]
PROVENANCE = ("linattn", "git_commit", "git_dirty", "device", "torch", "threads", "wall_s", "peak_mem_mb",
              "time_utc", "scale")


def test_every_cell_file_holds_up_and_has_provenance():
    assert RECORDS, f"no stored results under {STORE.root}"
    bad = [r for r in RECORDS if isinstance(r, CorruptCell)]
    assert not bad, bad
    for r in RECORDS:
        missing = [k for k in PROVENANCE if k not in r.provenance]
        assert not missing, (r.path, missing)
        assert r.experiment in experiments.names(), r.path


def test_the_quick_scale_of_every_experiment_is_stored_in_full():
    """`linattn reproduce --scale quick` has been run for the committed code: chapters can read any cell."""
    for name in experiments.names():
        exp = experiments.get(name)
        plan = runner.plan(exp, exp.configure("quick"), STORE)
        assert not plan.todo and not plan.corrupt, (name, len(plan.todo), "cells missing: run "
                                                    f"`linattn reproduce {name} --scale quick`")


def _cheapest(name):
    exp = experiments.get(name)
    here = runner.data_available(exp)
    cells = [r for r in RECORDS if not isinstance(r, CorruptCell) and r.experiment == name and here(r.params)
             and r.provenance.get("wall_s") is not None and r.provenance["wall_s"] < 60]
    return min(cells, key=lambda r: r.provenance["wall_s"]) if cells else None


@pytest.mark.parametrize("name", experiments.names())
def test_a_stored_cell_is_what_the_code_computes_today(name):
    rec = _cheapest(name)
    if rec is None:
        pytest.skip(f"no stored {name} cell under a minute whose data is on this machine")
    import torch

    threads = torch.get_num_threads()
    try:
        out = runner.execute_cell(name, rec.params, "cpu", rec.provenance.get("threads"))
    finally:
        torch.set_num_threads(threads)
    diff = cli._max_rel_diff(cli._strip_timing(out["tables"]), cli._strip_timing(rec.tables))
    assert diff <= 1e-6, f"{rec.path}: recomputed tables differ by {diff:.3g} (rerun `linattn reproduce {name}`)"


#: Environment that makes this CPU round as another one would: MKL's conditional-numerical-
#: reproducibility branch and ATen's kernels without vector instructions (other summation orders).
OTHER_ROUNDING = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}
#: The quick cell that float32 training moved most between two CPUs (10.6% on its NTK distances).
FRAGILE = ("width_sweep", {"task": "cifar10", "model": "relu", "width": 16, "seed": 2})


def test_a_quick_cell_does_not_depend_on_how_the_cpu_rounds():
    """The quick scale trains in float64 so that its stored cells, and the chapters' checked numbers,
    hold on any CPU: recomputed under another rounding (a subprocess with OTHER_ROUNDING), the
    cell that float32 training moved by 10% agrees with the stored one to 1e-9."""
    import json
    import os
    import subprocess
    import sys

    name, want = FRAGILE
    exp = experiments.get(name)
    here = runner.data_available(exp)
    rec = next((r for r in RECORDS if not isinstance(r, CorruptCell) and r.experiment == name
                and r.params.get("dtype") == "float64" and all(r.params.get(k) == v for k, v in want.items())), None)
    assert rec is not None, f"no stored quick cell {want}: run `linattn reproduce {name} --scale quick`"
    if not here(rec.params):
        pytest.skip("CIFAR-10 is not in the data folder")
    code = ("import json, sys; from linattn import runner; "
            "out = runner.execute_cell(sys.argv[1], json.loads(sys.argv[2]), 'cpu', 1); print(json.dumps(out['tables']))")
    done = subprocess.run([sys.executable, "-c", code, name, json.dumps(rec.params)], capture_output=True, text=True,
                          env={**os.environ, **OTHER_ROUNDING}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    diff = cli._max_rel_diff(cli._strip_timing(out), cli._strip_timing(rec.tables))
    assert diff <= 1e-9, f"{rec.path}: under {OTHER_ROUNDING} the cell differs by {diff:.3g}"
