"""linattn.tables: summarize, pivot, to_text, to_html and the cell formatters.

The functions they replace (``experiments.summarize/pivot/format_table`` and
``malleability.summarize``, removed) are kept here as frozen copies (verbatim from commit
b0e466f), and the new functions must give the same numbers.
"""
from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

from linattn import tables as T


# --------------------------------------------------------------------------- old code


def _frozen_summarize(rows, by=("task", "model", "width", "distance")):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(float(r["value"]))
    out = []
    for key, vals in groups.items():
        v = np.asarray(vals, dtype=float)
        ok = v[np.isfinite(v)]
        stats = dict(zip(by, key))
        if ok.size:
            stats.update(mean=float(ok.mean()), std=float(ok.std()), min=float(ok.min()), max=float(ok.max()))
        else:
            stats.update(mean=math.nan, std=math.nan, min=math.nan, max=math.nan)
        stats.update(n=int(ok.size), n_nan=int(v.size - ok.size))
        out.append(stats)
    return out


def _frozen_pivot(summary, distance, widths=None, stat="mean"):
    sel = [s for s in summary if s["distance"] == distance]
    widths = sorted({s["width"] for s in sel}) if widths is None else list(widths)
    table = {}
    for s in sel:
        if s["width"] not in widths:
            continue
        row = table.setdefault((s["task"], s["model"]), {"task": s["task"], "model": s["model"]})
        row[s["width"]] = s[stat]
        row[f"{s['width']}_std"] = s["std"]
    return list(table.values())


