"""Tidy rows and the tables made from them: group, summarize, pivot, print.

Results are *tidy rows*: a list of dicts, one dict per measurement, e.g.
``{"task": "cifar10", "model": "attn", "width": 1024, "seed": 0, "value": 0.31}``.
No pandas. This module turns such rows into the tables a chapter shows:

- :func:`summarize`: one row per group with mean, std, min, max, n, n_nan (and a
  t-interval of the mean with ``level=``);
- :func:`pivot`: one row per index tuple, one column per value of a field;
- :func:`to_text` and :func:`to_html`: print a table for a terminal or for the book;
- :func:`fmt_number`, :func:`fmt_interval` and :func:`fmt_power`: one cell as a reader writes it;
- :class:`Table`: a table that shows as styled HTML in the book and as text in a terminal, with
  cells that may be an :class:`Interval` (``0.42 [0.36, 0.49]``), a :class:`Pow10` or
  :class:`Markup`.

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
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    "fmt_power",
    "to_text",
    "to_html",
    "Table",
    "Interval",
    "interval",
    "Pow10",
    "Markup",
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
        return fmt
    spec = _check_spec(fmt, name)
    return lambda v: _fmt(v, spec)


# --------------------------------------------------------------------------- rich cells and HTML

_SUPERSCRIPT = str.maketrans("0123456789-+.", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺·")
_E_NOTATION = re.compile(r"^([+-]?\d+(?:\.\d*)?)e([+-]?)0*(\d+)$")
_NUMBER_LIKE = re.compile(r"^[+\-−±]?(\d|\.\d)[\d.,eE+\-−×^ \[\](){}±/%<>≤≥~·⁰¹²³⁴⁵⁶⁷⁸⁹⁻]*$")


class Markup(str):
    """A cell (or a header, a formatter's output) that is already HTML: :func:`to_html` puts it in
    unescaped. ``text`` is what a plain-text table shows instead (default: the string itself);
    ``sort`` an optional number a sortable table sorts the cell by.

    Only for HTML the code builds itself (links, ``<sub>``); never wrap text that came from outside.
    """

    def __new__(cls, html_text: str, text: str | None = None, sort: float | None = None):
        obj = super().__new__(cls, html_text)
        obj.text = str(html_text) if text is None else str(text)
        obj.sort = sort
        return obj


@dataclass(frozen=True)
class Interval:
    """A value with its interval, shown as ``"0.42 [0.36, 0.49]"`` and kept on one line.

    Each of ``value``, ``lo``, ``hi`` is formatted by the column's format spec (NaN -> ``nan``,
    None -> ``--``); the cell sorts by ``value``.
    """

    value: Any
    lo: Any
    hi: Any

    def __str__(self) -> str:
        return fmt_interval(self.value, self.lo, self.hi)


@dataclass(frozen=True)
class Pow10:
    """A number known by its base-10 logarithm (a width of 10^18.3): shown as ``10^18.3``
    (HTML: 10<sup>18.3</sup>), the exponent by the column's format spec; sorts by ``log10``."""

    log10: Any

    def __str__(self) -> str:
        return f"10^{_fmt(self.log10, '.3g')}"


def interval(value: Any, lo: Any, hi: Any) -> Interval:
    """``Interval(value, lo, hi)``: a table cell ``"value [lo, hi]"``."""
    return Interval(value, lo, hi)


def _power(text: str, html_out: bool) -> str:
    """``"2e+04"`` -> ``"2 × 10⁴"`` (text) or ``"2 × 10<sup>4</sup>"`` (HTML); ``"1e-06"`` ->
    ``10⁻⁶``; anything that is not one number in e-notation is returned as it is (escaped for HTML)."""
    m = _E_NOTATION.match(text)
    if m is None:
        return html.escape(text) if html_out else text
    mant, sign, exp = m.groups()
    if exp == "0":                                      # 1.4e+00 is 1.4
        return html.escape(mant) if html_out else mant
    exp = ("-" if sign == "-" else "") + exp
    if html_out:
        power = f"10<sup>{exp.replace('-', '−')}</sup>"
        mant = mant.replace("-", "−")
        sep = " × "
    else:
        power = "10" + exp.translate(_SUPERSCRIPT)
        sep = " × "
    if mant in ("1", "+1"):
        return power
    if mant == "-1":
        return ("−" if html_out else "-") + power
    return f"{mant}{sep}{power}"


