"""The dual implication as a stored experiment: its cells are the chapter's live computation."""
import pytest

from linattn import data, dual, experiments
from linattn.experiments.part3_dual import DualConfig, dual_targets


def test_cells_cover_draws_datasets_and_kernels():
    exp = experiments.get("dual_implication")
    quick = exp.configure("quick")
    cells = exp.cells(quick)
    assert len(cells) == len(quick.draws) * len(quick.datasets) * len(quick.kernels) == 40
    assert {c["kernel"] for c in cells} == set(dual.KERNELS)
    assert all(c["n_train"] == 200 and c["pool_per_class"] == 500 for c in cells)
    paper = exp.configure("paper")
    assert (paper.n_train, paper.pool_per_class) == (2000, None)
    assert exp.data(exp.cells(paper)[0]) == [("mnist", "train"), ("mnist", "test")] and exp.data(cells[0]) == []
    assert exp.work(cells[0]) > 0


def test_a_quick_cell_is_the_chapters_live_computation():
    """The chapter computes draw s as dual_rows on task_data(..., seed=s) with seed s: so does the cell."""
    params = experiments.get("dual_implication").cells(DualConfig.quick(draws=(1,), kernels=("G",)))
    by = {c["dataset"]: c for c in params}
    got = experiments.get("dual_implication").run(by["mnist"])["rows"]
    td = data.task_data("mnist", 200, 100, seed=1)
    tg = {c: dual.linear_target(c, td.X_train, td.X_test, seed=1) for c in dual.CONSTRUCTIONS}
    y0, y0_te = dual.label_targets(td.y_train, td.y_test, positive=0)
    tg["0_vs_rest"] = (y0, y0_te, y0_te)
    want = dual.dual_rows(td.X_train, td.X_test, tg, ridge=1e-2, eps=0.1, tau=0.1, seed=1, kernel_names=("G",))
    assert [r["target"] for r in got] == [r["target"] for r in want]
    for g, w in zip(got, want):
        assert (g["dataset"], g["n_train"]) == ("mnist", 200)
        assert repr({k: g[k] for k in w}) == repr(w)       # repr: NaN (no labels) equals NaN
    td_b, labels = dual_targets("mnist_3v8", 200, 100, 1, 500)
    assert list(labels) == ["3v8", "3v8_noise10", "3v8_noise25"] and td_b.n_classes == 2
    assert int((labels["3v8_noise25"][0] != labels["3v8"][0]).sum()) == 50      # 25% of 200 labels flipped


@pytest.mark.parametrize("bad, match", [
    (dict(n_train=1000), "pool_per_class=None"),
    (dict(kernels=("RBF",)), "kernels"),
    (dict(datasets=("cifar10",)), "datasets"),
    (dict(draws=()), "draws"),
    (dict(tau=0.0), "tau"),
])
def test_bad_configs_say_what_to_change(bad, match):
    with pytest.raises(ValueError, match=match):
        DualConfig.quick(**bad)
