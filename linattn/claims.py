"""The claims registry: every number the book states about the paper, as data.

One YAML file (``linattn/claims.yml``) holds a list of entries::

    - id: gram_kappa_mnist_n100          # unique, snake_case
      chapter: book/gram_spectrum.ipynb  # the chapter that measures it
      quantity: "kappa(G), MNIST"        # what it is, in the book's words
      paper: {value: 1.2e3, version: v1} # the paper's number (DIGEST.md); value null if none
      ours: {value: 1234.5, scale: quick, rtol: 1.0e-6}  # our measured value; rtol/atol
      largest: {value: 987.6, scale: "paper (...)", rtol: 1.0e-6, lo: 900, hi: 1100}  # optional
      check: {kind: order, tol: 1}       # how ours compares with the paper
      verdict: reproduced                # see VERDICTS
      depends: "how the verdict moves with scale or an open choice"      # optional
      note: "what we chose, why it differs"

``ours`` is the value at the scale the book is built with (``quick``); ``largest``, when present,
the value at the largest scale measured (stored paper-scale results), optionally with an interval
``lo``/``hi`` (e.g. over seeds or a binomial interval). The verdict is taken from ``largest``
when it exists: a verdict names its scale. With an interval the verdict must hold at both ends as
well as at the value; an interval that spans two verdicts gives "inconclusive".

Two comparisons, kept apart:

* **ours vs the live computation** (``record``): a chapter recomputes the value and
  :func:`record` raises :class:`ClaimMismatch` if it leaves ``ours`` by more than
  ``rtol``/``atol`` -- the build and the tests fail. This is the stated-numbers check.
  After an intended change of the computation (a new precision, a new default), set
  ``LINATTN_CLAIMS_COLLECT=FILE`` while executing the chapters: :func:`record` then appends each
  checked value to FILE (JSON lines) instead of raising, and ``scripts/update_claims.py FILE``
  writes the new values into the registry and lists the verdicts that changed, for review.
* **ours vs the paper** (``check``, giving the verdict):

  ========== =========================================== ===================== ================
  kind       reproduced                                  partly                not reproduced
  ========== =========================================== ===================== ================
  value      |ours - paper| <= tol |paper|               within a factor 2     otherwise
  order      |log10(ours / paper)| <= tol                <= 2 tol              otherwise
  ratio_range  lo <= ours <= hi                          within a factor 2     otherwise
  trend      ours truthy (the trend holds)               --                    ours falsy
  ========== =========================================== ===================== ================

  A ``verdict`` written in the file must equal the one computed (tests check it); an
  entry may instead set ``verdict`` with ``check: {kind: judged, reason: ...}`` where
  no number can be compared (the reason is shown), including "not tested at this scale" for a
  value measured only where it cannot mean what the paper means (an untrained network, say).
"""
from __future__ import annotations

import functools
import json
import math
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Claim", "ClaimMismatch", "REGISTRY_PATH", "load_registry", "get", "record", "record_many",
           "paper", "verdict_of", "table", "registry_table", "locate", "pretty_math", "VERDICTS"]

REGISTRY_PATH = pathlib.Path(__file__).with_name("claims.yml")
VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not tested at this scale")
CHECK_KINDS = ("value", "order", "ratio_range", "trend", "judged")


class ClaimMismatch(AssertionError):
    """A recomputed number left the value the book states for it."""


@dataclass(frozen=True)
class Claim:
    id: str
    chapter: str
    quantity: str
    paper: dict
    ours: dict
    check: dict
    verdict: str
    note: str = ""
    largest: dict | None = None
    depends: str = ""

    @property
    def scale(self) -> str:
        return self.ours.get("scale", "quick")

    @property
    def at(self) -> str:
        """The scale ``ours.value`` was measured at: "quick", "paper", or "any" (arithmetic on the
        paper's own numbers, the same at every scale). ``ours.at`` if given, else the first word
        of ``ours.scale``."""
        if "at" in self.ours:
            return self.ours["at"]
        first = str(self.scale).split(" ", 1)[0]
        return first if first in ("quick", "paper") else "any"


