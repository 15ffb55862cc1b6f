"""Run experiments cell by cell into a store: resumable, on any executor.

    plans = [runner.plan(experiments.get("width_sweep"), config, store)]
    runner.run(plans, store, workers=2)                 # a local process pool
    runner.run(plans, store, scheduler="tcp://host:8786")  # a Dask cluster

Every cell is an independent unit of work (see :mod:`linattn.experiments.base`). The runner

1. checks, before any computation, the output folder (:meth:`Store.check_writable`), the data
   the pending cells need, the device, and the scheduler (a bounded wait);
2. skips cells already in the store, reports corrupt cell files by path and recomputes them;
3. runs the rest in-process, in a local process pool (``workers``) or on a Dask cluster
   (``scheduler``: a ``distributed.Client`` is a ``concurrent.futures`` executor), and writes
   each result from this process as soon as it arrives, so a killed run loses only the cells
   in flight and a restarted run resumes;
4. shows a progress bar with an ETA, and estimates a run's time beforehand from measured
   per-cell costs (:func:`estimate`).

:func:`collect` reads an experiment's cells for a chapter: live where asked, stored otherwise.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import contextlib
import json
import math
import multiprocessing
import os
import pathlib
import resource
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .experiments.base import Config, Experiment
from .store import CorruptCell, Record, Store, cell_key, provenance

__all__ = ["RunnerError", "Plan", "RunReport", "ResultSet", "resolve_device", "check_data", "plan",
           "execute_cell", "estimate", "run", "collect", "COSTS_PATH"]

COSTS_PATH = pathlib.Path(__file__).with_name("cell_costs.json")


class RunnerError(RuntimeError):
    """Bad input found before any computation (the message says what to change)."""


# --------------------------------------------------------------------------- checks


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; refuse "cuda" without one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or (isinstance(device, str) and device.startswith("cuda:")):
        if not torch.cuda.is_available():
            raise RunnerError(f"--device {device}: torch sees no CUDA device (torch {torch.__version__}, "
                              f"cuda.is_available() is False); use --device cpu or a CUDA build of torch")
        return device
    raise RunnerError(f"--device {device!r}: choose cpu, cuda (or cuda:N) or auto")


def check_data(needs: set[tuple[str, str]]) -> None:
    """Load (and checksum) every (data set, split) file in ``needs``; one error listing what is missing."""
    from . import data

    problems = []
    for name, split in sorted(needs):
        try:
            data.load(name, split, source="full")
        except (data.DataMissingError, data.ChecksumError) as exc:
            problems.append(f"- {exc}")
    if problems:
        raise RunnerError(f"data missing for the cells to compute (data folder {data.data_dir()}, "
                          "$LINATTN_DATA):\n" + "\n".join(problems))


# --------------------------------------------------------------------------- plans


@dataclass
class Plan:
    """The cells of one experiment at one config, and which of them the store already holds."""

    experiment: Experiment
    config: Config
    cells: list[dict]
    stored: dict[str, Record]
    corrupt: list[CorruptCell]
    scale: str = "custom"
    scale_keys: frozenset = frozenset()

    def key(self, params: dict) -> str:
        return cell_key(self.experiment.name, self.experiment.version, params)

    def scale_of(self, params: dict) -> str:
        """The scale label a new cell's provenance records: ``scale`` when the cell belongs to the
        experiment's config at that scale (with no --set), else "custom"."""
        return self.scale if self.key(params) in self.scale_keys else "custom"

    @property
    def todo(self) -> list[dict]:
        return [p for p in self.cells if self.key(p) not in self.stored]


def plan(experiment: Experiment, config: Config, store: Store, scale: str = "custom") -> Plan:
    """List the cells of ``config`` and look each up in ``store`` (corrupt files are reported).
    ``scale`` ("quick" or "paper") is recorded in the provenance of each new cell that belongs to
    the experiment's config at that scale; other cells (changed by --set) are labelled "custom"."""
    cells = experiment.cells(config)
    keys = [cell_key(experiment.name, experiment.version, p) for p in cells]
    if len(set(keys)) != len(keys):
        raise RunnerError(f"{experiment.name}: two cells of this config have the same params")
    stored, corrupt = {}, []
    for k, params in zip(keys, cells):
        try:
            rec = store.get(experiment.name, experiment.version, params)
        except CorruptCell as exc:
            corrupt.append(exc)
            continue
        if rec is not None:
            stored[k] = rec
    scale_keys = frozenset()
    if scale in getattr(experiment.config, "SCALES", {}):
        scale_keys = frozenset(cell_key(experiment.name, experiment.version, p)
                               for p in experiment.cells(experiment.configure(scale)))
    return Plan(experiment, config, cells, stored, corrupt, scale, scale_keys)


