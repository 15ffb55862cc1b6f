"""Tidy rows and the tables made from them: group, summarize, pivot, print.

Results are *tidy rows*: a list of dicts, one dict per measurement, e.g.
``{"task": "cifar10", "model": "attn", "width": 1024, "seed": 0, "value": 0.31}``.
No pandas. This module turns such rows into the tables a chapter shows:

- :func:`summarize`: one row per group with mean, std, min, max, n, n_nan (and a
  t-interval of the mean with ``level=``);
- :func:`pivot`: one row per index tuple, one column per value of a field;
- :func:`to_text` and :func:`to_html`: print a table for a terminal or for the book;
- :func:`fmt_number` and :func:`fmt_interval`: one cell as a reader writes it.

**The NaN rule** (one rule for the whole package): a non-finite value (NaN, inf, or
``None`` for "no value") is left out of every statistic and counted in ``n_nan``; a
group with no finite value gets NaN statistics. Values may be ``bool`` (counted as
0/1), ``int``, ``float`` or a string holding a number (``"nan"``, as older result
files stored non-finite floats); any other string is an error naming the row and key.
"""
from __future__ import annotations

import html
import math
import numbers
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as _sps

from ._validation import check_range

__all__ = [
    "Row",
    "as_keys",
    "numeric",
    "numeric_column",
    "group_rows",
    "grouped_values",
    "summarize",
    "pivot",
    "fmt_number",
    "fmt_interval",
    "to_text",
    "to_html",
]

Row = dict[str, Any]
Format = str | Callable[[Any], str]


# --------------------------------------------------------------------------- validation


def as_keys(keys: str | Iterable[str], name: str) -> tuple[str, ...]:
    """``keys`` as a tuple of field names: one name (a str) or a sequence of names."""
    if isinstance(keys, str):
        return (keys,)
    try:
        out = tuple(keys)
    except TypeError as exc:
        raise TypeError(f"{name} must be a field name or a tuple of field names, got {keys!r}") from exc
    for k in out:
        if not isinstance(k, Hashable):
            raise TypeError(f"{name} must hold field names, got the unhashable {k!r}; pass names such as ('task', 'model')")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} names a field twice: {out!r}; name each field once")
    return out


def _check_rows(rows: Any, name: str = "rows") -> list[Mapping]:
    if isinstance(rows, Mapping) or isinstance(rows, (str, bytes)):
        raise TypeError(f"{name} must be a list of dicts (tidy rows), got a {type(rows).__name__}; wrap one row as [row]")
    try:
        out = list(rows)
    except TypeError as exc:
        raise TypeError(f"{name} must be a list of dicts (tidy rows), got {type(rows).__name__}") from exc
    for i, r in enumerate(out):
        if not isinstance(r, Mapping):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(r).__name__} {r!r}; rows are lists of dicts")
    return out


def _get(row: Mapping, key: Any, i: int, arg: str) -> Any:
    try:
        return row[key]
    except KeyError:
        raise ValueError(
            f"rows[{i}] has no field {key!r} (named by {arg}); its fields are {sorted(map(str, row))}; "
            f"pass {arg} names that every row has"
        ) from None


def numeric(v: Any, where: str = "value") -> float:
    """One value as a float under the NaN rule: bool -> 0/1, None -> NaN, numeric str -> float.

    ``where`` names the value in the error (e.g. ``"rows[3]['value']"``).
    """
    if v is None:
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise TypeError(f"{where} must be a number, got the string {v!r}; store numbers, not text") from None
    raise TypeError(f"{where} must be a number (bool, int, float), got {type(v).__name__} {v!r}")


def numeric_column(rows: Sequence[Mapping], key: str, *, name: str = "key") -> np.ndarray:
    """The values of field ``key`` over ``rows`` as a float array, shape (len(rows),), NaN kept
    (:func:`numeric` on each); ``name`` is the argument that named ``key``, for errors."""
    rows = _check_rows(rows)
    return np.array([numeric(_get(r, key, i, name), f"rows[{i}][{key!r}]") for i, r in enumerate(rows)], float)