def fmt_power(v: Any, spec: str = ".3g") -> str:
    """One number as a reader writes it: :func:`fmt_number`, with a power of ten written
    ``2 × 10⁴`` (Unicode superscripts) instead of ``2e+04``; ``1e-06`` gives ``10⁻⁶``. For text
    that a reader sees (glued prose, tables); :func:`fmt_number` keeps the terse form."""
    _check_spec(spec, "spec")
    text = _fmt(v, spec)
    return _power(text, html_out=False) if _is_number(v) else text


def _is_num_cell(v: Any) -> bool:
    return _is_number(v) or isinstance(v, (Interval, Pow10))


def _render(v: Any, fmt: Callable[[Any], Any], spec: str | None) -> tuple[str, str, bool, float | None]:
    """One cell: (text, html, right-aligned?, sort key)."""
    if v is None:
        return "--", "--", False, None
    if isinstance(v, Markup):
        return v.text, str(v), False, v.sort
    if isinstance(v, Interval) and spec is not None:
        parts = [_fmt(x, spec) for x in (v.value, v.lo, v.hi)]
        text = f"{_power(parts[0], False)} [{_power(parts[1], False)}, {_power(parts[2], False)}]"
        html_ = (f'<span class="v">{_power(parts[0], True)}</span> '
                 f'<span class="ci">[{_power(parts[1], True)}, {_power(parts[2], True)}]</span>')
        key = v.value if _is_number(v.value) else None
        return text, html_, True, key
    if isinstance(v, Pow10) and spec is not None:
        e = _fmt(v.log10, spec)
        return f"10^{e}", f"10<sup>{html.escape(e).replace('-', '−')}</sup>", True, v.log10
    out = fmt(v)
    if isinstance(out, Markup):
        return out.text, str(out), _is_num_cell(v), _sort_key(v)
    out = str(out)
    if isinstance(v, (bool, np.bool_)) or isinstance(v, str):
        num = isinstance(v, str) and bool(_NUMBER_LIKE.match(v.strip()))
        return out, html.escape(out), num, None
    return _power(out, False), _power(out, True), _is_num_cell(v), _sort_key(v)


def _sort_key(v: Any) -> float | None:
    if isinstance(v, Interval):
        v = v.value
    if isinstance(v, Pow10):
        v = v.log10
    if _is_number(v):
        return float(v)
    return None


def _check_classes(classes: str | Iterable[str], name: str) -> list[str]:
    if isinstance(classes, str):
        classes = classes.split()
    classes = list(classes)
    for c in classes:
        if not isinstance(c, str) or not c or any(ch.isspace() or ch in "\"'<>&=" for ch in c):
            raise ValueError(f"{name} must be CSS class names (no spaces or quotes), got {c!r}")
    return classes


_ATTR_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _attrs(d: Mapping[str, Any], name: str) -> str:
    out = []
    for k, v in d.items():
        if not isinstance(k, str) or not _ATTR_NAME.match(k):
            raise ValueError(f"{name} keys must be data-attribute names such as 'chapter' (lower case, digits, "
                             f"hyphens), got {k!r}")
        out.append(f' data-{k}="{html.escape(str(v), quote=True)}"')
    return "".join(out)