def _validate(entry: dict, i: int) -> Claim:
    where = f"claims.yml entry {i} ({entry.get('id', '?')})"
    required = ("id", "chapter", "quantity", "paper", "ours", "check", "verdict")
    missing = [k for k in required if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    unknown = set(entry) - set(required) - {"note", "largest", "depends"}
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    if entry["verdict"] not in VERDICTS:
        raise ValueError(f"{where}: verdict must be one of {VERDICTS}, got {entry['verdict']!r}")
    if entry["check"].get("kind") not in CHECK_KINDS:
        raise ValueError(f"{where}: check.kind must be one of {CHECK_KINDS}")
    if entry["paper"].get("version") not in ("v1", "v2", "v1+v2", "abs"):
        raise ValueError(f"{where}: paper.version must be v1, v2, v1+v2 or abs")
    if "value" not in entry["ours"]:
        raise ValueError(f"{where}: ours.value is required")
    if entry["ours"].get("at", "quick") not in ("quick", "paper", "any"):
        raise ValueError(f"{where}: ours.at must be quick, paper or any")
    largest = entry.get("largest")
    if largest is not None and ("value" not in largest or "scale" not in largest):
        raise ValueError(f"{where}: largest needs a value and a scale")
    return Claim(**{k: entry.get(k, "") for k in (*required, "note", "depends")}, largest=largest)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, Claim]:
    entries = yaml.safe_load(pathlib.Path(path).read_text()) or []
    out: dict[str, Claim] = {}
    for i, e in enumerate(entries):
        c = _validate(e, i)
        if c.id in out:
            raise ValueError(f"claims.yml: duplicate id {c.id!r}")
        out[c.id] = c
    return out


def load_registry(path: str | pathlib.Path | None = None) -> dict[str, Claim]:
    """All claims, by id (validated; duplicate ids are an error)."""
    p = pathlib.Path(path) if path is not None else REGISTRY_PATH
    return _load(str(p), p.stat().st_mtime)


def get(claim_id: str) -> Claim:
    reg = load_registry()
    if claim_id not in reg:
        raise KeyError(f"no claim {claim_id!r} in {REGISTRY_PATH}; add an entry there first")
    return reg[claim_id]


def _close(value: Any, stated: dict) -> bool:
    want = stated["value"]
    if isinstance(want, (bool, str)) or want is None:
        return value == want
    rtol, atol = float(stated.get("rtol", 0.0)), float(stated.get("atol", 0.0))
    if rtol == 0 and atol == 0:
        rtol = 1e-9
    return math.isclose(float(value), float(want), rel_tol=rtol, abs_tol=atol)


def _rule(claim: Claim, v: Any) -> str:
    """The verdict the check gives one value."""
    chk, paper_v = claim.check, claim.paper.get("value")
    kind = chk["kind"]
    if kind == "trend":
        return "reproduced" if bool(v) else "not reproduced"
    v = float(v)
    if kind == "ratio_range":
        lo, hi = float(chk["lo"]), float(chk["hi"])
        if lo <= v <= hi:
            return "reproduced"
        return "partly" if lo / 2 <= v <= hi * 2 else "not reproduced"
    paper_v = float(paper_v)
    tol = float(chk.get("tol", 0.0))
    if kind == "value":
        if abs(v - paper_v) <= tol * abs(paper_v):
            return "reproduced"
        ratio = abs(v / paper_v) if paper_v else math.inf
        return "partly" if 0.5 <= ratio <= 2 else "not reproduced"
    if v <= 0 or paper_v <= 0:
        return "not reproduced"
    gap = abs(math.log10(v / paper_v))
    return "reproduced" if gap <= tol else ("partly" if gap <= 2 * tol else "not reproduced")


def verdict_of(claim: Claim, value: Any | None = None, lo: float | None = None, hi: float | None = None) -> str:
    """The verdict that ``check`` gives ``value`` (default: ``largest`` if stated, else ``ours``).

    With an interval [lo, hi] the verdict must be the same at lo, value and hi; otherwise the
    answer is "inconclusive" (the difference is inside the noise).
    """
    if claim.check["kind"] == "judged":
        return claim.verdict
    if value is None:
        block = claim.largest or claim.ours
        value, lo, hi = block["value"], block.get("lo"), block.get("hi")
    verdicts = {_rule(claim, x) for x in (value, lo, hi) if x is not None}
    return verdicts.pop() if len(verdicts) == 1 else "inconclusive"


def _block(c: Claim, scale: str) -> dict:
    """The stated block a value measured at ``scale`` is checked against."""
    if c.largest is not None and str(c.largest.get("scale", "")).split(" ", 1)[0] == scale:
        return c.largest
    return c.ours


