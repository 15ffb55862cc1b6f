"""A store of computed results, with provenance.

A result is a JSON file ``results/<name>.json``::

    {"name": ..., "payload": {...}, "config": {...},
     "provenance": {"git_commit": ..., "device": ..., "torch": ..., "python": ...,
                    "time_utc": ..., "wall_s": ..., "host_cores": ...}}

Chapters show stored results (paper scale, or CIFAR-10 when a reader has no copy of
it) next to the numbers they compute live.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import platform
import subprocess
from typing import Any

import numpy as np
import torch

__all__ = ["results_dir", "save", "load", "exists", "provenance"]


def results_dir() -> pathlib.Path:
    """``$LINATTN_RESULTS`` or the repository's ``results/`` folder."""
    env = os.environ.get("LINATTN_RESULTS")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parent.parent / "results"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=pathlib.Path(__file__).parent, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True,
                               cwd=pathlib.Path(__file__).parent, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(wall_s: float | None = None) -> dict:
    """Where and when a result was computed."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "git_commit": _git_commit(),
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": wall_s,
        "host_cores": os.cpu_count(),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


def _path(name: str) -> pathlib.Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"result name must be a plain file stem, got {name!r}")
    return results_dir() / f"{name}.json"


def save(name: str, payload: dict, config: dict, *, wall_s: float | None = None) -> pathlib.Path:
    """Write ``results/<name>.json`` with the payload, its config and provenance."""
    path = _path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": name, "payload": _jsonable(payload), "config": _jsonable(config),
           "provenance": provenance(wall_s)}
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return path


def exists(name: str) -> bool:
    return _path(name).exists()


def load(name: str) -> dict:
    """The stored document (keys: name, payload, config, provenance)."""
    path = _path(name)
    if not path.exists():
        raise FileNotFoundError(
            f"no stored result {path}; compute it with the command in its chapter "
            f"(or `python -m linattn.experiments`) first"
        )
    return json.loads(path.read_text())