def to_html(rows: Sequence[Mapping], columns: Iterable[Any] | None = None, *,
            headers: Mapping | Sequence | None = None, formats: Mapping[Any, Format] | None = None,
            caption: str | None = None, classes: str | Iterable[str] = "linattn-table",
            paper: Iterable[Any] = (), groups: Sequence[tuple[str, int]] | None = None,
            column_classes: Mapping[Any, str | Iterable[str]] | None = None, sortable: bool = False,
            filters: Mapping[str, str] | None = None,
            row_data: Callable[[Mapping], Mapping[str, Any]] | None = None) -> str:
    """An HTML table of ``rows``, wrapped in ``<div class="linattn-table-wrap">`` (the book's CSS,
    ``book/_static/linattn.css``, lets that div scroll horizontally rather than clip a wide table).

    ``columns`` default to every field in order of first appearance. ``formats`` maps a column to
    a format spec (``".2f"``) or a callable value -> str; other columns use ``".3g"`` (None ->
    ``--``, a missing field -> empty, bool -> yes/no). A number in e-notation is written as a
    power of ten (``2 × 10<sup>4</sup>``). A cell may be an :class:`Interval` (``0.42 [0.36,
    0.49]``, kept on one line, each part by the column's spec), a :class:`Pow10` (a value given by
    its log10) or :class:`Markup` (HTML the code built; not escaped). All other text (headers,
    cells, callable output, caption) is HTML-escaped.

    Classes, for the CSS: numeric cells (int/float, NaN, Interval, Pow10; not bool) and strings
    that read as numbers (``"0.52 (0.99)"``) get ``num`` (right-aligned, not wrapped), a header
    ``num`` when its column holds only numbers; the columns in ``paper`` (the paper's values
    beside ours) get ``paper``; ``column_classes`` adds classes to a column's header and cells
    (``{"note": "wide"}`` gives a wrapping column of readable width). ``groups``: a header row
    above the column names, ``[(label, span), ...]`` covering the columns left to right (label
    "" for none), e.g. ``[("", 2), ("m = 16", 2)]``. ``classes`` go on the ``<table>``; no inline
    styles.

    Interaction (``book/_static/linattn-tables.js``, the table stays readable without it):
    ``sortable`` lets a reader sort by clicking a header (numbers by value: cells carry
    ``data-v``); ``filters`` (``{"chapter": "Chapter", ...}``) adds one drop-down per key over
    the values that ``row_data(row)`` (a dict key -> value, written as ``data-key`` on the row's
    ``<tr>``) takes, and a search box.
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
    specs = {c: (None if callable(formats.get(c)) else formats.get(c, ".3g")) for c in cols}
    classes = _check_classes(classes, "classes")
    if sortable:
        classes.append("linattn-sortable")
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"caption must be a string or None, got {type(caption).__name__}")
    if isinstance(paper, str):
        paper = [paper]
    paper = list(paper)
    extra = {c: [] for c in cols}
    for c in paper:
        if c not in extra:
            raise ValueError(f"paper names the column {c!r} that the table does not have; columns are {cols!r}")
        extra[c].append("paper")
    for c, cl in (column_classes or {}).items():
        if c not in extra:
            raise ValueError(f"column_classes names the column {c!r} that the table does not have; columns are {cols!r}")
        extra[c] += _check_classes(cl, f"column_classes[{c!r}]")
    if groups is not None:
        groups = [tuple(g) for g in groups]
        if any(len(g) != 2 or not isinstance(g[0], str) or not isinstance(g[1], int) or g[1] < 1 for g in groups) \
                or sum(g[1] for g in groups) != len(cols):
            raise ValueError(f"groups must be (label, span) pairs with spans >= 1 adding up to the {len(cols)} "
                             f"columns, got {groups!r}")
    if filters is not None:
        if row_data is None:
            raise ValueError("filters need row_data, a function row -> {key: value} for the rows' data attributes")
        _attrs(filters, "filters")
    if row_data is not None and not callable(row_data):
        raise TypeError(f"row_data must be a function row -> dict, got {type(row_data).__name__}")

    def cls(names: list[str]) -> str:
        return f' class="{" ".join(names)}"' if names else ""

    esc = html.escape
    out = ['<div class="linattn-table-wrap">']
    attrs = ""
    if filters:
        attrs = ' data-filters="' + esc(",".join(f"{k}:{v}" for k, v in filters.items()), quote=True) + '"'
    out.append(f'<table class="{esc(" ".join(classes))}"{attrs}>' if classes else f"<table{attrs}>")
    if caption is not None:
        out.append(f"<caption>{caption if isinstance(caption, Markup) else esc(caption)}</caption>")
    if not cols:
        out += ["<tbody>", "</tbody>", "</table>", "</div>"]
        return "\n".join(out)
    out.append("<thead>")
    if groups is not None:
        out.append('<tr class="groups">' + "".join(
            f'<th scope="colgroup" colspan="{n}"{cls(["group"] if label else [])}>{esc(label)}</th>'
            for label, n in groups) + "</tr>")
    ths = []
    for c, label in zip(cols, labels):
        present = [r[c] for r in rows if c in r and r[c] is not None]
        num = bool(present) and all(_is_num_cell(v) for v in present)
        text = str(headers[c]) if isinstance(headers, Mapping) and isinstance(headers.get(c), Markup) else esc(label)
        ths.append(f'<th scope="col"{cls((["num"] if num else []) + extra[c])}>{text}</th>')
    out.append("<tr>" + "".join(ths) + "</tr>")
    out.append("</thead>")
    out.append("<tbody>")
    for r in rows:
        tds = []
        for c in cols:
            if c not in r:
                tds.append(f"<td{cls(extra[c])}></td>")
                continue
            _, h, num, key = _render(r[c], fmts[c], specs[c])
            names = (["num"] if num else []) + (["iv"] if isinstance(r[c], Interval) else []) + extra[c]
            sort = f' data-v="{key!r}"' if sortable and key is not None and math.isfinite(key) else ""
            tds.append(f"<td{cls(names)}{sort}>{h}</td>")
        tr = "<tr>" if row_data is None else f"<tr{_attrs(row_data(r), 'row_data')}>"
        out.append(tr + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    return "\n".join(out)


class Table:
    """A table for the book: shows as styled HTML (``_repr_html_``, via :func:`to_html`) in the
    book and JupyterLab, and as aligned text (``repr``) in a terminal and in a notebook's stored
    text output (what nbval compares). Arguments as :func:`to_html`; ``floatfmt`` is the default
    format spec of every column (a column in ``formats`` keeps its own).

    A chapter's cell ends with ``tables.Table(rows, caption=...)`` (or ``display(...)`` of it).
    """

    def __init__(self, rows: Sequence[Mapping], columns: Iterable[Any] | None = None, *, floatfmt: str = ".3g",
                 headers: Mapping | Sequence | None = None, formats: Mapping[Any, Format] | None = None,
                 caption: str | None = None, **html_options: Any):
        self.rows = _check_rows(rows)
        self.columns = _columns(self.rows, columns)
        _check_spec(floatfmt, "floatfmt")
        if formats is not None and not isinstance(formats, Mapping):
            raise TypeError(f"formats must be a dict column -> spec or callable, got {type(formats).__name__}")
        self.formats = {**{c: floatfmt for c in self.columns}, **(formats or {})}
        self.headers = headers
        self.caption = caption
        self.html_options = html_options
        self.html = to_html(self.rows, self.columns, headers=headers, formats=self.formats, caption=caption,
                            **html_options)  # validates every argument now, in the cell that builds it

    def _repr_html_(self) -> str:
        return self.html

    def to_text(self) -> str:
        """Aligned text: an optional caption line, group labels, headers, a rule, one line per row."""
        cols = self.columns
        if not cols:
            return "(no rows)"
        labels = [h.text if isinstance(h, Markup) else h for h in _headers(cols, self.headers)]
        if isinstance(self.headers, Mapping):
            labels = [self.headers[c].text if isinstance(self.headers.get(c), Markup) else lab
                      for c, lab in zip(cols, labels)]
        fmts = {c: _formatter(self.formats[c], f"formats[{c!r}]") for c in cols}
        specs = {c: (None if callable(self.formats[c]) else self.formats[c]) for c in cols}
        body = [[_render(r[c], fmts[c], specs[c])[0] if c in r else "" for c in cols] for r in self.rows]
        widths = [max(len(line[j]) for line in [labels] + body) for j in range(len(cols))]
        groups = self.html_options.get("groups")
        lines = []
        if groups:
            j, parts = 0, []
            for label, n in groups:
                w = sum(widths[j:j + n]) + 2 * (n - 1)
                if len(label) > w:
                    widths[j + n - 1] += len(label) - w
                    w = len(label)
                parts.append(label.center(w))
                j += n
            lines.append("  ".join(parts).rstrip())
        lines.append("  ".join(c.rjust(w) for c, w in zip(labels, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in body]
        if self.caption:
            lines.insert(0, self.caption.text if isinstance(self.caption, Markup) else self.caption)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__