# --------------------------------------------------------------------------- one cell


def _peak_mem_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024


def execute_cell(name: str, params: dict, device: str = "cpu", threads: int | None = None) -> dict:
    """Run one cell of the registered experiment ``name``; returns {"tables", "provenance"}.

    A top-level function, so process pools and Dask workers can run it. ``threads`` sets
    torch's thread count (None keeps the worker's). Peak memory is the CUDA peak of this
    cell on a GPU, the process's peak resident size so far on a CPU. (Testing hook: a worker
    whose ``$LINATTN_FAULT_CELL`` equals the cell's key exits at once, as a crashed worker would.)
    """
    import torch

    from . import experiments

    if threads:
        torch.set_num_threads(int(threads))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    exp = experiments.get(name)
    if os.environ.get("LINATTN_FAULT_CELL") == cell_key(name, exp.version, params):
        os._exit(3)  # fault injection for the tests: this worker dies on this cell
    t0 = time.perf_counter()
    tables = exp.run(params, device)
    wall = time.perf_counter() - t0
    if not isinstance(tables, dict) or not all(isinstance(v, list) for v in tables.values()):
        raise TypeError(f"{name}.run must return a dict of lists of rows, got {type(tables).__name__}")
    prov = provenance(device=device, threads=torch.get_num_threads(), wall_s=wall,
                      peak_mem_mb=_peak_mem_mb(device))
    return {"tables": tables, "provenance": prov}


# --------------------------------------------------------------------------- estimates


def _device_kind(prov_device: str) -> str:
    return "cpu" if str(prov_device).startswith("cpu") else "gpu"


def _stored_rate(plan_: Plan, kind: str) -> float | None:
    rates = [r.provenance["wall_s"] / max(plan_.experiment.work(r.params), 1e-12)
             for r in plan_.stored.values()
             if r.provenance.get("wall_s") and _device_kind(r.provenance.get("device", "cpu")) == kind]
    return statistics.median(rates) if rates else None


def estimate(plan_: Plan, *, device: str = "cpu", workers: int = 1) -> float | None:
    """Seconds the pending cells of ``plan_`` should take, from measured per-cell costs.

    Cost model: wall time = rate x work(params), with the rate (seconds per unit of work) the
    median over this experiment's stored cells on the same kind of device (cpu or gpu), else the
    rate measured by ``benchmarks/bench_cells.py`` (``linattn/cell_costs.json``, 2 CPU threads);
    None if neither. Divided by the number of workers (cells are independent). A rough guide:
    thread counts and machines differ.
    """
    kind = "cpu" if device == "cpu" else "gpu"
    rate = _stored_rate(plan_, kind)
    if rate is None and COSTS_PATH.exists():
        rate = json.loads(COSTS_PATH.read_text()).get(plan_.experiment.name, {}).get(kind)
    if rate is None:
        return None
    work = sum(plan_.experiment.work(p) for p in plan_.todo)
    return rate * work / max(1, workers)


# --------------------------------------------------------------------------- executors


@contextlib.contextmanager
def _executor(workers: int, scheduler: str | None, timeout: float) -> Iterator[cf.Executor | None]:
    if scheduler:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - distributed is a test dependency
            raise RunnerError("--scheduler needs dask.distributed: pip install 'linattn[cluster]'") from exc
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise RunnerError(f"--scheduler {scheduler}: no Dask scheduler answered within {timeout:g} s "
                              f"({type(exc).__name__}); start one (`dask scheduler`, then `dask worker "
                              f"{scheduler}` on each machine) or drop --scheduler") from None
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
    else:
        yield None


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Shut a pool down without waiting for cells in flight (they are recomputed next time)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


# --------------------------------------------------------------------------- running


@dataclass
class RunReport:
    """What :func:`run` did: cells computed, reused from the store, recomputed after corruption,
    failed (params, error), whether it was interrupted, and its wall time."""

    computed: int = 0
    reused: int = 0
    recomputed_corrupt: int = 0
    failed: list[tuple[str, dict, str]] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


