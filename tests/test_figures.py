"""linattn.figures: the book's figure conventions and the unlabelled-axis check."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from linattn import figures  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_an_unlabelled_numeric_axis_is_named():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [4, 5, 6])
    ax.set_title("flip rate")
    assert figures.unlabelled_axes(fig) == ['panel 1 "flip rate": x axis', 'panel 1 "flip rate": y axis']
    ax.set_xlabel("epsilon")
    ax.set_ylabel("flip rate")
    assert figures.unlabelled_axes(fig) == []


def test_names_hidden_ticks_shared_axes_and_suplabels_count_as_labelled():
    fig, axes = plt.subplots(2, 2, sharex=True, sharey=True)
    for ax in axes.flat:
        ax.plot([0, 1], [0, 1])
    axes[1, 0].set_xlabel("x")            # shared along the column: labels the panel above too
    axes[1, 1].set_xlabel("x")
    fig.supylabel("value")
    assert figures.unlabelled_axes(fig) == []
    fig2, ax2 = plt.subplots()
    ax2.bar(range(3), [1, 2, 3])
    ax2.set_xticks(range(3), ["2L-ReLU", "MLP-Attn", "QKV"])   # names label themselves
    ax2.set_yticks([])                                          # no quantity shown
    assert figures.unlabelled_axes(fig2) == []


def test_a_colour_bar_and_a_width_axis_need_labels():
    fig, ax = plt.subplots()
    im = ax.imshow(np.eye(3))
    ax.set_xticks([])
    ax.set_yticks([])
    cbar = fig.colorbar(im)
    assert figures.unlabelled_axes(fig) == ["colour bar: y axis"]
    cbar.set_label("change of the kernel")
    assert figures.unlabelled_axes(fig) == []
    fig2, ax2 = plt.subplots()
    ax2.plot([16, 64, 256], [1, 2, 3])
    figures.width_axis(ax2, [16, 64, 256], label="")
    ax2.set_ylabel("drift")
    assert figures.unlabelled_axes(fig2) == ['panel 1: x axis']   # numbers as fixed labels still need one
    figures.width_axis(ax2, [16, 64, 256])
    assert ax2.get_xlabel() == "width $m$" and figures.unlabelled_axes(fig2) == []
    assert [t.get_text() for t in ax2.get_xticklabels()] == ["16", "64", "256"]


def test_check_figures_raises_with_the_fix():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(figures.UnlabelledAxisError, match="ax.set_xlabel"):
        figures.check_figures()


def test_seed_band_and_model_styles():
    fig, ax = plt.subplots()
    line = figures.seed_band(ax, [1, 2, 3], [[1, 2, 3], [3, 4, 5]], model="attn")
    np.testing.assert_allclose(line.get_ydata(), [2, 3, 4])
    assert line.get_label() == "MLP-Attn" and line.get_color() == figures.model_color("attn")
    with pytest.raises(ValueError, match="ys must have shape"):
        figures.seed_band(ax, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="model must be one of"):
        figures.model_label("gpt")


def test_a_chapter_cell_with_an_unlabelled_figure_fails(tmp_path):
    """In a kernel with $LINATTN_CHECK_FIGURES=1 (the book build, nbval), book.setup() makes a cell
    that draws an unlabelled axis fail, whether it shows the figure with plt.show() or leaves it to
    the inline backend, and leaves the last expression's value displayed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = ["from linattn.book import setup\nsetup()\nimport matplotlib.pyplot as plt",
             "fig, ax = plt.subplots()\nax.plot([0, 1])\nax.set_xlabel('t')\nax.set_ylabel('y')\n1 + 1",
             "def f():\n    plt.plot([0, 1])\n    plt.show()\nf()",
             "plt.plot([0, 1])\nplt.ylabel('y')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    import os

    env = dict(os.environ, LINATTN_CHECK_FIGURES="1")
    client = nbclient.NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outs = [c.outputs for c in nb.cells]
    assert not any(o.output_type == "error" for o in outs[1])
    assert any(o.get("data", {}).get("text/plain") == "2" for o in outs[1])       # value still shown
    for k, axis in ((2, "x axis; figure 1: panel 1: y axis"), (3, "panel 1: x axis")):
        errs = [o for o in outs[k] if o.output_type == "error"]
        assert errs and errs[0].ename == "UnlabelledAxisError", outs[k]
        assert axis.split(";")[0] in errs[0].evalue


def test_a_grid_labels_a_quantity_once_per_row_and_column():
    fig, axes = plt.subplots(2, 2)                  # no shared axes: each panel its own scale
    for ax in axes.flat:
        ax.plot([0, 1], [0, 1])
    axes[0, 0].set_ylabel("drift")
    axes[1, 0].set_ylabel("gap")
    axes[1, 0].set_xlabel("width")
    assert figures.unlabelled_axes(fig) == ["panel 2: x axis", "panel 4: x axis"]  # right column: no x label
    axes[1, 1].set_xlabel("width")
    assert figures.unlabelled_axes(fig) == []


def test_the_experiments_print_the_figures_names():
    """One source of the names the book prints: the experiments' tables use linattn.figures' labels."""
    from linattn import figures
    from linattn.experiments import part2, part3, part4

    assert part3.TASK_LABELS is figures.TASK_LABELS
    for labels in (part2.MODEL_LABELS, part4.MODEL_LABELS):
        assert labels == {m: figures.MODEL_LABELS[m] for m in labels}
    assert set(part3.TASKS) <= set(figures.TASK_LABELS)