def record(claim_id: str, value: Any, *, glue: bool = True, scale: str | None = None,
           lo: float | None = None, hi: float | None = None) -> Any:
    """Check a live value against the registry and glue it under ``claim_id``.

    ``value`` (with its interval ``lo``, ``hi`` if any) was measured at ``scale`` (default: the
    claim's own ``ours`` scale); it is checked against ``largest`` when that block is stated at
    ``scale``, else against ``ours``. Raises :class:`ClaimMismatch` when the value leaves the stated
    one by more than its tolerance, or when the stated verdict no longer follows from the check.
    Returns ``value`` so a cell can print it.
    """
    c = get(claim_id)
    if isinstance(value, float) and not math.isfinite(value):
        raise ClaimMismatch(f"{claim_id}: computed {value}, which is not finite")
    block = _block(c, scale or c.at)
    problems = []
    for name, got in (("value", value), ("lo", lo), ("hi", hi)):
        if name != "value" and (got is None or block.get(name) is None):
            continue
        want = {**block, "value": block.get(name)}
        if not _close(got, want):
            problems.append(
                f"{claim_id} ({c.quantity}): computed {name} {got!r}, but claims.yml states "
                f"{block.get(name)!r} (rtol {block.get('rtol', 0)}, atol {block.get('atol', 0)}). "
                f"If the change is intended, update it in {REGISTRY_PATH.name} and say why."
            )
    live = verdict_of(c, value, lo, hi) if block is (c.largest or c.ours) else None
    if live is not None and live != c.verdict:
        problems.append(f"{claim_id}: the check now gives {live!r}, claims.yml states {c.verdict!r}")
    collect = os.environ.get("LINATTN_CLAIMS_COLLECT")
    if collect:
        with open(collect, "a") as f:
            f.write(json.dumps({"id": claim_id, "block": "ours" if block is c.ours else "largest", "value": value,
                                "lo": lo, "hi": hi, "verdict": live, "stated_verdict": c.verdict,
                                "problems": problems}, default=float) + "\n")
    elif problems:
        raise ClaimMismatch(problems[0])
    if glue:
        from .book import glue as _glue

        _glue(claim_id if block is c.ours else f"{claim_id}__at_{scale}", value)
        if c.paper.get("value") is not None and block is c.ours:  # the paper's value, glued once
            _glue(f"{claim_id}__paper", c.paper["value"])
    return value


def record_many(values: dict[str, Any], *, scale: str | None = None) -> dict[str, Any]:
    """Record the values of many claims measured at ``scale`` (default: the book's scale).

    A value may be a number (or bool) or a tuple (value, lo, hi) with its interval. A claim with a
    block stated at that scale (``ours``, ``largest``, or a claim at "any" scale) is checked as by
    :func:`record`; otherwise the value is glued only (the book shows what it measured, the
    registry keeps the values of the scales it states). Returns ``values``.
    """
    from .book import glue as _glue
    from .book import scale as _book_scale

    scale = scale or _book_scale()
    for cid, v in values.items():
        value, lo, hi = v if isinstance(v, tuple) else (v, None, None)
        c = get(cid)
        stated = {c.at} | ({str(c.largest["scale"]).split(" ", 1)[0]} if c.largest else set())
        if scale in stated or c.at == "any":
            record(cid, value, scale=scale, lo=lo, hi=hi)
        else:
            _glue(cid if scale == c.at else f"{cid}__at_{scale}", value)
            if c.paper.get("value") is not None and scale == c.at:
                _glue(f"{cid}__paper", c.paper["value"])
    return values


def paper(claim_id: str) -> Any:
    """The paper's value of a claim (from the registry: chapters never type it again)."""
    return get(claim_id).paper.get("value")


def _fmt(v: Any) -> str:
    if v is None:
        return "--"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def _fmt_block(b: dict) -> str:
    interval = f" [{_fmt(b['lo'])}, {_fmt(b['hi'])}]" if b.get("lo") is not None else ""
    return f"{_fmt(b['value'])}{interval} ({b['scale']})"


def _check_text(c: Claim) -> str:
    k = c.check["kind"]
    if k == "value":
        return f"within {c.check.get('tol', 0):g} (relative)"
    if k == "order":
        return f"within {c.check.get('tol', 0):g} order(s) of magnitude"
    if k == "ratio_range":
        return f"in [{c.check['lo']:g}, {c.check['hi']:g}]"
    if k == "trend":
        return "trend holds"
    return c.check.get("reason", "judged")


