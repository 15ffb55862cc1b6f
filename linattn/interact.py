"""Widgets that also respond in the static book.

``interact(fn, **controls)`` is ``ipywidgets.interact`` with one addition: it calls ``fn`` once for
every state of a small grid of control values, keeps what each call shows (figures as PNG, printed
text, rich output) and attaches the result to the same output as HTML with plain controls. JupyterLab
renders the live widget; the HTML book (``nb_mime_priority_overrides`` in ``_config.yml`` drops the
widget view there) renders the precomputed states, switched by ``_static/linattn-widgets.js``, with
no kernel and no network. A value between the precomputed ones needs the live chapter, and the
note under the controls says so.

The grid: every option of a ``Dropdown``, ``SelectionSlider`` or ``ToggleButtons``; ``False`` and
``True`` for a ``Checkbox``; for a numeric slider, ``points`` values evenly spaced on its range (on
the exponent for a ``FloatLogSlider``), snapped to its step, with its initial value among them. Pass
``static={name: [values]}`` to choose the values yourself. The number of states is the product over
the controls; more than ``max_states`` is refused.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import os
from typing import Any, Callable, Sequence

__all__ = ["interact", "static_states", "render_state", "static_html"]

MAX_STATES = 40


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}; pass e.g. {name}=8")
    return value


def _slider_grid(ctl: Any, points: int) -> list[tuple[str, Any]]:
    """Evenly spaced values of a numeric slider, snapped to its step, with its value included."""
    import ipywidgets as widgets

    if isinstance(ctl, widgets.FloatLogSlider):
        lo, hi, step = float(ctl.min), float(ctl.max), float(ctl.step or 0)
        exps = [lo + (hi - lo) * i / (points - 1) for i in range(points)] if points > 1 else [lo]
        if step > 0:
            exps = [lo + round((e - lo) / step) * step for e in exps]
        vals = sorted({round(ctl.base ** e, 12) for e in exps} | {float(ctl.value)})
        return [(f"{v:.3g}", v) for v in vals]
    lo, hi, step = ctl.min, ctl.max, ctl.step or 0
    raw = [lo + (hi - lo) * i / (points - 1) for i in range(points)] if points > 1 else [lo]
    if step:
        raw = [min(hi, lo + round((v - lo) / step) * step) for v in raw]
    if isinstance(ctl, widgets.IntSlider):
        vals = sorted({int(round(v)) for v in raw} | {int(ctl.value)})
        return [(str(v), v) for v in vals]
    digits = max(0, -math.floor(math.log10(step))) if step else 6
    vals = sorted({round(float(v), digits + 2) for v in raw} | {round(float(ctl.value), digits + 2)})
    return [(f"{v:.{digits}f}" if step else f"{v:.3g}", v) for v in vals]


def _grid(name: str, ctl: Any, chosen: Sequence | None, points: int) -> list[tuple[str, Any]]:
    """(label, value) pairs of one control's precomputed states."""
    import ipywidgets as widgets

    if chosen is not None:
        values = list(chosen)
        if not values:
            raise ValueError(f"static[{name!r}] is empty; give at least one value, e.g. [{ctl.value!r}]")
        if ctl.value not in values:
            values = [ctl.value] + values
        if isinstance(ctl, (widgets.IntSlider, widgets.FloatSlider)):
            bad = [v for v in values if not ctl.min <= v <= ctl.max]
            if bad:
                raise ValueError(f"static[{name!r}] = {bad!r} lies outside the slider's range "
                                 f"[{ctl.min}, {ctl.max}]; choose values inside it")
        return [(f"{v:.3g}" if isinstance(v, float) else str(v), v) for v in values]
    if hasattr(ctl, "_options_labels") and hasattr(ctl, "_options_values"):
        return list(zip(ctl._options_labels, ctl._options_values))
    if isinstance(ctl, widgets.Checkbox):
        return [("False", False), ("True", True)]
    if isinstance(ctl, (widgets.IntSlider, widgets.FloatSlider, widgets.FloatLogSlider)):
        return _slider_grid(ctl, points)
    raise TypeError(f"control {name!r} is a {type(ctl).__name__}, which interact cannot precompute; "
                    "use a slider, Dropdown, SelectionSlider, ToggleButtons or Checkbox, or pass "
                    f"static={{{name!r}: [values]}}")


def static_states(controls: dict[str, Any], static: dict[str, Sequence] | None = None, *,
                  points: int = 9, max_states: int = MAX_STATES) -> dict[str, list[tuple[str, Any]]]:
    """The precomputed grid: ``{name: [(label, value), ...]}`` for each control, in order.

    Raises ``ValueError`` when the product of the grid sizes exceeds ``max_states``.
    """
    points = _check_positive_int("points", points)
    max_states = _check_positive_int("max_states", max_states)
    static = dict(static or {})
    unknown = sorted(set(static) - set(controls))
    if unknown:
        raise ValueError(f"static names {unknown} are not controls of this widget; "
                         f"use some of {sorted(controls)}")
    grid = {name: _grid(name, ctl, static.get(name), points) for name, ctl in controls.items()}
    n = math.prod(len(v) for v in grid.values())
    if n > max_states:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in grid.items())
        raise ValueError(f"the widget has {n} precomputed states ({sizes}), more than max_states = "
                         f"{max_states}; pass static={{name: [fewer values]}} or a smaller points")
    return grid


