"""A store of computed cells: one JSON file per unit of work, keyed by what it depends on.

A *cell* is one independent unit of an experiment (a task, model, width, seed, ...). Its
``params`` (a JSON-able dict) hold everything its result depends on; its key is

    key = sha256(canonical({"experiment": name, "version": v, "params": params}))[:20]

and its file is ``<root>/<experiment>/<key>.json``::

    {"format": "linattn.cell/1", "experiment": ..., "version": ..., "key": ...,
     "params": {...}, "tables": {"rows": [...], ...}, "provenance": {...},
     "checksum": sha256(canonical({"params": ..., "tables": ...}))}

Guarantees (tested in ``tests/test_store.py``):

- writes are atomic (temporary file in the same folder, flush, fsync, ``os.replace``): a
  write that fails midway leaves the previous file intact;
- a truncated, unparsable or tampered file is reported by path (:class:`CorruptCell`) and
  its cell recomputed by the runner;
- a file is never replaced by a result of other params (:class:`ConfigConflict`);
- non-finite floats round-trip as floats (stored as ``{"$float": "nan"}``, strict JSON).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import pathlib
import platform
import socket
import subprocess
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["FORMAT", "StoreError", "CorruptCell", "ConfigConflict", "Record", "Store",
           "canonical", "encode", "decode", "dumps", "loads", "cell_key", "provenance",
           "default_root", "git_state"]

FORMAT = "linattn.cell/1"


class StoreError(OSError):
    """The store cannot be used (a folder that is a file, not writable, ...)."""


class CorruptCell(ValueError):
    """A cell file that does not parse or whose checksum or params do not match."""

    def __init__(self, path: pathlib.Path, why: str) -> None:
        super().__init__(f"{path}: {why}; it will be recomputed (delete it to silence this)")
        self.path = pathlib.Path(path)
        self.why = why


class ConfigConflict(ValueError):
    """A write would replace a stored result of other params."""


# --------------------------------------------------------------------------- encoding


def encode(x: Any) -> Any:
    """A JSON-able copy of ``x``: tuples -> lists, numpy / torch scalars and arrays -> python,
    non-finite floats -> ``{"$float": "nan" | "inf" | "-inf"}``. Dict keys must be strings."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be strings to be stored, got {k!r}")
            out[k] = encode(v)
        return out
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else {"$float": repr(v)}
    if isinstance(x, np.ndarray):
        return encode(x.tolist())
    if hasattr(x, "detach") and hasattr(x, "tolist"):  # a torch tensor
        return encode(x.detach().cpu().tolist())
    raise TypeError(f"cannot store a value of type {type(x).__name__}: {x!r}")


def _hook(obj: dict) -> Any:
    if len(obj) == 1 and "$float" in obj:
        return float(obj["$float"])
    return obj