def table(claims: dict[str, Claim] | None = None, *, chapter: str | None = None) -> list[dict]:
    """The registry as rows (for display): quantity, paper (version), ours (scale), check, verdict."""
    reg = load_registry() if claims is None else claims
    rows = []
    for c in reg.values():
        if chapter is not None and c.chapter != chapter:
            continue
        rows.append({
            "id": c.id,
            "chapter": c.chapter,
            "quantity": c.quantity,
            "paper": f"{_fmt(c.paper.get('value'))} ({c.paper['version']})",
            "ours": f"{_fmt(c.ours['value'])} ({c.scale})",
            "largest": "--" if c.largest is None else _fmt_block(c.largest),
            "check": _check_text(c),
            "verdict": c.verdict,
            "depends": c.depends,
            "note": c.note,
        })
    return rows


def html_table(rows: list[dict]) -> str:
    """Rows of :func:`table` as an HTML table (verdicts coloured)."""
    import html

    colour = {"reproduced": "#1a7f37", "partly": "#9a6700", "not reproduced": "#cf222e",
              "inconclusive": "#57606a", "not tested at this scale": "#57606a"}
    cols = ["quantity", "paper", "ours", "largest", "check", "verdict", "note"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            text = html.escape(str(r[c]))
            if c == "verdict":
                text = f'<b style="color:{colour[r[c]]}">{text}</b>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='claims'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------- the registry as one table

_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "eps": "ε", "epsilon": "ε",
          "theta": "θ", "Theta": "Θ", "kappa": "κ", "lambda": "λ", "Lambda": "Λ", "mu": "μ", "pi": "π",
          "rho": "ρ", "sigma": "σ", "Sigma": "Σ", "tau": "τ", "phi": "φ", "Phi": "Φ", "psi": "ψ"}
_GREEK_RE = __import__("re").compile(r"(?<![A-Za-z])(" + "|".join(sorted(_GREEK, key=len, reverse=True)) + r")(?![A-Za-z])")
_SUB_TOKEN = r"(\{[^{}]*\}|[A-Za-z0-9]+)"


def pretty_math(text: str) -> "tables.Markup":
    """The registry's plain-text math as HTML a reader reads as math, e.g.
    ``||Theta_m - Theta_inf||_op`` -> ‖Θ<sub>m</sub> − Θ<sub>∞</sub>‖<sub>op</sub>,
    ``kappa^6 n ln n`` -> κ<sup>6</sup> n ln n.

    Conservative: the text is HTML-escaped first; Greek letter names become letters only as
    whole words (``kappa_d``, not ``kappa_vs_n``-style identifiers, which have no Greek
    letters in the registry); ``_x`` is a subscript only after a Greek letter, a lone Latin
    letter (``x_j``, ``f_net``, not ``init_scale``), ``‖`` or ``)``; ``^x`` a superscript after
    any non-space character (``x^,`` for x-hat stays as it is); ``<=``, ``>=``, ``+-``, ``->``
    become ≤, ≥, ±, →. Returns :class:`linattn.tables.Markup` with the original text as its
    plain-text form.
    """
    import html as _html
    import re

    from . import tables

    s = _html.escape(str(text), quote=False)
    s = s.replace("||", "‖").replace("&lt;=", "≤").replace("&gt;=", "≥").replace("+-", "±").replace("-&gt;", "→")
    s = _GREEK_RE.sub(lambda m: _GREEK[m.group(1)], s)

    def sub(m: "re.Match") -> str:
        tok = m.group(2)
        tok = tok[1:-1] if tok.startswith("{") else tok
        tok = "∞" if tok == "inf" else tok
        return f"{m.group(1)}<sub>{tok}</sub>"

    greek = "".join(sorted(set(_GREEK.values())))
    s = re.sub(rf"([{greek}‖)])_{_SUB_TOKEN}", sub, s)
    s = re.sub(rf"(?<![A-Za-z0-9_&;])([A-Za-z])_{_SUB_TOKEN}", sub, s)

    def sup(m: "re.Match") -> str:
        tok = m.group(2)
        tok = tok[1:-1] if tok.startswith("{") else tok
        return f"{m.group(1)}<sup>{tok.replace('-', '−')}</sup>"

    for _ in range(2):  # G^{3^k}: the inner power once the outer is made
        s = re.sub(r"(\S)\^(\{[^{}]*\}|-?[A-Za-z0-9]+(?:/[0-9]+)?)", sup, s)
    s = re.sub(r"(?<=\s)-(?=\s)", "−", s)
    return tables.Markup(s, text=str(text))