def _figure_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="the widget\'s figure for these values">'


def render_state(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """Call ``fn(**kwargs)`` and return what it shows as HTML: its figures as PNG images, its printed
    text as ``<pre>``, its rich displays by their HTML, PNG, LaTeX or plain text."""
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output

    before = set(plt.get_fignums())
    parts: list[str] = []
    with capture_output(stdout=True, stderr=True, display=True) as cap:
        ret = fn(**kwargs)
    for out in cap.outputs:
        data = out.data
        if "image/png" in data:
            png = data["image/png"]
            parts.append(_img(png if isinstance(png, str) else base64.b64encode(png).decode("ascii")))
        elif "text/html" in data:
            parts.append(data["text/html"])
        elif "text/latex" in data:
            parts.append(f'<div class="math notranslate nohighlight">{html.escape(data["text/latex"])}</div>')
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(data['text/plain'])}</pre>")
    for num in plt.get_fignums():
        if num not in before:
            fig = plt.figure(num)
            parts.append(_img(_figure_png(fig)))
            plt.close(fig)
    text = cap.stdout
    if ret is not None and not parts and not text:
        text = repr(ret)
    if text:
        parts.insert(0, f"<pre>{html.escape(text)}</pre>")
    return "\n".join(parts) if parts else "<p>(nothing shown for these values)</p>"


def static_html(fn: Callable[..., Any], grid: dict[str, list[tuple[str, Any]]],
                descriptions: dict[str, str], initial: dict[str, Any]) -> str:
    """The static widget: one control per name (a range input over the grid's indices, or a select)
    and one ``<div>`` per state, all hidden but the initial one."""
    names = list(grid)
    start = []
    for name in names:
        values = [v for _, v in grid[name]]
        start.append(values.index(initial[name]) if initial[name] in values else 0)
    controls = []
    for name, i0 in zip(names, start):
        labels = [lab for lab, _ in grid[name]]
        desc = html.escape(descriptions.get(name) or name)
        if len(labels) > 1 and all(_is_number(v) for _, v in grid[name]):
            controls.append(
                f'<label>{desc} <input type="range" min="0" max="{len(labels) - 1}" step="1" '
                f'value="{i0}" data-name="{html.escape(name)}" '
                f"data-labels='{html.escape(json.dumps(labels))}'> <output>{html.escape(labels[i0])}</output></label>")
        else:
            opts = "".join(f'<option value="{j}"{" selected" if j == i0 else ""}>{html.escape(lab)}</option>'
                           for j, lab in enumerate(labels))
            controls.append(f'<label>{desc} <select data-name="{html.escape(name)}">{opts}</select></label>')
    states = []
    for idx in itertools.product(*(range(len(grid[n])) for n in names)):
        kwargs = {n: grid[n][j][1] for n, j in zip(names, idx)}
        key = ",".join(map(str, idx))
        hidden = "" if list(idx) == start else " hidden"
        states.append(f'<div class="linattn-widget-state" data-key="{key}"{hidden}>\n'
                      f"{render_state(fn, kwargs)}\n</div>")
    sizes = ", ".join(f"{descriptions.get(n) or n}: {len(grid[n])} values" for n in names)
    note = (f"Precomputed when the book was built ({sizes}); values between these, and the "
            "live widget, need the chapter running in JupyterLab.")
    return (f'<div class="linattn-widget">\n<div class="linattn-widget-controls">{"".join(controls)}</div>\n'
            + "\n".join(states)
            + f'\n<p class="linattn-widget-note">{html.escape(note)}</p>\n</div>')


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def interact(fn: Callable[..., Any], *, static: dict[str, Sequence] | None = None, points: int = 9,
             max_states: int = MAX_STATES, **controls: Any):
    """``ipywidgets.interactive(fn, **controls)``, displayed with its precomputed static HTML.

    ``controls`` are ipywidgets controls (``IntSlider``, ``FloatSlider``, ``FloatLogSlider``,
    ``Dropdown``, ``SelectionSlider``, ``ToggleButtons``, ``Checkbox``). Returns the live widget.
    ``$LINATTN_STATIC_WIDGETS=0`` skips the precomputation (the live widget alone).
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}; pass the function that draws")
    for name, ctl in controls.items():
        if not isinstance(ctl, widgets.ValueWidget):
            raise TypeError(f"control {name!r} is {ctl!r}; pass an ipywidgets control such as "
                            f"widgets.IntSlider(value=..., min=..., max=...)")
    grid = static_states(controls, static, points=points, max_states=max_states)
    live = widgets.interactive(fn, **controls)  # names the controls that have no description
    bundle = dict(live._repr_mimebundle_())
    if os.environ.get("LINATTN_STATIC_WIDGETS", "1") != "0":
        descriptions = {name: ctl.description for name, ctl in controls.items()}
        initial = {name: ctl.value for name, ctl in controls.items()}
        bundle["text/html"] = static_html(fn, grid, descriptions, initial)
    display(bundle, raw=True)
    return live
