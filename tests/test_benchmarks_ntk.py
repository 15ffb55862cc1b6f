"""The NTK benchmark script runs (quick mode) and its two paths agree."""
import importlib.util
import pathlib

import pytest

PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ntk.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_ntk", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_mode_measures_both_paths(capsys):
    res = load().main(["--quick", "--repeat", "1"])
    assert not res["extrapolated"] and res["max_abs_diff"] < 1e-12
    assert res["t_closed"] > 0 and res["t_auto"] > 0 and res["ratio"] == res["t_auto"] / res["t_closed"]
    assert "speed-up" in capsys.readouterr().out


def test_extrapolated_branch_checks_its_block():
    res = load().main(["--quick", "--repeat", "1", "--mem-limit-gb", "0", "--jac-rows", "8",
                       "--contract-rows", "16", "--p-split", "4"])
    assert res["extrapolated"] and res["max_abs_diff"] < 1e-12
    assert res["mem_auto"] == 64 * 1 * 128 * 32 * 8


def test_bad_arguments_exit():
    with pytest.raises(SystemExit):
        load().main(["--n", "0"])
