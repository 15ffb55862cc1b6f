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


def test_report_lists_every_paper_cell_group(tmp_path):
    bench = load()
    out = tmp_path / "R.md"
    assert bench.main(["--report", str(out)]) == 0
    text = out.read_text()
    assert "## Stored cells by experiment and scale" in text and "## Paper-scale cells" in text
    stored = sum(r["cells"] for r in bench.paper_cells(bench.Store()))
    assert stored == sum(1 for _, rec in bench.Store().records()
                         if getattr(rec, "provenance", {}).get("scale") == "paper")


def test_profile_attributes_a_quick_cell_to_its_phases():
    spec = importlib.util.spec_from_file_location("profile_cell", PATH.parent / "profile_cell.py")
    prof = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prof)
    r = prof.profile("malleability_tables", "quick", {"tasks": "mnist", "models": "relu", "seeds": "0"}, 1)
    ph = r["phases_s"]
    assert set(ph) == {"setup", "training", "kernels", "influence", "attacks", "other"}
    assert all(v >= 0 for v in ph.values())
    # the named phases are disjoint parts of the wall time, and each ran
    assert sum(ph.values()) <= r["wall_s"] * 1.01
    assert ph["training"] > 0 and ph["kernels"] > 0 and ph["attacks"] > 0 and ph["influence"] > 0