def _heading_id(title: str) -> str:
    """The HTML id Sphinx gives a MyST heading: docutils' make_id of its text (markup removed)."""
    import re

    from docutils.nodes import make_id

    t = re.sub(r"\{[a-z:-]+\}`([^`]*)`", r"\1", title)          # {role}`text`
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", t)              # [text](link)
    t = re.sub(r"[`*$]", "", t)
    return make_id(t)


def _recorded_ids(source: str) -> tuple[set[str], set[str]]:
    """Claim ids a code cell records: (literal ids, regex patterns of f-string ids), read from the
    first argument of claims.record(...) and claims.record_many({...}); tests/test_claims.py uses it too."""
    import ast
    import re

    literals: set[str] = set()
    patterns: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return literals, patterns
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("record", "record_many") and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "claims" and node.args):
            continue
        arg = node.args[0]
        if node.func.attr == "record":
            keys = [arg]
        elif isinstance(arg, ast.DictComp):
            keys = [arg.key]
        elif isinstance(arg, ast.Dict):
            keys = [k if k is not None else getattr(v, "key", None) for k, v in zip(arg.keys, arg.values)]
        else:
            keys = []
        for k in keys:
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                literals.add(k.value)
            elif isinstance(k, ast.JoinedStr):
                patterns.add("".join(re.escape(v.value) if isinstance(v, ast.Constant) else "[A-Za-z0-9_]+"
                                     for v in k.values))
    return literals, patterns


@functools.lru_cache(maxsize=32)
def _chapter_outline(path: str, mtime: float) -> tuple[str, list[tuple[str, str, set[str], set[str]]]]:
    """A chapter's title and, per code cell that records claims, (section title, section id,
    literal ids, id patterns) of the section it sits in."""
    import json
    import re

    nb = json.loads(pathlib.Path(path).read_text())
    title, section, cells = "", "", []
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown":
            for line in src.splitlines():
                m = re.match(r"^(#{1,3})\s+(.*?)\s*$", line)
                if m and len(m.group(1)) == 1 and not title:
                    title = m.group(2)
                elif m and len(m.group(1)) in (2, 3):
                    section = m.group(2)
        elif c["cell_type"] == "code":
            lit, pat = _recorded_ids(src)
            if lit or pat:
                cells.append((section, _heading_id(section) if section else "", lit, pat))
    return title, cells


def locate(claim: Claim, root: str | pathlib.Path | None = None) -> dict[str, str]:
    """Where the book measures a claim: ``{"chapter": title, "section": section title, "href":
    relative link from the appendix page (``../part1/x.html#section-id``), "path": chapter}``.

    The section is the last heading (## or ###) above the first code cell of the chapter that
    records the claim (``claims.record``/``record_many``); "" (link to the page) if none does.
    """
    import re

    root = pathlib.Path(root) if root is not None else REGISTRY_PATH.parents[1]
    nb = root / claim.chapter
    rel = pathlib.PurePosixPath(claim.chapter)
    parts = rel.with_suffix(".html").parts
    href = "../" + "/".join(parts[1:]) if parts and parts[0] == "book" else "/".join(parts)
    if not nb.exists():
        return {"chapter": claim.chapter, "section": "", "href": href, "path": claim.chapter}
    title, cells = _chapter_outline(str(nb), nb.stat().st_mtime)
    for section, sid, lit, pat in cells:
        if claim.id in lit or any(re.fullmatch(p, claim.id) for p in pat):
            return {"chapter": title or claim.chapter, "section": section,
                    "href": href + (f"#{sid}" if sid else ""), "path": claim.chapter}
    return {"chapter": title or claim.chapter, "section": "", "href": href, "path": claim.chapter}


def _chapter_order(root: pathlib.Path) -> list[str]:
    """Chapter paths (book/...ipynb) in the order of _toc.yml (chapters not in it: none)."""
    toc = root / "_toc.yml"
    if not toc.exists():
        return []
    data = yaml.safe_load(toc.read_text()) or {}
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                out.append(str(node["file"]) + ".ipynb")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return out