def _group_indices(rows: list[Mapping], by: tuple[str, ...]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        key = tuple(_get(r, k, i, "by") for k in by)
        try:
            groups.setdefault(key, []).append(i)
        except TypeError:
            raise TypeError(f"rows[{i}] has an unhashable value in the group fields {by}: {key!r}; "
                            f"group by scalar fields") from None
    return groups


def group_rows(rows: Sequence[Mapping], by: str | Iterable[str]) -> dict[tuple, list[Mapping]]:
    """The rows of each group: ``{(r[by[0]], r[by[1]], ...): [rows...]}``, groups in order of first appearance."""
    by = as_keys(by, "by")
    rows = _check_rows(rows)
    return {key: [rows[i] for i in idx] for key, idx in _group_indices(rows, by).items()}


def grouped_values(rows: Sequence[Mapping], by: str | Iterable[str], value: str,
                   *, name: str = "value") -> dict[tuple, np.ndarray]:
    """``{group key: float array of r[value] over the group's rows}`` (NaN kept; errors name
    the row's index in ``rows``)."""
    by = as_keys(by, "by")
    rows = _check_rows(rows)
    return {
        key: np.array([numeric(_get(rows[i], value, i, name), f"rows[{i}][{value!r}]") for i in idx], float)
        for key, idx in _group_indices(rows, by).items()
    }


# --------------------------------------------------------------------------- summarize


def _finite_stats(v: np.ndarray, level: float | None) -> dict[str, float | int]:
    """Statistics of the finite entries of ``v`` (shape (m,)) under the NaN rule."""
    ok = v[np.isfinite(v)]
    n = int(ok.size)
    out: dict[str, float | int]
    if n:
        out = {"mean": float(ok.mean()), "std": float(ok.std()), "min": float(ok.min()), "max": float(ok.max())}
    else:
        out = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    out.update(n=n, n_nan=int(v.size - n))
    if level is not None:
        if n >= 2:
            half = _sps.t.ppf(0.5 + level / 2, n - 1) * ok.std(ddof=1) / math.sqrt(n)
            out.update(lo=float(ok.mean() - half), hi=float(ok.mean() + half))
        else:
            out.update(lo=math.nan, hi=math.nan)
    return out


def summarize(rows: Sequence[Mapping], by: str | Iterable[str], value: str = "value", *,
              level: float | None = None) -> list[Row]:
    """One row per group of ``rows`` by the fields ``by``: the statistics of field ``value``.

    For the finite values x_1..x_n of a group (the NaN rule: non-finite values are left
    out and counted in ``n_nan``)::

        mean = sum x_i / n,   std = sqrt(sum (x_i - mean)^2 / n)   (ddof = 0),
        min, max, n, n_nan.

    With ``level`` (e.g. 0.95) also ``lo, hi = mean -+ t_{(1+level)/2, n-1} s / sqrt(n)``,
    the t-interval of the mean with the sample std ``s`` (ddof = 1); NaN when n < 2.
    A group with no finite value gets NaN statistics and n = 0.

    Returns a list of dicts (groups in order of first appearance): the ``by`` fields, then
    ``mean, std, min, max, n, n_nan`` (then ``lo, hi``).
    """
    by = as_keys(by, "by")
    if level is not None:
        level = check_range(level, "level", 0.0, 1.0, lo_open=True, hi_open=True)
    return [{**dict(zip(by, key)), **_finite_stats(v, level)}
            for key, v in grouped_values(rows, by, value).items()]


# --------------------------------------------------------------------------- pivot


def pivot(rows: Sequence[Mapping], index: str | Iterable[str], column: str, value: str = "mean", *,
          columns: Iterable[Any] | None = None, extra: Iterable[str] = ()) -> list[Row]:
    """Spread ``rows`` into a wide table: one row per ``index`` tuple, one key per ``column`` value.

    Output row for index tuple ``t``: the ``index`` fields, then for each column value ``c``
    (``columns`` in the given order, or the distinct values of ``r[column]`` in order of
    first appearance) the key ``c`` holding ``r[value]`` of the row with ``r[index] == t``
    and ``r[column] == c``, followed by ``f"{c}_{f}"`` holding ``r[f]`` for each ``f`` in
    ``extra`` (``extra=("std",)`` gives ``"1024_std"``). A cell no row fills holds None;
    rows whose ``column`` value is not in ``columns`` are skipped. Two rows filling the same
    cell are an error (filter or summarize first).
    """
    index = as_keys(index, "index")
    extra = as_keys(extra, "extra")
    rows = _check_rows(rows)
    for k in (column, value):
        if not isinstance(k, Hashable) or isinstance(k, (list, tuple)):
            raise TypeError(f"column and value must be single field names, got {k!r}")
    if columns is None:
        cols = list(dict.fromkeys(_get(r, column, i, "column") for i, r in enumerate(rows)))
    else:
        cols = list(columns)
        if len(set(cols)) != len(cols):
            raise ValueError(f"columns lists a value twice: {cols!r}; list each column once")
    clash = set(index) & ({c for c in cols} | {f"{c}_{f}" for c in cols for f in extra})
    if clash:
        raise ValueError(f"the column values {sorted(map(str, clash))} clash with the index fields {index}; rename a field")
    wanted = set(cols)
    table: dict[tuple, Row] = {}
    filled: set[tuple] = set()
    for i, r in enumerate(rows):
        c = _get(r, column, i, "column")
        if c not in wanted:
            continue
        key = tuple(_get(r, k, i, "index") for k in index)
        if (key, c) in filled:
            raise ValueError(
                f"rows[{i}] fills the cell index={key!r}, {column}={c!r} a second time; "
                f"filter the rows or add the field that tells them apart to index"
            )
        filled.add((key, c))
        if key not in table:
            table[key] = {**dict(zip(index, key))}
            for cc in cols:
                table[key][cc] = None
                for f in extra:
                    table[key][f"{cc}_{f}"] = None
        table[key][c] = _get(r, value, i, "value")
        for f in extra:
            table[key][f"{c}_{f}"] = _get(r, f, i, "extra")
    return list(table.values())


# --------------------------------------------------------------------------- cells


def _check_spec(spec: Any, name: str) -> str:
    if not isinstance(spec, str):
        raise TypeError(f"{name} must be a format spec string such as '.3g', got {spec!r}")
    try:
        format(1.5, spec)
    except ValueError as exc:
        raise ValueError(f"{name}={spec!r} is not a format spec for a float ({exc}); use e.g. '.3g' or '.2f'") from None
    return spec


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def fmt_number(v: Any, spec: str = ".3g") -> str:
    """One cell as a reader writes it.

    float -> ``format(v, spec)`` (NaN -> ``"nan"``, inf -> ``"inf"``); int -> its digits
    (``1024``, not ``1.02e+03``); bool -> ``"yes"``/``"no"``; None -> ``"--"``;
    anything else -> ``str(v)``.
    """
    _check_spec(spec, "spec")
    return _fmt(v, spec)


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return "--"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        return "nan" if math.isnan(f) else format(f, spec)
    return str(v)


def fmt_interval(mean: Any, lo: Any, hi: Any, spec: str = ".3g") -> str:
    """``"mean [lo, hi]"``, each number by :func:`fmt_number`: ``fmt_interval(0.291, 0.21, 0.38, ".2g")``
    gives ``"0.29 [0.21, 0.38]"``."""
    _check_spec(spec, "spec")
    return f"{_fmt(mean, spec)} [{_fmt(lo, spec)}, {_fmt(hi, spec)}]"


# --------------------------------------------------------------------------- tables


def _columns(rows: list[Mapping], columns: Iterable[Any] | None) -> list[Any]:
    if columns is None:
        return list(dict.fromkeys(k for r in rows for k in r))
    if isinstance(columns, str):
        raise TypeError(f"columns must be a list of field names, got the string {columns!r}; write [{columns!r}]")
    return list(columns)


def _headers(columns: list[Any], headers: Mapping | Sequence | None) -> list[str]:
    if headers is None:
        return [str(c) for c in columns]
    if isinstance(headers, Mapping):
        return [str(headers.get(c, c)) for c in columns]
    if isinstance(headers, str):
        raise TypeError(f"headers must be a dict (column -> label) or a list of labels, got the string {headers!r}")
    headers = list(headers)
    if len(headers) != len(columns):
        raise ValueError(f"headers has {len(headers)} labels for {len(columns)} columns; give one label per column "
                         f"or a dict column -> label")
    return [str(h) for h in headers]


def to_text(rows: Sequence[Mapping], columns: Iterable[Any] | None = None, *, floatfmt: str = ".3g",
            headers: Mapping | Sequence | None = None) -> str:
    """A plain-text table: a header line, a dashed rule, one right-aligned line per row.

    ``columns`` default to every field in order of first appearance; cells by
    :func:`fmt_number` with ``floatfmt`` (NaN -> ``nan``, None -> ``--``; a missing field
    prints empty). ``headers``: a dict column -> label or one label per column.
    No rows and no columns gives ``"(no rows)"``.
    """
    rows = _check_rows(rows)
    _check_spec(floatfmt, "floatfmt")
    cols = _columns(rows, columns)
    if not cols:
        return "(no rows)"
    cells = [_headers(cols, headers)] + [[_fmt(r[c], floatfmt) if c in r else "" for c in cols] for r in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _formatter(fmt: Format, name: str) -> Callable[[Any], str]:
    if callable(fmt):
        return lambda v: str(fmt(v))
    spec = _check_spec(fmt, name)
    return lambda v: _fmt(v, spec)


def to_html(rows: Sequence[Mapping], columns: Iterable[Any] | None = None, *,
            headers: Mapping | Sequence | None = None, formats: Mapping[Any, Format] | None = None,
            caption: str | None = None, classes: str | Iterable[str] = "linattn-table") -> str:
    """An HTML table of ``rows``, wrapped in ``<div class="linattn-table-wrap">`` (the book's
    CSS lets that div scroll horizontally rather than clip a wide table).

    ``columns`` default to every field in order of first appearance. ``formats`` maps a
    column to a format spec (``".2f"``) or a callable value -> str; other columns use
    :func:`fmt_number` with ``".3g"`` (None -> ``--``, a missing field -> empty). All text
    (headers, cells, callable output, caption) is HTML-escaped. Numeric cells (int/float,
    NaN included, not bool) get ``class="num"``, and so does a header whose column holds
    only numbers. ``classes`` go on the ``<table>``; no inline styles.
    """
    rows = _check_rows(rows)
    cols = _columns(rows, columns)
    labels = _headers(cols, headers)
    if formats is None:
        formats = {}
    if not isinstance(formats, Mapping):
        raise TypeError(f"formats must be a dict column -> spec or callable, got {type(formats).__name__}")
    unknown = [c for c in formats if c not in cols]
    if unknown:
        raise ValueError(f"formats names columns {unknown!r} that the table does not have; columns are {cols!r}")
    fmts = {c: _formatter(formats.get(c, ".3g"), f"formats[{c!r}]") for c in cols}
    if isinstance(classes, str):
        classes = classes.split()
    classes = list(classes)
    for c in classes:
        if not isinstance(c, str) or not c or any(ch.isspace() or ch in "\"'<>&" for ch in c):
            raise ValueError(f"classes must be CSS class names (no spaces or quotes), got {c!r}")
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"caption must be a string or None, got {type(caption).__name__}")

    esc = html.escape
    out = ['<div class="linattn-table-wrap">']
    out.append(f'<table class="{esc(" ".join(classes))}">' if classes else "<table>")
    if caption is not None:
        out.append(f"<caption>{esc(caption)}</caption>")
    if not cols:
        out += ["<tbody>", "</tbody>", "</table>", "</div>"]
        return "\n".join(out)
    out.append("<thead>")
    ths = []
    for c, label in zip(cols, labels):
        present = [r[c] for r in rows if c in r and r[c] is not None]
        num = bool(present) and all(_is_number(v) for v in present)
        ths.append(f'<th scope="col" class="num">{esc(label)}</th>' if num else f'<th scope="col">{esc(label)}</th>')
    out.append("<tr>" + "".join(ths) + "</tr>")
    out.append("</thead>")
    out.append("<tbody>")
    for r in rows:
        tds = []
        for c in cols:
            if c not in r:
                tds.append("<td></td>")
                continue
            v = r[c]
            text = "--" if v is None else fmts[c](v)
            tds.append(f'<td class="num">{esc(text)}</td>' if _is_number(v) else f"<td>{esc(text)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    return "\n".join(out)