def decode(x: Any) -> Any:
    """Inverse of :func:`encode` on parsed JSON (``{"$float": "nan"}`` -> nan)."""
    if isinstance(x, dict):
        if len(x) == 1 and "$float" in x:
            return float(x["$float"])
        return {k: decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [decode(v) for v in x]
    return x


def canonical(x: Any) -> str:
    """The canonical JSON text of ``x`` (sorted keys, no spaces, strict JSON)."""
    return json.dumps(encode(x), sort_keys=True, separators=(",", ":"), allow_nan=False)


def dumps(x: Any, indent: int | None = 1) -> str:
    """Strict JSON text of ``x`` with non-finite floats encoded (readable layout)."""
    return json.dumps(encode(x), indent=indent, allow_nan=False)


def loads(text: str) -> Any:
    """Parse text written by :func:`dumps` (non-finite floats come back as floats)."""
    return json.loads(text, object_hook=_hook)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cell_key(experiment: str, version: int, params: dict) -> str:
    """The key of a cell: 20 hex digits of sha256 of its canonical description."""
    return _sha(canonical({"experiment": experiment, "version": int(version), "params": params}))[:20]


# --------------------------------------------------------------------------- provenance


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding this package; ("unknown", None) outside one."""
    here = pathlib.Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=here, timeout=10).stdout.strip()
        if not commit:
            return "unknown", None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here, timeout=10).stdout.strip()
        return commit, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def provenance(*, device: str = "cpu", threads: int | None = None, wall_s: float | None = None,
               peak_mem_mb: float | None = None) -> dict:
    """Where, when and with what a result was computed."""
    import torch

    from . import __version__

    commit, dirty = git_state()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = torch.cuda.get_device_name(torch.device(device))
    else:
        dev = f"cpu ({platform.processor() or platform.machine()})"
    return {
        "linattn": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "device": dev,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "host": socket.gethostname(),
        "host_cores": os.cpu_count(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": wall_s,
        "peak_mem_mb": peak_mem_mb,
    }


# --------------------------------------------------------------------------- the store


@dataclass
class Record:
    """One stored cell: its params, its tables (name -> list of row dicts) and provenance."""

    experiment: str
    version: int
    key: str
    params: dict
    tables: dict
    provenance: dict
    path: pathlib.Path | None = None

    def table(self, name: str = "rows") -> list[dict]:
        return self.tables.get(name, [])


def default_root() -> pathlib.Path:
    """``$LINATTN_RESULTS``; else the ``results/`` folder of the repository holding this package
    (a source checkout); else ``./results``."""
    env = os.environ.get("LINATTN_RESULTS")
    if env:
        return pathlib.Path(env)
    repo = pathlib.Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists() and (repo / "linattn").is_dir():
        return repo / "results"
    return pathlib.Path.cwd() / "results"


class Store:
    """Cells on disk under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = pathlib.Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- checks -------------------------------------------------------------
    def check_writable(self) -> None:
        """Create the root if needed and prove it writable; raise :class:`StoreError` otherwise."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"--out {self.root} is a file, not a folder; choose a folder for the results")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"--out {self.root} is not writable ({exc.strerror or exc}); "
                             f"choose a folder you can write to") from exc

    def clean_stale(self) -> list[pathlib.Path]:
        """Remove temporary files left by writers that no longer run (a killed run); return them."""
        removed = []
        if not self.root.is_dir():
            return removed
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                pid = int(tmp.name.rsplit(".", 2)[-2])
                os.kill(pid, 0)  # raises if no such process
                if pid != os.getpid():
                    continue
            except (ValueError, ProcessLookupError):
                pass
            except PermissionError:  # pragma: no cover - a live process of another user
                continue
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        return removed

    # -- paths --------------------------------------------------------------
    def path(self, experiment: str, key: str) -> pathlib.Path:
        if not experiment or "/" in experiment or experiment.startswith("."):
            raise ValueError(f"experiment must be a plain name, got {experiment!r}")
        return self.root / experiment / f"{key}.json"

    # -- reading ------------------------------------------------------------
    def read(self, path: pathlib.Path) -> Record:
        """Parse and check one cell file; :class:`CorruptCell` if it does not hold up."""
        path = pathlib.Path(path)
        try:
            doc = loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptCell(path, f"cannot be read ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise CorruptCell(path, f"is not valid JSON (truncated?): {exc.msg} at line {exc.lineno}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CorruptCell(path, f"is not a {FORMAT} file")
        for field in ("experiment", "version", "key", "params", "tables", "provenance", "checksum"):
            if field not in doc:
                raise CorruptCell(path, f"has no {field!r}")
        if _sha(canonical({"params": doc["params"], "tables": doc["tables"]})) != doc["checksum"]:
            raise CorruptCell(path, "checksum does not match its content (edited or damaged)")
        if cell_key(doc["experiment"], doc["version"], doc["params"]) != doc["key"] or path.stem != doc["key"]:
            raise CorruptCell(path, "key does not match its params or its file name")
        return Record(doc["experiment"], int(doc["version"]), doc["key"], doc["params"], doc["tables"],
                      doc["provenance"], path)

    def get(self, experiment: str, version: int, params: dict) -> Record | None:
        """The stored record of this cell, or None. Raises :class:`CorruptCell` for a bad file."""
        key = cell_key(experiment, version, params)
        path = self.path(experiment, key)
        if not path.exists():
            return None
        rec = self.read(path)
        if canonical(rec.params) != canonical(params):  # pragma: no cover - a sha256 collision
            raise CorruptCell(path, "holds other params than its key says")
        return rec

    def records(self, experiment: str | None = None) -> Iterator[tuple[pathlib.Path, Record | CorruptCell]]:
        """Every cell file (of one experiment, or all): (path, Record or the CorruptCell error)."""
        if not self.root.is_dir():
            return
        folders = [self.root / experiment] if experiment else sorted(p for p in self.root.iterdir() if p.is_dir())
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    yield path, self.read(path)
                except CorruptCell as exc:
                    yield path, exc

    def verify(self) -> list[CorruptCell]:
        """Every problem in the store (empty when every file holds up)."""
        return [r for _, r in self.records() if isinstance(r, CorruptCell)]

    # -- writing ------------------------------------------------------------
    def put(self, experiment: str, version: int, params: dict, tables: dict, provenance: dict) -> pathlib.Path:
        """Write one cell atomically; refuse to replace a valid file of other params."""
        key = cell_key(experiment, version, params)
        path = self.path(experiment, key)
        if path.exists():
            try:
                old = self.read(path)
            except CorruptCell:
                old = None  # a damaged file is replaced
            if old is not None and canonical(old.params) != canonical(params):  # pragma: no cover
                raise ConfigConflict(f"{path} holds a result of other params; not overwritten")
        doc = {"format": FORMAT, "experiment": experiment, "version": int(version), "key": key,
               "params": encode(params), "tables": encode(tables), "provenance": encode(provenance)}
        doc["checksum"] = _sha(canonical({"params": doc["params"], "tables": doc["tables"]}))
        atomic_write(path, dumps(doc) + "\n")
        return path


def atomic_write(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A failure at any point (disk full, a kill) leaves the previous ``path`` as it was.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
