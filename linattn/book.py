"""Helpers for the book's chapters: set-up, glue, scale.

Every chapter starts with ``from linattn.book import setup; setup()``.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["setup", "glue", "scale", "in_kernel", "results", "SEED"]

SEED = 0


def scale() -> str:
    """The experiment scale: ``$LINATTN_SCALE`` ("quick", the default, or "paper")."""
    s = os.environ.get("LINATTN_SCALE", "quick")
    if s not in ("quick", "paper"):
        raise ValueError(f"LINATTN_SCALE must be 'quick' or 'paper', got {s!r}")
    return s


_book_scale = scale  # results() takes an argument of the same name


def setup(seed: int = SEED, threads: int | None = None) -> None:
    """Seed python, numpy and torch; fix the torch thread count (default 2, or
    ``$LINATTN_THREADS``) so printed numbers do not depend on the machine's core count;
    set matplotlib and sympy display options for the book. With ``$LINATTN_CHECK_FIGURES=1`` (set by
    ``make book`` and the tests) a cell that draws a figure with an unlabelled axis fails
    (``linattn.figures.install_check``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    threads = threads or int(os.environ.get("LINATTN_THREADS", "2"))
    torch.set_num_threads(threads)
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.figsize": (6.4, 3.6), "figure.dpi": 110,
                                    "axes.grid": True, "grid.alpha": 0.3,
                                    "axes.spines.top": False, "axes.spines.right": False})
    except ImportError:  # pragma: no cover
        pass
    if in_kernel():
        import sympy as sp

        sp.init_printing(use_latex="mathjax")
        check = os.environ.get("LINATTN_CHECK_FIGURES", "")
        if check == "1" or check.startswith("report:"):  # the book build and the tests
            from linattn.figures import install_check

            install_check()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where glue and rich display work)."""
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and hasattr(ip, "kernel")
    except ImportError:  # pragma: no cover
        return False


def glue(name: str, value: Any, display: bool = False) -> None:
    """myst-nb ``glue`` inside a kernel (so prose can write {glue:text}`name:.3g`);
    outside a kernel, a no-op. Floats are glued as python floats (numpy and torch
    scalars are converted), so the stored text is a plain literal. Returns None, so a
    cell that ends with a glue call displays nothing."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if in_kernel():
        from myst_nb import glue as _glue

        _glue(name, value, display=display)


def results(name: str, *, scale: str | None = None, live=None, config=None, store=None, quiet: bool = False,
            require: bool | None = None, **overrides: Any):
    """An experiment's results for a chapter, through one door (a :class:`linattn.runner.ResultSet`).

    ``scale`` defaults to the book's (:func:`scale`). ``config``: the experiment's config at that
    scale with ``overrides`` (or the config given). ``live``: which cells to compute here rather
    than read from the results store (a bool, or a function params -> bool), always restricted
    to cells whose data files are in the data folder (the rest, e.g. CIFAR-10 for a reader
    without a copy, come from the store). Default: every cell at quick scale, none at paper
    scale (paper-scale cells are computed by ``linattn reproduce`` and stored). Prints one
    provenance line (unless ``quiet``). ``require`` (default: at quick scale) turns cells that are
    neither computable here nor stored into an error that says how to compute them; at paper
    scale a partial result is returned (``ResultSet.missing`` lists the rest).
    """
    from . import experiments, runner

    exp = experiments.get(name)
    scale = scale or _book_scale()
    if config is None:
        config = exp.configure(scale, **overrides)
    if live is None:
        live = scale == "quick"
    want = live if callable(live) else (lambda params: bool(live))
    here = runner.data_available(exp)
    rs = runner.collect(exp, config, store=store, live=lambda params: want(params) and here(params))
    if not quiet:
        print(f"[{scale} scale] {rs.provenance_line()}")
    if (scale == "quick" if require is None else require) and rs.missing:
        raise RuntimeError(f"{len(rs.missing)} cells of {name} are neither stored nor computable here (their data "
                           f"is not in {'$LINATTN_DATA'}): run `linattn reproduce {name} --scale {scale}` with the data, "
                           "or get the committed results/ folder")
    return rs


def complete_along(name: str, config, field: str, key: str, *, scale: str = "paper", store=None):
    """The part of a stored setting that is complete along one axis, and its results.

    ``field`` is a tuple field of ``config`` ("seeds", "widths") and ``key`` the cell parameter it
    sets ("seed", "width"). Returns (config with ``field`` cut to the values whose cells are all
    stored, :func:`results` of that config): so a chapter shows every complete seed or width of a
    run still computing, and never a partial one. Raises if no value is complete.
    """
    everything = results(name, scale=scale, config=config, store=store, quiet=True, require=False)
    done = tuple(v for v in getattr(config, field) if all(c[key] != v for c in everything.missing))
    if not done:
        raise RuntimeError(f"no {key} of {name} has all its cells stored: run `linattn reproduce {name} "
                           f"--scale {scale}` first")
    config = config.replace(**{field: done})
    return config, results(name, scale=scale, config=config, store=store, require=True)
