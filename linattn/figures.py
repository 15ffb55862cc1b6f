"""The book's figure conventions, and the check that every figure keeps them.

Conventions: one colour and one name per model (``MODEL_STYLE``), the task names of the tables
(``TASK_LABELS``), seed spread as a band around the seed mean (``seed_band``), widths on a base-2
log axis labelled with the widths themselves (``width_axis``), and figures no wider than the text
column (``COLUMN_INCHES`` at the book's 110 dpi) so their text is read at 100% zoom.

The check: ``unlabelled_axes(fig)`` names every axis that shows numeric tick labels but says
neither its quantity nor its unit (no label of its own, none on an axis it shares or on a panel of
its grid row (y) or column (x), no ``fig.supxlabel``/``supylabel``); a colour bar is an axis like
any other. ``check_figures`` runs it on
every open figure and raises ``UnlabelledAxisError``. ``linattn.book.setup()`` runs it after every cell
when ``$LINATTN_CHECK_FIGURES=1`` (the book build and the tests set it), so a chapter with an
unlabelled figure fails them. ``$LINATTN_CHECK_FIGURES=report:PATH`` appends each cell's problems to
PATH (JSON lines) instead, to list them all in one run.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

__all__ = ["MODEL_STYLE", "MODEL_LABELS", "TASK_LABELS", "COLUMN_INCHES", "model_label", "model_color", "seed_band",
           "width_axis", "unlabelled_axes", "check_figures", "install_check", "UnlabelledAxisError"]

MODEL_STYLE: dict[str, dict[str, str]] = {
    "relu": {"label": "2L-ReLU", "color": "C0"},
    "attn": {"label": "MLP-Attn", "color": "C1"},
    "qkv": {"label": "MLP-Attn, trainable QKV", "color": "C2"},
    "softmax": {"label": "MLP-Softmax", "color": "C3"},
}
MODEL_LABELS = {model: style["label"] for model, style in MODEL_STYLE.items()}
# the one source of the names the book prints: the experiments' tables and the chapters take them from here
TASK_LABELS = {"mnist": "MNIST", "mnist_3v8": "MNIST 3 vs 8", "cifar10": "CIFAR-10",
               "cifar_car_plane": "CIFAR-10 cars vs planes", "fashion_mnist": "Fashion-MNIST",
               "fashion_tshirt_shirt": "Fashion-MNIST T-shirts vs shirts"}
COLUMN_INCHES = 6.4  # the text column at 110 dpi: a wider figure is shrunk, and its text with it


def _style(model: str) -> dict[str, str]:
    if model not in MODEL_STYLE:
        raise ValueError(f"model must be one of {sorted(MODEL_STYLE)}, got {model!r}")
    return MODEL_STYLE[model]


def model_label(model: str) -> str:
    """The name the book prints for ``model`` ("relu" -> "2L-ReLU")."""
    return _style(model)["label"]


def model_color(model: str) -> str:
    """The colour every figure gives ``model``."""
    return _style(model)["color"]


def seed_band(ax: Any, x: Sequence[float], ys: Sequence[Sequence[float]], *, model: str | None = None,
              label: str | None = None, **line_kw: Any) -> Any:
    """Plot the mean over seeds of ``ys`` (shape ``(seeds, len(x))``) against ``x``, with the band
    from the smallest to the largest seed; returns the line. ``model`` sets colour and label."""
    ys = np.asarray(ys, dtype=float)
    if ys.ndim != 2 or ys.shape[1] != len(x):
        raise ValueError(f"ys must have shape (seeds, {len(x)}), got {ys.shape}; one row per seed")
    if model is not None:
        line_kw.setdefault("color", model_color(model))
        label = model_label(model) if label is None else label
    (line,) = ax.plot(x, ys.mean(axis=0), marker="o", ms=3, label=label, **line_kw)
    if ys.shape[0] > 1:
        ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
    return line


def width_axis(ax: Any, widths: Sequence[int], *, axis: str = "x", label: str = "width $m$") -> None:
    """A base-2 log axis with a tick at each width, written as the width (16, 64, 1024)."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    set_scale, set_ticks, set_label = ((ax.set_xscale, ax.set_xticks, ax.set_xlabel) if axis == "x"
                                       else (ax.set_yscale, ax.set_yticks, ax.set_ylabel))
    set_scale("log", base=2)
    widths = sorted(set(int(w) for w in widths))
    set_ticks(widths, [str(w) for w in widths])
    getattr(ax, f"{axis}axis").set_minor_locator(__import__("matplotlib").ticker.NullLocator())
    set_label(label)


class UnlabelledAxisError(ValueError):
    """A figure has an axis with numeric tick labels and no label."""


def _message(found: Sequence[str]) -> str:
    return ("every numeric axis needs a label that says its quantity (and unit): " + "; ".join(found)
            + ". Call ax.set_xlabel/ax.set_ylabel (cbar.set_label for a colour bar), or hide the ticks "
              "if the axis carries no quantity")


def _shows_numbers(ax: Any, which: str) -> bool:
    import matplotlib.ticker as mticker

    axis = ax.xaxis if which == "x" else ax.yaxis
    if not axis.get_visible() or len(axis.get_majorticklocs()) == 0:
        return False
    params = axis.get_tick_params(which="major")
    sides = ("labelbottom", "labeltop") if which == "x" else ("labelleft", "labelright")
    if not any(params.get(s, s in ("labelbottom", "labelleft")) for s in sides):
        return False
    fmt = axis.get_major_formatter()
    if isinstance(fmt, mticker.NullFormatter):
        return False
    if isinstance(fmt, (mticker.ScalarFormatter, mticker.LogFormatter, mticker.PercentFormatter,
                        mticker.EngFormatter, mticker.StrMethodFormatter)):
        return True
    # fixed labels (set_xticks(locs, labels), categories): names label themselves, numbers do not
    labels = [s for s in fmt.format_ticks(list(axis.get_majorticklocs())) if str(s).strip()]
    return bool(labels) and all(_numeric(s) for s in labels)


