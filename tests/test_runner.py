"""The runner: resume after SIGTERM and SIGKILL, corrupt cells recomputed, a dead worker loses only
its cell, a Dask LocalCluster gives the same store as an in-process run, bad input fails before any
computation."""
import concurrent.futures as cf
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch

from linattn import book, cli, experiments, runner
from linattn.store import Store

SETS = ["--set", "tasks=mnist", "--set", "widths=16,32,64", "--set", "seeds=0,1,2,3", "--set", "epochs=4",
        "--set", "n_train=128", "--set", "n_test=40", "--set", "n_ntk=32"]
SETTINGS = dict(s.split("=", 1) for s in SETS[1::2])
N_CELLS = 24


def _config():
    return experiments.get("width_sweep").configure("quick", SETTINGS)


def _plans(store):
    return [runner.plan(experiments.get("width_sweep"), _config(), store, "custom")]


def _cells(store):
    return sorted((store.root / "width_sweep").glob("*.json"))


def _same_store(a, b):
    return cli._diff(Store(a), Store(b), 1e-12) == 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run with one thread (the workers below use one too)."""
    root = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    try:
        report = runner.run(_plans(Store(root)), Store(root), threads=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert report.ok and report.computed == N_CELLS
    return root


def _cmd(out, *extra):
    return [sys.executable, "-m", "linattn", "reproduce", "width_sweep", *SETS, "--out", str(out),
            "--threads", "1", "--no-progress", *extra]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_run_resumes_without_recomputing(tmp_path, reference, sig):
    out = tmp_path / "store"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(_cells(Store(out))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGTERM else -signal.SIGKILL), err
    if sig == signal.SIGTERM:
        assert "run the same command again to resume" in err
    done = {p: (p.stat().st_ino, p.read_bytes()) for p in _cells(Store(out))}
    assert 3 <= len(done) < N_CELLS
    again = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{N_CELLS - len(done)} cells computed, {len(done)} reused" in again.stdout
    for path, (inode, data) in done.items():  # finished cells were neither recomputed nor rewritten
        assert path.stat().st_ino == inode and path.read_bytes() == data
    assert _same_store(reference, out) and _same_store(out, reference)
    assert not list(out.glob("width_sweep/.*"))  # no temporary file left


def test_a_truncated_cell_is_reported_and_recomputed(tmp_path, reference, capsys):
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    victim = _cells(Store(out))[5]
    victim.write_text(victim.read_text()[:100])
    logs = []
    plans = _plans(Store(out))
    assert len(plans[0].corrupt) == 1 and plans[0].corrupt[0].path == victim
    report = runner.run(plans, Store(out), threads=1, progress=False, log=logs.append)
    torch.set_num_threads(2)
    assert (report.computed, report.reused, report.recomputed_corrupt) == (1, N_CELLS - 1, 1)
    assert any(str(victim) in line for line in logs)
    assert _same_store(reference, out)


def test_a_dead_worker_loses_only_its_cell(tmp_path, reference, monkeypatch):
    out = tmp_path / "store"
    plans = _plans(Store(out))
    doomed = plans[0].key(plans[0].cells[7])
    monkeypatch.setenv("LINATTN_FAULT_CELL", doomed)  # that cell's worker exits at once
    report = runner.run(plans, Store(out), threads=1, workers=2, progress=False, log=lambda s: None)
    assert [runner.label(plans[0].key(p), p) for _, p, _ in report.failed] == \
        [runner.label(doomed, plans[0].cells[7])]
    assert "worker process died" in report.failed[0][2]
    assert report.computed == N_CELLS - 1
    monkeypatch.delenv("LINATTN_FAULT_CELL")
    again = runner.run(_plans(Store(out)), Store(out), threads=1, progress=False)
    torch.set_num_threads(2)
    assert again.computed == 1 and again.ok
    assert _same_store(reference, out)


class _PoolThatBreaksBetweenWaits:
    """A stand-in for a process pool whose ``doomed`` cell kills its worker, and whose breakage
    shows first at the next submit (as a real pool's may, when the death is noticed between two
    waits): cells run in-process, the doomed one stays pending until the pool is found broken."""

    def __init__(self, max_workers, doomed):
        self.max_workers, self.doomed, self.pending = max_workers, doomed, None

    def submit(self, fn, name, params, device, threads):
        if self.pending is not None:  # the worker died: this pool takes no more cells
            self.pending.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            raise BrokenProcessPool("a child process terminated abruptly")
        fut = cf.Future()
        if params == self.doomed and self.max_workers > 1:
            self.pending = fut
        elif params == self.doomed:  # alone, its worker dies at once
            fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        else:
            fut.set_result(fn(name, params, device, threads))
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_a_pool_found_broken_at_submit_loses_only_the_dead_cell(tmp_path, reference, monkeypatch):
    out = tmp_path / "store"
    plans = _plans(Store(out))
    doomed = plans[0].cells[1]  # in flight beside cell 0, which completes first
    monkeypatch.setattr(runner, "_new_pool", lambda workers: _PoolThatBreaksBetweenWaits(workers, doomed))
    try:
        report = runner.run(plans, Store(out), threads=1, workers=2, progress=False, log=lambda s: None)
    finally:
        torch.set_num_threads(2)
    assert [p for _, p, _ in report.failed] == [doomed]
    assert "worker process died" in report.failed[0][2]
    assert report.computed == N_CELLS - 1
    monkeypatch.undo()
    again = runner.run(_plans(Store(out)), Store(out), threads=1, progress=False)
    torch.set_num_threads(2)
    assert again.computed == 1 and again.ok
    assert _same_store(reference, out)


def test_complete_along_keeps_only_the_seeds_whose_cells_are_all_stored(tmp_path, reference):
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    plans = _plans(Store(out))
    cut = next(p for p in plans[0].cells if p["seed"] == 2)
    (out / "width_sweep" / f"{plans[0].key(cut)}.json").unlink()
    config, rs = book.complete_along("width_sweep", _config(), "seeds", "seed", store=Store(out))
    assert config.seeds == (0, 1, 3) and rs.complete
    assert sorted({r.params["seed"] for r in rs.records}) == [0, 1, 3] and len(rs.records) == N_CELLS * 3 // 4
    with pytest.raises(RuntimeError, match="no width of width_sweep has all its cells stored"):
        book.complete_along("width_sweep", _config(), "widths", "width", store=Store(tmp_path / "empty"))


def test_a_dask_cluster_writes_the_same_store(tmp_path, reference):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "store"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        report = runner.run(_plans(Store(out)), Store(out), threads=1, scheduler=cluster.scheduler_address,
                            progress=False)
    assert report.ok and report.computed == N_CELLS
    assert _same_store(reference, out) and _same_store(out, reference)
    assert {r.provenance["host"] for _, r in Store(out).records()}  # provenance written from the workers


def test_a_process_pool_writes_the_same_store(tmp_path, reference):
    out = tmp_path / "store"
    report = runner.run(_plans(Store(out)), Store(out), threads=1, workers=2, progress=False)
    assert report.ok and report.computed == N_CELLS
    assert _same_store(reference, out)


# --------------------------------------------------------------------------- bad input, before any work


def _fails_before_work(capsys, argv, match, out):
    t0 = time.time()
    assert cli.main(argv) == cli.BAD_INPUT
    err = capsys.readouterr().err
    assert match in err, err
    assert not list(out.glob("**/*.json")) if out.exists() and out.is_dir() else True
    return time.time() - t0


@pytest.mark.parametrize("argv, match", [
    (["reproduce", "no_such_experiment"], "unknown experiment 'no_such_experiment'"),
    (["reproduce", "width_sweep", "--set", "wdith=16"], "--set wdith: no selected experiment has this key"),
    (["reproduce", "width_sweep", "--set", "epochs=many"], "epochs='many': expected an integer"),
    (["reproduce", "width_sweep", "--set", "epochs=-3"], "epochs must be at least 0"),
    (["reproduce", "width_sweep", "--set", "widths=16,x"], "expected an integer"),
    (["reproduce", "width_sweep", "--set", "tasks=imagenet"], "unknown task 'imagenet'"),
    (["reproduce", "width_sweep", "--set", "n_ntk=5000"], "n_ntk = 5000 must not exceed"),
    (["reproduce", "width_sweep", "--set", "lr=0"], "lr must lie in"),
    (["reproduce", "width_sweep", "--set", "epochs"], "write KEY=VALUE"),
    (["reproduce", "width_sweep", "--device", "tpu"], "choose cpu, cuda"),
])
def test_bad_arguments_fail_before_any_computation(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    _fails_before_work(capsys, argv + ["--out", str(out)], match, out)


def test_an_output_that_is_a_file_or_unwritable_fails_first(tmp_path, capsys):
    f = tmp_path / "results.json"
    f.write_text("{}")
    _fails_before_work(capsys, ["reproduce", "width_sweep", *SETS, "--out", str(f)], "is a file", f)
    _fails_before_work(capsys, ["reproduce", "width_sweep", *SETS, "--out", str(f / "sub")], "not writable", f)
    assert f.read_text() == "{}"


def test_missing_data_fails_first(tmp_path, capsys, offline_data):
    out = tmp_path / "out"
    argv = ["reproduce", "width_sweep", "--set", "tasks=mnist,cifar10", "--out", str(out)]
    _fails_before_work(capsys, argv, "cifar10 file", out)
    assert not list(out.glob("width_sweep/*.json"))  # not even the MNIST cells


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_first(tmp_path, capsys):
    out = tmp_path / "out"
    _fails_before_work(capsys, ["reproduce", "width_sweep", *SETS, "--device", "cuda", "--out", str(out)],
                       "torch sees no CUDA device", out)


def test_a_scheduler_that_does_not_answer_fails_within_its_timeout(tmp_path, capsys):
    out = tmp_path / "out"
    took = _fails_before_work(capsys, ["reproduce", "width_sweep", *SETS, "--out", str(out),
                                       "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "2"],
                              "no Dask scheduler answered within 2 s", out)
    assert took < 30


# --------------------------------------------------------------------------- plans, estimates, reading


def test_dry_run_lists_cells_and_estimates_from_measured_costs(reference, capsys):
    assert cli.main(["reproduce", "width_sweep", *SETS, "--out", str(reference), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{N_CELLS} cells:\s+{N_CELLS} stored, 0 corrupt,\s+0 to compute", out), out
    plan = _plans(Store(reference))[0]
    plan.stored.pop(next(iter(plan.stored)))  # pretend one cell is missing: the estimate uses the others' cost
    est = runner.estimate(plan)
    walls = [r.provenance["wall_s"] for r in plan.stored.values()]
    assert min(walls) / 2 <= est <= max(walls) * 2


def test_collect_reads_stored_cells_and_computes_live_ones(reference):
    exp = experiments.get("width_sweep")
    stored = runner.collect(exp, _config(), store=Store(reference))
    assert stored.complete and stored.live == 0 and len(stored.records) == N_CELLS
    assert "24 stored" in stored.provenance_line()
    live = runner.collect(exp, _config(), store=Store(reference), live=lambda p: p["seed"] == 0)
    assert live.live == 6
    key = lambda r: (r["model"], r["width"], r["seed"], r["distance"])
    a = {key(r): r["value"] for r in stored.table()}
    b = {key(r): r["value"] for r in live.table()}
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-6, nan_ok=True) for k in a)
    empty = runner.collect(exp, _config(), store=Store(reference / "nowhere"))
    assert len(empty.missing) == N_CELLS and "not computed yet" in empty.provenance_line()


def test_results_commands(reference, tmp_path, capsys):
    assert cli.main(["results", "verify", "--out", str(reference)]) == 0
    assert f"{N_CELLS} good, 0 bad" in capsys.readouterr().out
    assert cli.main(["results", "list", "--out", str(reference)]) == 0
    assert "width_sweep" in capsys.readouterr().out
    csv_path = tmp_path / "t.csv"
    assert cli.main(["results", "export", "width_sweep", *SETS, "--out", str(reference), "-o", str(csv_path)]) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("task,model,width,seed,distance,value") and len(lines) == 1 + N_CELLS * 10
    bad = tmp_path / "bad"
    shutil.copytree(reference, bad)
    _cells(Store(bad))[0].write_text("{")
    assert cli.main(["results", "verify", "--out", str(bad)]) == 1
    assert "1 bad" in capsys.readouterr().out
    assert cli.main(["results", "verify", "--out", str(tmp_path / "empty")]) == 1  # nothing verified is a failure


def test_book_results_says_how_to_compute_missing_cells(reference, tmp_path, capsys):
    from linattn import book

    rs = book.results("width_sweep", config=_config(), store=Store(reference), live=False)
    assert rs.complete and "[quick scale] width_sweep: 24 of 24 cells" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="linattn reproduce width_sweep --scale quick"):
        book.results("width_sweep", config=_config(), store=Store(tmp_path / "empty"), live=False)
    partial = book.results("width_sweep", config=_config(), store=Store(tmp_path / "empty"), live=False, scale="paper")
    assert len(partial.missing) == N_CELLS  # at paper scale a partial result is returned
