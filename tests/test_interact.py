"""linattn.interact: widgets precomputed for the static book."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

widgets = pytest.importorskip("ipywidgets")

from linattn.interact import render_state, static_html, static_states  # noqa: E402


def test_grid_of_each_control():
    grid = static_states({
        "n": widgets.IntSlider(value=35, min=10, max=100, step=10),
        "eps": widgets.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05),
        "lam": widgets.FloatLogSlider(value=1e-3, base=10, min=-6, max=0),
        "task": widgets.Dropdown(options=[("MNIST", "mnist"), ("CIFAR-10", "cifar10")], value="mnist"),
        "on": widgets.Checkbox(value=True),
    }, points=5, max_states=10_000)
    n = [v for _, v in grid["n"]]
    assert n[0] == 10 and n[-1] == 100 and 35 in n          # the range's ends and the initial value
    assert all(isinstance(v, int) for v in n)
    eps = [v for _, v in grid["eps"]]
    assert eps == sorted(eps) and 0.3 in eps and all(abs(v / 0.05 - round(v / 0.05)) < 1e-9 for v in eps)
    lam = [v for _, v in grid["lam"]]
    assert lam[0] == pytest.approx(1e-6) and lam[-1] == pytest.approx(1.0) and 1e-3 in lam
    assert grid["task"] == [("MNIST", "mnist"), ("CIFAR-10", "cifar10")]
    assert grid["on"] == [("False", False), ("True", True)]


def test_chosen_values_and_refusals():
    n = widgets.IntSlider(value=50, min=10, max=100)
    assert [v for _, v in static_states({"n": n}, {"n": [10, 100]})["n"]] == [50, 10, 100]
    with pytest.raises(ValueError, match="outside the slider's range"):
        static_states({"n": n}, {"n": [5]})
    with pytest.raises(ValueError, match="not controls of this widget"):
        static_states({"n": n}, {"m": [10]})
    with pytest.raises(ValueError, match="more than max_states = 4"):
        static_states({"n": n}, points=9, max_states=4)
    with pytest.raises(ValueError, match="points must be a positive integer"):
        static_states({"n": n}, points=0)


def _draw(k=1, kind="line"):
    print(f"k = {k}, {kind}")
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, k], "-" if kind == "line" else "o")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    plt.show()


def test_render_state_keeps_figures_and_text():
    out = render_state(_draw, {"k": 3, "kind": "dots"})
    assert "<pre>k = 3, dots\n</pre>" in out
    assert out.count('<img src="data:image/png;base64,') == 1
    assert not plt.get_fignums()                       # its figures are closed once kept


def test_static_html_has_one_state_per_combination_and_shows_the_initial():
    grid = {"k": [("1", 1), ("2", 2), ("3", 3)], "kind": [("line", "line"), ("dots", "dots")]}
    page = static_html(_draw, grid, {"k": "k", "kind": "style"}, {"k": 2, "kind": "dots"})
    states = re.findall(r'<div class="linattn-widget-state" data-key="([0-9,]+)"( hidden)?>\n<pre>([^<]*)</pre>', page)
    assert len(states) == 6
    shown = [(key, text) for key, hidden, text in states if not hidden]
    assert shown == [("1,1", "k = 2, dots\n")]                 # the initial values, indices 1 and 1
    assert dict((key, text) for key, _, text in states)["2,0"] == "k = 3, line\n"
    assert 'type="range" min="0" max="2"' in page and "<select" in page and "style" in page
    assert "Precomputed when the book was built (k: 3 values, style: 2 values)" in page