def _numeric(s: str) -> bool:
    try:
        float(str(s).replace("\u2212", "-").replace("$", ""))
        return True
    except ValueError:
        return False


def _same_line(fig: Any, ax: Any, which: str) -> list:
    """The panels of ``fig`` in ``ax``'s grid column (``which`` = "x") or row ("y"): a grid labels a
    quantity once per row or column, as a reader expects."""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if spec is None:
        return []
    span = spec.colspan if which == "x" else spec.rowspan
    out = []
    for other in fig.axes:
        o = other.get_subplotspec() if hasattr(other, "get_subplotspec") else None
        if other is ax or o is None or o.get_gridspec() is not spec.get_gridspec():
            continue
        if (o.colspan if which == "x" else o.rowspan) == span:
            out.append(other)
    return out


def unlabelled_axes(fig: Any) -> list[str]:
    """Each axis of ``fig`` that shows numeric tick labels and has no label, as 'panel 2 "title": y'."""
    problems = []
    sup = {"x": getattr(fig, "_supxlabel", None), "y": getattr(fig, "_supylabel", None)}
    for k, ax in enumerate(fig.axes, start=1):
        if not ax.get_visible() or not ax.axison or ax.name != "rectilinear":
            continue
        for which in ("x", "y"):
            if not _shows_numbers(ax, which):
                continue
            if sup[which] is not None and sup[which].get_text().strip():
                continue
            shared = (ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()).get_siblings(ax)
            get = (lambda a: a.get_xlabel()) if which == "x" else (lambda a: a.get_ylabel())
            if any(get(a).strip() for a in [*shared, *_same_line(fig, ax, which)]):
                continue
            if getattr(ax, "_colorbar", None) is not None:
                name = "colour bar"
            else:
                title = ax.get_title() or ax.get_title(loc="left")
                name = f'panel {k}' + (f' "{title[:40]}"' if title else "")
            problems.append(f"{name}: {which} axis")
    return problems


def check_figures(figs: Sequence[Any] | None = None) -> None:
    """Raise ``UnlabelledAxisError`` if an open figure (or one of ``figs``) has an unlabelled axis."""
    import matplotlib.pyplot as plt

    figs = [plt.figure(n) for n in plt.get_fignums()] if figs is None else list(figs)
    found = [f"figure {i}: {p}" for i, fig in enumerate(figs, start=1) for p in unlabelled_axes(fig)]
    if found:
        raise UnlabelledAxisError(_message(found))


# --- the check after every cell (linattn.book.setup, when $LINATTN_CHECK_FIGURES=1) ---------------

_PENDING: list[str] = []   # problems of figures rendered during the current cell
_INSTALLED = False


def _record_on_render(print_figure):
    def checked(self, *args, **kwargs):
        _PENDING.extend(unlabelled_axes(self.figure))
        return print_figure(self, *args, **kwargs)
    checked.__wrapped__ = print_figure
    return checked


def _after_cell(value: Any = None) -> Any:
    """Called at the end of each cell (the transformer below appends the call): raise if a figure
    rendered during the cell, or still open, has an unlabelled axis; else return ``value``."""
    import matplotlib.pyplot as plt

    found = list(dict.fromkeys(_PENDING))
    _PENDING.clear()
    found += [p for n in plt.get_fignums() for p in unlabelled_axes(plt.figure(n))]
    report = os.environ.get("LINATTN_CHECK_FIGURES", "")
    if found and report.startswith("report:"):  # list every problem of a run instead of stopping at one
        with open(report.removeprefix("report:"), "a") as fh:
            from IPython import get_ipython

            ip = get_ipython()
            cell = ip.user_ns.get("_ih", [""])[-1] if ip is not None else ""
            fh.write(json.dumps({"cwd": os.getcwd(), "cell": cell[:300], "problems": found}) + "\n")
        return value
    if found:
        raise UnlabelledAxisError(_message(found))
    return value


def install_check(ip: Any = None) -> bool:
    """Check every figure of every later cell of this IPython session; True once installed."""
    global _INSTALLED
    import ast

    if ip is None:
        from IPython import get_ipython
        ip = get_ipython()
    if ip is None:
        return False
    if _INSTALLED:
        return True
    from matplotlib.backend_bases import FigureCanvasBase

    FigureCanvasBase.print_figure = _record_on_render(FigureCanvasBase.print_figure)
    call = ast.parse('__import__("linattn.figures", fromlist=["_after_cell"])._after_cell(None)',
                     mode="eval").body

    class CheckAfterCell(ast.NodeTransformer):
        """Wrap the cell's last expression as ``_after_cell(expr)`` (its value is still shown), or
        append ``_after_cell(None)`` when the cell ends in a statement."""

        def visit_Module(self, node: ast.Module) -> ast.Module:
            import copy

            check = copy.deepcopy(call)
            if node.body and isinstance(node.body[-1], ast.Expr):
                check.args = [node.body[-1].value]
                node.body[-1] = ast.Expr(check)
            else:
                node.body.append(ast.Expr(check))
            return ast.fix_missing_locations(node)

    ip.ast_transformers.append(CheckAfterCell())
    ip.events.register("pre_run_cell", lambda *a: _PENDING.clear())
    _INSTALLED = True
    return True