def run(
    plans: list[Plan],
    store: Store,
    *,
    device: str = "cpu",
    threads: int | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    scheduler_timeout: float = 10.0,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> RunReport:
    """Compute every pending cell of ``plans`` and write each into ``store`` as it arrives.

    Checks first (nothing is computed if one fails): the store is writable, the data of the
    pending cells is there, the device exists, the scheduler answers within
    ``scheduler_timeout`` seconds. A cell that raises is reported (``RunReport.failed``) and the
    others go on; a KeyboardInterrupt (or SIGTERM turned into one by the CLI) stops the run,
    keeping every cell already written.
    """
    from ._validation import check_int

    workers = check_int(workers, "--workers")
    if threads is not None:
        threads = check_int(threads, "--threads")
    device = resolve_device(device)
    store.check_writable()
    store.clean_stale()
    todo = [(p, params) for p in plans for params in p.todo]
    check_data({need for p, params in todo for need in p.experiment.data(params)})
    report = RunReport(reused=sum(len(p.stored) for p in plans),
                       recomputed_corrupt=sum(len(p.corrupt) for p in plans))
    for p in plans:
        for exc in p.corrupt:
            log(f"corrupt cell file, recomputing: {exc}")
    t0 = time.perf_counter()
    bar = None

    def save(p: Plan, params: dict, out: dict) -> None:
        store.put(p.experiment.name, p.experiment.version, params, out["tables"],
                  dict(out["provenance"], scale=p.scale_of(params)))
        report.computed += 1
        bar.update(1)

    def fail(p: Plan, params: dict, exc: BaseException) -> None:
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        report.failed.append((p.experiment.name, params, msg))
        log(f"{p.experiment.name}: cell {label(p.key(params), params)} failed: {msg}")
        bar.update(1)

    try:
        with _executor(workers, scheduler, scheduler_timeout) as ex:  # connects (bounded wait) first
            bar = _bar(len(todo), progress)
            if ex is None and workers > 1:
                _run_pool(workers, todo, device, threads, save, fail)
            elif ex is None:
                for p, params in todo:
                    try:
                        out = execute_cell(p.experiment.name, params, device, threads)
                    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                        fail(p, params, exc)
                        continue
                    save(p, params, out)
            else:
                _drain(ex, todo, device, threads, save, fail)
    except KeyboardInterrupt:
        report.interrupted = True
        log(f"interrupted: {report.computed} cells written, {len(todo) - report.computed - len(report.failed)} "
            "to go; run the same command again to resume")
    finally:
        if bar is not None:
            bar.close()
    report.wall_s = time.perf_counter() - t0
    return report


def _drain(ex: cf.Executor, todo: list, device: str, threads: int | None, save, fail) -> None:
    """Submit every pending cell to ``ex`` and save each result as it completes."""
    futures = {ex.submit(execute_cell, p.experiment.name, params, device, threads): (p, params)
               for p, params in todo}
    try:
        for fut in cf.as_completed(futures):
            p, params = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker loses its cell only
                fail(p, params, exc)
                continue
            save(p, params, out)
    finally:
        for fut in futures:
            fut.cancel()


def _new_pool(workers: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run_pool(workers: int, todo: list, device: str, threads: int | None, save, fail) -> None:
    """Run cells in a local process pool, at most ``workers`` in flight.

    A worker that dies breaks the whole pool; the cells in flight then are suspects, each rerun
    alone in a fresh one-worker pool: the one that kills its worker again is reported failed
    (the next run retries it), the others are saved. So a dead worker loses only its own cell.
    The pool may break between two waits, so that the next submit is refused: the cells not yet
    submitted go back to the queue for a fresh pool, and those in flight are collected first.
    """
    queue = collections.deque(todo)
    while queue:
        suspects = []
        pool = _new_pool(workers)
        inflight: dict[cf.Future, tuple] = {}
        broken = False
        try:
            while (queue or inflight) and not suspects and not broken:
                while queue and len(inflight) < workers:
                    try:
                        fut = pool.submit(execute_cell, queue[0][0].experiment.name, queue[0][1], device, threads)
                    except BrokenProcessPool:  # a worker died since the last wait: collect what is in flight
                        broken = True
                        break
                    inflight[fut] = queue.popleft()
                if not inflight:
                    break
                done, _ = cf.wait(inflight, return_when=cf.ALL_COMPLETED if broken else cf.FIRST_COMPLETED)
                for fut in done:
                    item = inflight.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        suspects.append(item)
                        continue
                    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                        fail(*item, exc)
                        continue
                    save(*item, out)
            suspects += list(inflight.values())
        finally:
            _stop_pool(pool)
        for item in suspects:
            alone = _new_pool(1)
            try:
                out = alone.submit(execute_cell, item[0].experiment.name, item[1], device, threads).result()
            except BrokenProcessPool:
                fail(*item, RuntimeError("its worker process died (killed, out of memory or crashed)"))
                continue
            except Exception as exc:  # noqa: BLE001
                fail(*item, exc)
                continue
            finally:
                _stop_pool(alone)
            save(*item, out)


_LABEL_KEYS = ("task", "dataset", "model", "training", "width", "seed", "n", "n_train", "epochs", "eps")


def label(key: str, params: dict) -> str:
    """A short name for a cell: its key and the axes that usually tell cells apart."""
    shown = " ".join(f"{k}={params[k]}" for k in _LABEL_KEYS if k in params)
    return f"{key[:10]} ({shown})" if shown else key[:10]


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cell", desc="cells", disable=not progress or total == 0, dynamic_ncols=True)


# --------------------------------------------------------------------------- reading


@dataclass
class ResultSet:
    """An experiment's cells for one config: records (in cell order; live ones too), the params
    of cells neither computed nor stored, and how many were computed live."""

    experiment: Experiment
    config: Config
    records: list[Record]
    missing: list[dict]
    live: int = 0
    live_s: float = 0.0

    def table(self, name: str = "rows") -> list[dict]:
        """The rows of table ``name`` of every record, concatenated in cell order."""
        return [row for r in self.records for row in r.table(name)]

    @property
    def complete(self) -> bool:
        return not self.missing

    def provenance_line(self) -> str:
        """One line saying where the numbers come from."""
        n = len(self.records) + len(self.missing)
        parts = [f"{self.experiment.name}: {len(self.records)} of {n} cells"]
        if self.live:
            parts.append(f"{self.live} computed here ({self.live_s:.0f} s)")
        stored = [r.provenance for r in self.records if not r.provenance.get("live")]
        if stored:
            commits = sorted({str(p.get("git_commit", "?"))[:10] + ("+dirty" if p.get("git_dirty") else "")
                              for p in stored})
            devices = sorted({f"{p.get('device')}, {p.get('threads')} threads" for p in stored})
            last = max(str(p.get("time_utc")) for p in stored)
            wall = sum(p.get("wall_s") or 0 for p in stored)
            parts.append(f"{len(stored)} stored (computed {last[:10]}, {wall / 60:.1f} min in all, on "
                         f"{'; '.join(devices)}; commit {', '.join(commits)})")
        if self.missing:
            parts.append(f"{len(self.missing)} not computed yet (`linattn reproduce {self.experiment.name}`)")
        return "; ".join(parts)


def collect(
    experiment: Experiment,
    config: Config,
    *,
    store: Store | None = None,
    live: bool | Callable[[dict], bool] = False,
    device: str = "cpu",
) -> ResultSet:
    """The cells of ``config``: computed here where ``live(params)`` (nothing is written), read
    from ``store`` otherwise; cells in neither are listed in ``missing``."""
    store = store or Store()
    want_live = live if callable(live) else (lambda params: bool(live))
    records, missing, n_live, live_s = [], [], 0, 0.0
    for params in experiment.cells(config):
        if want_live(params):
            t0 = time.perf_counter()
            out = execute_cell(experiment.name, params, device)
            live_s += time.perf_counter() - t0
            n_live += 1
            prov = dict(out["provenance"], live=True)
            key = cell_key(experiment.name, experiment.version, params)
            records.append(Record(experiment.name, experiment.version, key, params, out["tables"], prov))
            continue
        try:
            rec = store.get(experiment.name, experiment.version, params)
        except CorruptCell:
            rec = None
        if rec is None:
            missing.append(params)
        else:
            records.append(rec)
    return ResultSet(experiment, config, records, missing, n_live, live_s)


def data_available(experiment: Experiment) -> Callable[[dict], bool]:
    """params -> True when every data file the cell needs is in the data folder."""
    from . import data

    return lambda params: all(data.available(name, split) for name, split in experiment.data(params))


def fmt_seconds(s: float | None) -> str:
    """A duration as a reader says it ("about 3 min")."""
    if s is None or not math.isfinite(s):
        return "unknown (no measured cost)"
    if s < 90:
        return f"about {s:.0f} s"
    if s < 5400:
        return f"about {s / 60:.0f} min"
    return f"about {s / 3600:.1f} h"
