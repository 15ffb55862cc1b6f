"""The claims registry: every number the book states about the paper, as data.

One YAML file (``linattn/claims.yml``) holds a list of entries::

    - id: gram_kappa_mnist_n100          # unique, snake_case
      chapter: book/gram_spectrum.ipynb  # the chapter that measures it
      quantity: "kappa(G), MNIST"        # what it is, in the book's words
      paper: {value: 1.2e3, version: v1} # the paper's number (DIGEST.md); value null if none
      ours: {value: 1234.5, scale: quick, rtol: 1.0e-6}  # our measured value; rtol/atol
      check: {kind: order, tol: 1}       # how ours compares with the paper
      verdict: reproduced                # reproduced | partly | not reproduced
      note: "what we chose, why it differs"

Two comparisons, kept apart:

* **ours vs the live computation** (``record``): a chapter recomputes the value and
  :func:`record` raises :class:`ClaimMismatch` if it leaves ``ours`` by more than
  ``rtol``/``atol`` -- the build and the tests fail. This is the stated-numbers check.
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
  no number can be compared (the reason is shown).
"""
from __future__ import annotations

import functools
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Claim", "ClaimMismatch", "REGISTRY_PATH", "load_registry", "get", "record", "record_many",
           "paper", "verdict_of", "table", "VERDICTS"]

REGISTRY_PATH = pathlib.Path(__file__).with_name("claims.yml")
VERDICTS = ("reproduced", "partly", "not reproduced")
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
    unknown = set(entry) - set(required) - {"note"}
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
    return Claim(**{k: entry.get(k, "") for k in (*required, "note")})


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


def verdict_of(claim: Claim, value: Any | None = None) -> str:
    """The verdict that ``check`` gives for ``value`` (default: the stated ``ours.value``)."""
    v = claim.ours["value"] if value is None else value
    chk, paper = claim.check, claim.paper.get("value")
    kind = chk["kind"]
    if kind == "judged":
        return claim.verdict
    if kind == "trend":
        return "reproduced" if bool(v) else "not reproduced"
    v = float(v)
    if kind == "ratio_range":
        lo, hi = float(chk["lo"]), float(chk["hi"])
        if lo <= v <= hi:
            return "reproduced"
        return "partly" if lo / 2 <= v <= hi * 2 else "not reproduced"
    paper = float(paper)
    tol = float(chk.get("tol", 0.0))
    if kind == "value":
        if abs(v - paper) <= tol * abs(paper):
            return "reproduced"
        ratio = abs(v / paper) if paper else math.inf
        return "partly" if 0.5 <= ratio <= 2 else "not reproduced"
    if v <= 0 or paper <= 0:
        return "not reproduced"
    gap = abs(math.log10(v / paper))
    return "reproduced" if gap <= tol else ("partly" if gap <= 2 * tol else "not reproduced")


def record(claim_id: str, value: Any, *, glue: bool = True) -> Any:
    """Check a live value against the registry and glue it under ``claim_id``.

    Raises :class:`ClaimMismatch` when ``value`` leaves the stated ``ours.value`` by more
    than its tolerance, or when the stated verdict no longer follows from the check.
    Returns ``value`` so a cell can print it.
    """
    c = get(claim_id)
    if isinstance(value, float) and not math.isfinite(value):
        raise ClaimMismatch(f"{claim_id}: computed {value}, which is not finite")
    if not _close(value, c.ours):
        raise ClaimMismatch(
            f"{claim_id} ({c.quantity}): computed {value!r}, but claims.yml states "
            f"{c.ours['value']!r} (rtol {c.ours.get('rtol', 0)}, atol {c.ours.get('atol', 0)}). "
            f"If the change is intended, update ours.value in {REGISTRY_PATH.name} and say why."
        )
    live = verdict_of(c, value)
    if live != c.verdict:
        raise ClaimMismatch(f"{claim_id}: the check now gives {live!r}, claims.yml states {c.verdict!r}")
    if glue:
        from .book import glue as _glue

        _glue(claim_id, value)
        if c.paper.get("value") is not None:
            _glue(f"{claim_id}__paper", c.paper["value"])
    return value


def record_many(values: dict[str, Any], *, scale: str | None = None) -> dict[str, Any]:
    """Record the values of many claims measured at ``scale`` (default: the book's scale).

    A claim stated at that scale (or at "any") is checked as by :func:`record`; a claim stated at
    another scale is glued only (the book then shows the value measured here, and the registry
    keeps the value of its own scale). Returns ``values``.
    """
    from .book import glue as _glue
    from .book import scale as _book_scale

    scale = scale or _book_scale()
    for cid, value in values.items():
        c = get(cid)
        if c.at in (scale, "any"):
            record(cid, value)
        else:
            _glue(cid, value)
            if c.paper.get("value") is not None:
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
            "check": _check_text(c),
            "verdict": c.verdict,
            "note": c.note,
        })
    return rows


def html_table(rows: list[dict]) -> str:
    """Rows of :func:`table` as an HTML table (verdicts coloured)."""
    import html

    colour = {"reproduced": "#1a7f37", "partly": "#9a6700", "not reproduced": "#cf222e"}
    cols = ["quantity", "paper", "ours", "check", "verdict", "note"]
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