def _verdict_scale(c: Claim) -> str:
    """The scale the verdict is taken at: ``largest``'s first word if stated, else ``at``."""
    if c.largest is not None:
        first = str(c.largest.get("scale", "")).split(" ", 1)[0]
        return first if first in ("quick", "paper") else "any"
    return c.at


def registry_table(claims: dict[str, Claim] | None = None, *, root: str | pathlib.Path | None = None):
    """The registry as ONE table for the book (a :class:`linattn.tables.Table`): one row per claim,
    in the book's chapter order, with columns

    Chapter (title and section, linked to where the book measures it) | Claim (the quantity, math
    set as HTML, and the claim's id) | Paper (value and version) | Ours (the value the verdict is
    taken at, with its interval and scale; the book-scale value beside it when they differ) |
    Verdict (and the check that gives it) | Note (and what the verdict depends on).

    Sortable by any column, filterable by chapter, paper version, verdict and the verdict's scale
    (``book/_static/linattn-tables.js``); without JavaScript the whole table shows.
    """
    import html as _html

    from . import tables

    reg = load_registry() if claims is None else claims
    root = pathlib.Path(root) if root is not None else REGISTRY_PATH.parents[1]
    order = {p: i for i, p in enumerate(_chapter_order(root))}
    ordered = sorted(reg.values(), key=lambda c: order.get(c.chapter, len(order)))
    esc = _html.escape

    def num(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "holds" if v else "does not hold"
        if isinstance(v, (int, float)):
            return tables.fmt_power(v, ".3g")
        return "--" if v is None else str(v)

    def block(b: dict) -> tuple[str, str]:
        iv = f" [{value(b['lo'])}, {value(b['hi'])}]" if b.get("lo") is not None else ""
        return value(b["value"]) + iv, str(b.get("scale", ""))

    rows = []
    for c in ordered:
        loc = locate(c, root)
        sec = f'<span class="scale">§ {pretty_math(loc["section"].replace("$", ""))}</span>' if loc["section"] else ""
        chapter = tables.Markup(f'<a href="{esc(loc["href"], quote=True)}">{esc(loc["chapter"].replace("$", ""))}</a>{sec}',
                                text=loc["chapter"], sort=order.get(c.chapter, len(order)))
        claim = tables.Markup(f'{pretty_math(c.quantity)}<span class="cid">{esc(c.id)}</span>', text=c.quantity)
        pv = c.paper.get("value")
        paper = tables.Markup(f'{esc(value(pv))}<span class="scale">{esc(c.paper["version"])}</span>',
                              text=f"{value(pv)} ({c.paper['version']})", sort=num(pv))
        main = c.largest or c.ours
        v, sc = block(main)
        extra = ""
        if c.largest is not None:
            qv, qs = block(c.ours)
            extra = f'<span class="scale">book scale: {esc(qv)} ({esc(qs)})</span>'
        ours = tables.Markup(f'<span class="nowrap">{esc(v)}</span><span class="scale">{esc(sc)}</span>{extra}',
                             text=f"{v} ({sc})", sort=num(main["value"]))
        slug = c.verdict.replace(" ", "-")
        verdict = tables.Markup(f'<span class="verdict verdict-{slug}">{esc(c.verdict)}</span>'
                                f'<span class="check">{pretty_math(_check_text(c))}</span>',
                                text=c.verdict, sort=VERDICTS.index(c.verdict))
        note = str(pretty_math(c.note)) if c.note else ""
        if c.depends:
            note += f'<span class="scale"><b>Depends:</b> {pretty_math(c.depends)}</span>'
        rows.append({"chapter": chapter, "claim": claim, "paper": paper, "ours": ours, "verdict": verdict,
                     "note": tables.Markup(note, text=c.note),
                     "_data": {"chapter": loc["chapter"].replace("$", ""), "version": c.paper["version"],
                               "verdict": c.verdict, "scale": _verdict_scale(c)}})
    return tables.Table(
        rows, ["chapter", "claim", "paper", "ours", "verdict", "note"],
        headers={"chapter": "Chapter", "claim": "Claim", "paper": "Paper", "ours": "Ours (verdict's scale)",
                 "verdict": "Verdict", "note": "Note"},
        classes="linattn-table linattn-claims", sortable=True,
        column_classes={"chapter": "chapter small", "claim": "claim", "ours": "ours small",
                        "note": "wide small"},
        filters={"chapter": "chapter", "version": "paper version", "verdict": "verdict",
                 "scale": "verdict's scale"},
        row_data=lambda r: r["_data"])
