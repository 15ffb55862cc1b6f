"""The per-cell cost benchmark runs (quick mode) and reports stored cells and measured rates."""
import importlib.util
import pathlib

PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cells.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_cells", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_mode_reports_and_measures(capsys):
    bench = load()
    assert bench.main(["--quick", "--only", "task_kappa", "malleability_curves"]) == 0
    out = capsys.readouterr().out
    assert "stored cells" in out and "width_sweep" in out  # the committed quick results are reported
    assert "task_kappa" in out and "malleability_curves" in out
    r = bench.measure("task_kappa", "quick", 1, 1)
    assert r["rate"] > 0 and r["full_cell_s"] > 0 and r["n_cells"] == 4