def _frozen_format_table(rows, columns=None, floatfmt=".3g"):
    if not rows:
        return "(no rows)"
    columns = list(rows[0]) if columns is None else list(columns)

    def fmt(v):
        if isinstance(v, float):
            return "nan" if math.isnan(v) else format(v, floatfmt)
        return str(v)

    cells = [[str(c) for c in columns]] + [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


old_summarize, old_pivot, old_format_table = _frozen_summarize, _frozen_pivot, _frozen_format_table


def _same(a, b):
    """Dict rows equal, NaN == NaN."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb), (ra, rb)
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and math.isnan(x):
                assert isinstance(y, float) and math.isnan(y), (k, x, y)
            else:
                assert x == y, (k, x, y)


def _sweep_rows():
    """Rows shaped like a width sweep: (task, model, width, seed, distance) -> value, with NaNs."""
    rng = np.random.default_rng(3)
    rows = []
    for task in ("cifar10", "mnist"):
        for model in ("relu", "attn"):
            for width in (64, 256, 1024):
                for seed in range(3):
                    for dist in ("rel_fro", "pred"):
                        v = float(rng.normal(1.0 / width, 0.1))
                        if dist == "pred" and model == "relu" and seed == 1:
                            v = math.nan
                        if dist == "pred" and task == "mnist" and width == 64:
                            v = math.nan  # a whole group with no finite value
                        rows.append(dict(task=task, model=model, width=width, seed=seed, distance=dist, value=v))
    return rows


# --------------------------------------------------------------------------- summarize


def test_summarize_matches_old_experiments_summarize():
    rows = _sweep_rows()
    by = ("task", "model", "width", "distance")
    _same(T.summarize(rows, by), old_summarize(rows, by))


def _frozen_malleability_summarize(rows, by, value="flip_rate"):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(float(r[value]))
    return [{**dict(zip(by, key)), "mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
             "count": len(v)} for key, v in groups.items()]


def test_summarize_matches_old_malleability_summarize():
    old = _frozen_malleability_summarize

    rng = np.random.default_rng(0)
    by = ("task", "training", "model", "attention", "attack")
    rows = [dict(task=t, training="std", model=m, attention="lin", attack="pgd", seed=s,
                 flip_rate=float(rng.uniform()))
            for t in ("a", "b") for m in ("relu", "attn") for s in range(4)]
    new = T.summarize(rows, by, "flip_rate")
    ref = old(rows, by)
    assert len(new) == len(ref)
    for a, b in zip(new, ref):
        assert all(a[k] == b[k] for k in by)
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-15)
        assert (a["min"], a["max"], a["n"], a["n_nan"]) == (b["min"], b["max"], b["count"], 0)


def test_summarize_nan_rule_and_hand_values():
    rows = [{"g": "a", "value": 1.0}, {"g": "a", "value": math.nan}, {"g": "a", "value": 3.0},
            {"g": "a", "value": math.inf}, {"g": "a", "value": None}, {"g": "b", "value": math.nan},
            {"g": "c", "value": True}, {"g": "c", "value": False}, {"g": "c", "value": 2},
            {"g": "c", "value": "nan"}]
    a, b, c = T.summarize(rows, "g")
    assert a == {"g": "a", "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 2, "n_nan": 3}
    assert b["n"] == 0 and b["n_nan"] == 1
    assert all(math.isnan(b[k]) for k in ("mean", "std", "min", "max"))
    assert (c["mean"], c["min"], c["max"], c["n"], c["n_nan"]) == (1.0, 0.0, 2.0, 3, 1)
    assert list(a) == ["g", "mean", "std", "min", "max", "n", "n_nan"]


def test_summarize_t_interval():
    x = [1.0, 2.0, 4.0, math.nan]
    (s,) = T.summarize([{"g": 0, "value": v} for v in x], ("g",), level=0.95)
    ok = np.array(x[:3])
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t_{0.975, 2} in closed form: (2q - 1) / sqrt(2 q (1 - q))
    half = t * ok.std(ddof=1) / math.sqrt(3)
    assert s["lo"] == pytest.approx(ok.mean() - half, rel=1e-12)
    assert s["hi"] == pytest.approx(ok.mean() + half, rel=1e-12)
    (one,) = T.summarize([{"g": 0, "value": 1.0}, {"g": 0, "value": math.nan}], "g", level=0.9)
    assert math.isnan(one["lo"]) and math.isnan(one["hi"]) and one["mean"] == 1.0


def test_summarize_groups_in_order_of_first_appearance():
    rows = [{"k": k, "value": 1} for k in ("z", "a", "z", "m")]
    assert [r["k"] for r in T.summarize(rows, "k")] == ["z", "a", "m"]
    assert T.summarize([], "k") == []


@pytest.mark.parametrize("rows, kwargs, exc, words", [
    ([{"g": 1, "value": "high"}], {}, TypeError, "rows[0]['value']"),
    ([{"g": 1, "value": 1}, {"g": 1, "value": [1]}], {}, TypeError, "rows[1]['value']"),
    ([{"g": 1}], {}, ValueError, "rows[0] has no field 'value'"),
    ([{"value": 1}], {}, ValueError, "'g'"),
    ([{"g": 1, "value": 1}], {"level": 1.5}, ValueError, "level"),
    ({"g": 1, "value": 1}, {}, TypeError, "rows must be a list of dicts"),
    ([3], {}, TypeError, "rows[0] must be a dict"),
])
def test_summarize_bad_input(rows, kwargs, exc, words):
    with pytest.raises(exc) as info:
        T.summarize(rows, "g", **kwargs)
    assert words in str(info.value)


# --------------------------------------------------------------------------- pivot


def test_pivot_matches_old_pivot():
    summary = T.summarize(_sweep_rows(), ("task", "model", "width", "distance"))
    for dist in ("rel_fro", "pred"):
        sel = [s for s in summary if s["distance"] == dist]
        widths = sorted({s["width"] for s in sel})
        new = T.pivot(sel, ("task", "model"), "width", columns=widths, extra=("std",))
        _same(new, old_pivot(summary, dist))
        assert list(new[0])[:4] == ["task", "model", 64, "64_std"]
    sub = T.pivot([s for s in summary if s["distance"] == "pred"], ("task", "model"), "width",
                  value="max", columns=[1024, 256])
    _same([{k: r[k] for k in ("task", "model", 1024, 256)} for r in old_pivot(summary, "pred", [1024, 256], "max")],
          sub)
    assert list(sub[0]) == ["task", "model", 1024, 256]


def test_pivot_missing_cells_and_duplicates():
    rows = [{"m": "a", "w": 1, "mean": 0.5}, {"m": "b", "w": 2, "mean": 0.7}, {"m": "a", "w": 3, "mean": 0.1}]
    out = T.pivot(rows, "m", "w")
    assert out == [{"m": "a", 1: 0.5, 2: None, 3: 0.1}, {"m": "b", 1: None, 2: 0.7, 3: None}]
    with pytest.raises(ValueError, match="second time"):
        T.pivot(rows + [{"m": "a", "w": 1, "mean": 0.9}], "m", "w")
    with pytest.raises(ValueError, match="no field 'width'"):
        T.pivot(rows, "m", "width")
    with pytest.raises(ValueError, match="columns lists a value twice"):
        T.pivot(rows, "m", "w", columns=[1, 1])
    with pytest.raises(ValueError, match="clash"):
        T.pivot([{"m": "a", "w": "m", "mean": 1}], "m", "w")


# --------------------------------------------------------------------------- text and cells


def test_to_text_matches_old_format_table():
    summary = T.summarize(_sweep_rows(), ("task", "model", "width", "distance"))
    assert T.to_text(summary) == old_format_table(summary)
    cols = ["model", "width", "mean", "n_nan"]
    assert T.to_text(summary, cols, floatfmt=".2e") == old_format_table(summary, cols, ".2e")
    assert T.to_text([]) == "(no rows)"


def test_to_text_none_headers_and_layout():
    text = T.to_text([{"a": None, "b": math.nan, "c": 1024}, {"a": "x", "b": 0.123456}],
                     headers={"c": "width"})
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "width"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["--", "nan", "1024"]
    assert lines[3].split() == ["x", "0.123"]
    assert len({len(line) for line in lines[:3]}) == 1  # right-aligned into fixed widths
    with pytest.raises(ValueError, match="headers has 1 labels for 3 columns"):
        T.to_text([{"a": 1, "b": 2, "c": 3}], headers=["x"])
    with pytest.raises(ValueError, match="floatfmt"):
        T.to_text([{"a": 1.0}], floatfmt=".3q")


def test_fmt_number_and_interval():
    assert T.fmt_number(0.123456) == "0.123"
    assert T.fmt_number(np.float32(2.5), ".2f") == "2.50"
    assert T.fmt_number(math.nan) == "nan"
    assert T.fmt_number(-math.inf) == "-inf"
    assert T.fmt_number(None) == "--"
    assert T.fmt_number(True) == "yes" and T.fmt_number(np.bool_(False)) == "no"
    assert T.fmt_number(1024) == "1024" and T.fmt_number(np.int64(7)) == "7"
    assert T.fmt_number("attn") == "attn"
    assert T.fmt_interval(0.291, 0.2149, 0.3812, ".2g") == "0.29 [0.21, 0.38]"
    assert T.fmt_interval(1.0, math.nan, None, ".1f") == "1.0 [nan, --]"
    with pytest.raises(TypeError, match="spec"):
        T.fmt_number(1.0, 3)


# --------------------------------------------------------------------------- html


def test_to_html_structure_escaping_and_classes():
    rows = [{"name": "a<b & c", "x": 0.123456, "n": 3, "ok": True},
            {"name": "<script>", "x": math.nan, "n": None, "ok": False},
            {"name": "plain", "x": 2.0, "n": 5}]
    out = T.to_html(rows, caption="x < y", formats={"x": ".2f", "n": lambda v: f"{v} seeds"},
                    headers={"x": "rate <%>"})
    assert out.startswith('<div class="linattn-table-wrap">') and out.endswith("</div>")
    assert '<table class="linattn-table">' in out
    assert out.count("<tr>") == len(rows) + 1
    assert out.count("<thead>") == 1 and out.count("<tbody>") == 1
    assert "<caption>x &lt; y</caption>" in out
    assert "a&lt;b &amp; c" in out and "&lt;script&gt;" in out and "<script>" not in out
    assert "rate &lt;%&gt;" in out
    assert '<td class="num">0.12</td>' in out and '<td class="num">nan</td>' in out
    assert '<td class="num">3 seeds</td>' in out and "<td>--</td>" in out
    assert "<td>yes</td>" in out and "<td></td>" in out  # bool is text; a missing field is empty
    assert 'style=' not in out
    head = out.split("</thead>")[0]
    assert re.findall(r'<th scope="col"( class="num")?>', head) == ["", ' class="num"', ' class="num"', ""]


def test_to_html_default_format_and_bad_input():
    out = T.to_html([{"w": 1024, "v": 12345.678}], classes=["a", "b"])
    assert '<table class="a b">' in out and ">1024<" in out and ">1.23 × 10<sup>4</sup><" in out
    assert "<caption>" not in out
    with pytest.raises(ValueError, match="formats names columns"):
        T.to_html([{"a": 1}], formats={"b": ".2f"})
    with pytest.raises(ValueError, match="formats\\['a'\\]"):
        T.to_html([{"a": 1}], formats={"a": ".2z"})
    with pytest.raises(ValueError, match="classes"):
        T.to_html([{"a": 1}], classes=['x" onclick="y'])
    with pytest.raises(TypeError, match="caption"):
        T.to_html([{"a": 1}], caption=3)


# --------------------------------------------------------------------------- powers, intervals, rich cells


@pytest.mark.parametrize("v, spec, want", [
    (2e4, ".2g", "2 × 10⁴"), (12345.678, ".3g", "1.23 × 10⁴"), (1e-6, ".3g", "10⁻⁶"), (-1e-6, ".3g", "-10⁻⁶"),
    (-1.5e-12, ".3g", "-1.5 × 10⁻¹²"), (3.0e18, ".2e", "3.00 × 10¹⁸"), (0.5, ".3g", "0.5"), (1024, ".3g", "1024"),
    (1.4, ".1e", "1.4"), (-2.0, ".1e", "-2.0"), (math.nan, ".3g", "nan"), (math.inf, ".3g", "inf"), (None, ".3g", "--"), ("1e5", ".3g", "1e5"),
])
def test_fmt_power_writes_powers_of_ten(v, spec, want):
    assert T.fmt_power(v, spec) == want


def test_interval_cells_stay_together_and_handle_nan():
    rows = [{"m": "a", "r": T.interval(0.4213, 0.3561, 0.4932)},
            {"m": "b", "r": T.interval(math.nan, None, 2e-5)},
            {"m": "c", "r": T.Interval(1, 0, 2)}]
    out = T.to_html(rows, formats={"r": ".2g"}, sortable=True)
    assert ('<td class="num iv" data-v="0.4213"><span class="v">0.42</span> <span class="ci">[0.36, 0.49]</span></td>'
            in out)
    # NaN: shown as nan, no sort key; None -> --; a power in the interval written as one
    assert '<td class="num iv"><span class="v">nan</span> <span class="ci">[--, 2 × 10<sup>−5</sup>]</span></td>' in out
    assert '<span class="v">1</span> <span class="ci">[0, 2]</span>' in out  # ints keep their digits
    assert re.search(r'<th scope="col" class="num">r</th>', out)
    text = T.Table(rows, formats={"r": ".2g"}).to_text().splitlines()
    assert text[2].split("  ")[-1].strip() == "0.42 [0.36, 0.49]"
    assert text[3].strip().endswith("nan [--, 2 × 10⁻⁵]")
    assert str(T.interval(0.291, 0.21, 0.38)) == "0.291 [0.21, 0.38]"


def test_pow10_and_markup_cells():
    rows = [{"w": T.Pow10(18.29), "x": T.Markup("<a href='#s'>link</a>", text="link", sort=3.0)},
            {"w": T.Pow10(-2.5), "x": "a<b"}]
    out = T.to_html(rows, sortable=True)
    assert '<td class="num" data-v="18.29">10<sup>18.3</sup></td>' in out
    assert "10<sup>−2.5</sup>" in out
    assert "<td data-v=\"3.0\"><a href='#s'>link</a></td>" in out      # Markup is not escaped ...
    assert "<td>a&lt;b</td>" in out                                      # ... a plain string is
    t = T.Table(rows)
    assert "10^18.3" in repr(t) and "link" in repr(t) and "<a" not in repr(t)


def test_strings_that_read_as_numbers_are_right_aligned():
    out = T.to_html([{"a": "0.52 (0.99)", "b": "1.2 ± 0.3", "c": "rises", "d": "m = 16", "e": "-0.6 [-4.1, +2.9]"}])
    tds = re.findall(r"<td( class=\"num\")?>", out)
    assert tds == [' class="num"', ' class="num"', "", "", ' class="num"']


def test_paper_groups_and_column_classes():
    rows = [{"model": "MLP-Attn", "v1_16": 0.5, "ours_16": T.interval(0.61, 0.5, 0.7), "note": "long words"}]
    out = T.to_html(rows, paper=["v1_16"], groups=[("", 1), ("m = 16", 2), ("", 1)],
                    column_classes={"note": "wide"}, headers={"v1_16": "v1", "ours_16": "ours"})
    assert '<tr class="groups"><th scope="colgroup" colspan="1"></th><th scope="colgroup" colspan="2" class="group">m = 16</th>' in out
    assert '<th scope="col" class="num paper">v1</th>' in out and '<td class="num paper">0.5</td>' in out
    assert '<th scope="col" class="wide">note</th>' in out and '<td class="wide">long words</td>' in out
    assert out.count("<tr>") == 2 and "style=" not in out
    lines = T.Table(rows, paper=["v1_16"], groups=[("", 1), ("m = 16", 2), ("", 1)]).to_text().splitlines()
    assert lines[0].strip() == "m = 16" and lines[1].split()[:2] == ["model", "v1_16"]
    with pytest.raises(ValueError, match="groups must be"):
        T.to_html(rows, groups=[("a", 1), ("b", 1)])
    with pytest.raises(ValueError, match="paper names the column 'v2'"):
        T.to_html(rows, paper=["v2"])
    with pytest.raises(ValueError, match="column_classes"):
        T.to_html(rows, column_classes={"note": 'x" onclick="y'})


def test_sortable_and_filters_write_data_attributes():
    rows = [{"c": "b", "v": 2.0, "k": "x&y"}, {"c": "a", "v": math.nan, "k": "z"}]
    out = T.to_html(rows, ["c", "v"], sortable=True, filters={"kind": "kind of thing"},
                    row_data=lambda r: {"kind": r["k"]})
    assert '<table class="linattn-table linattn-sortable" data-filters="kind:kind of thing">' in out
    assert '<tr data-kind="x&amp;y"><td>b</td><td class="num" data-v="2.0">2</td></tr>' in out
    assert '<tr data-kind="z"><td>a</td><td class="num">nan</td></tr>' in out   # NaN: no sort key
    assert "data-v" not in T.to_html(rows, ["c", "v"])                          # only when sortable
    with pytest.raises(ValueError, match="filters need row_data"):
        T.to_html(rows, filters={"kind": "kind"})
    with pytest.raises(ValueError, match="data-attribute names"):
        T.to_html(rows, row_data=lambda r: {"Bad Key": 1})


def test_table_object_shows_html_in_the_book_and_text_in_a_terminal():
    rows = [{"model": "2L-ReLU", "acc": 0.9712, "n": 3}, {"model": "MLP<Attn>", "acc": 1e-7, "n": None}]
    t = T.Table(rows, floatfmt=".2f", formats={"acc": ".2g"}, caption="Accuracy & more")
    assert t._repr_html_() == t.html == T.to_html(rows, formats={"acc": ".2g", "model": ".2f", "n": ".2f"},
                                                      caption="Accuracy & more")
    assert "<caption>Accuracy &amp; more</caption>" in t.html and "MLP&lt;Attn&gt;" in t.html
    assert repr(t) == str(t) == t.to_text()
    lines = repr(t).splitlines()
    assert lines[0] == "Accuracy & more"
    assert lines[1].split() == ["model", "acc", "n"]
    assert lines[3].split() == ["2L-ReLU", "0.97", "3"] and lines[4].split() == ["MLP<Attn>", "10⁻⁷", "--"]
    assert len({len(x) for x in lines[1:]}) == 1
    assert repr(T.Table([])) == "(no rows)"
    with pytest.raises(ValueError, match="floatfmt"):
        T.Table(rows, floatfmt="q")
    with pytest.raises(ValueError, match="formats names columns"):
        T.Table(rows, formats={"zzz": ".2f"})


def test_book_css_and_js_are_vendored_and_wired():
    root = pathlib.Path(__file__).resolve().parents[1]
    css = (root / "book/_static/linattn.css").read_text()
    js = (root / "book/_static/linattn-tables.js").read_text()
    for cls in (".linattn-table-wrap", "overflow-x: auto", ".num", ".iv", ".paper", ".wide", "linattn-claims"):
        assert cls in css
    assert "http" not in css.replace("https://", "http") or "url(" not in css      # nothing fetched
    assert "http://" not in js and "https://" not in js and "import(" not in js   # no network, no library
    config = (root / "_config.yml").read_text()
    assert "book/_static" in config and "linattn.css" in config and "linattn-tables.js" in config
