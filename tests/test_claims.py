"""The claims registry: well-formed, verdicts follow from checks, every claim is measured."""
import ast
import json
import pathlib
import re

import pytest

from linattn import claims

ROOT = pathlib.Path(__file__).resolve().parents[1]
REG = claims.load_registry()


def _id_patterns(nb_path: pathlib.Path) -> tuple[set[str], set[str]]:
    """Claim ids a chapter records: (literal ids, regex patterns of f-string ids), read from the
    first argument of every claims.record(...) and claims.record_many({...}) call (the rule the
    registry page uses to link each claim to its section)."""
    nb = json.loads(nb_path.read_text())
    literals, patterns = set(), set()
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            lit, pat = claims._recorded_ids("".join(c["source"]))
            literals |= lit
            patterns |= pat
    return literals, patterns


def _records(nb_path: pathlib.Path, cid: str) -> bool:
    literals, patterns = _id_patterns(nb_path)
    return cid in literals or any(re.fullmatch(p, cid) for p in patterns)


def test_registry_is_not_empty_and_ids_are_identifiers():
    assert REG, "the registry must hold at least one claim"
    for cid in REG:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", cid), cid


@pytest.mark.parametrize("cid", sorted(REG))
def test_stated_verdict_follows_from_the_check(cid):
    c = REG[cid]
    assert claims.verdict_of(c) == c.verdict, f"{cid}: check gives {claims.verdict_of(c)}"


@pytest.mark.parametrize("cid", sorted(REG))
def test_every_claim_is_recorded_by_its_chapter(cid):
    """The chapter exists and recomputes the claim (nbval then executes it)."""
    c = REG[cid]
    path = ROOT / c.chapter
    assert path.exists(), f"{cid}: chapter {c.chapter} does not exist"
    assert _records(path, cid), f"{cid}: {c.chapter} never records it (claims.record_many({{{cid!r}: ...}}))"


def test_every_recorded_id_is_registered():
    for nb in (ROOT / "book").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        literals, patterns = _id_patterns(nb)
        for cid in literals:
            assert cid in REG, f"{nb}: records {cid!r}, which claims.yml does not define"
            assert REG[cid].chapter == str(nb.relative_to(ROOT)), f"{cid} is registered to another chapter"
        for p in patterns:
            mine = [cid for cid, c in REG.items() if re.fullmatch(p, cid)]
            assert mine, f"{nb}: records ids like {p!r}, none of which claims.yml defines"
            assert all(REG[cid].chapter == str(nb.relative_to(ROOT)) for cid in mine), p


def _claim(**kw):
    base = dict(id="x", chapter="c", quantity="q", paper={"value": 100.0, "version": "v1"},
                ours={"value": 120.0, "scale": "quick", "rtol": 1e-6},
                check={"kind": "order", "tol": 0.25}, verdict="reproduced", note="")
    base.update(kw)
    return claims.Claim(**base)


def test_verdict_rules():
    assert claims.verdict_of(_claim()) == "reproduced"
    assert claims.verdict_of(_claim(check={"kind": "order", "tol": 1}), 5e3) == "partly"
    assert claims.verdict_of(_claim(check={"kind": "order", "tol": 1}), 5e5) == "not reproduced"
    v = _claim(check={"kind": "value", "tol": 0.1})
    assert claims.verdict_of(v, 105.0) == "reproduced"
    assert claims.verdict_of(v, 150.0) == "partly"
    assert claims.verdict_of(v, 300.0) == "not reproduced"
    r = _claim(check={"kind": "ratio_range", "lo": 6, "hi": 9})
    assert claims.verdict_of(r, 7.0) == "reproduced"
    assert claims.verdict_of(r, 4.0) == "partly"
    assert claims.verdict_of(r, 1.0) == "not reproduced"
    t = _claim(check={"kind": "trend"})
    assert claims.verdict_of(t, True) == "reproduced" and claims.verdict_of(t, 0) == "not reproduced"


def test_order_partly_boundary():
    c = _claim(check={"kind": "order", "tol": 0.5})
    assert claims.verdict_of(c, 100 * 10**0.9) == "partly"
    assert claims.verdict_of(c, 100 * 10**1.1) == "not reproduced"


def test_record_checks_the_stated_value(monkeypatch):
    cid = next(iter(REG))
    c = REG[cid]
    if isinstance(c.ours["value"], (int, float)) and not isinstance(c.ours["value"], bool):
        assert claims.record(cid, c.ours["value"], glue=False) == c.ours["value"]
        with pytest.raises(claims.ClaimMismatch, match="claims.yml states"):
            claims.record(cid, c.ours["value"] * 1.5 + 1, glue=False)
    with pytest.raises(KeyError, match="add an entry"):
        claims.record("no_such_claim", 1.0, glue=False)
    with pytest.raises(claims.ClaimMismatch, match="not finite"):
        claims.record(cid, float("nan"), glue=False)


def test_malformed_registry_is_refused(tmp_path):
    bad = tmp_path / "c.yml"
    bad.write_text("- id: a\n  chapter: c\n  quantity: q\n  paper: {value: 1, version: v9}\n"
                   "  ours: {value: 1}\n  check: {kind: order}\n  verdict: reproduced\n")
    with pytest.raises(ValueError, match="version"):
        claims.load_registry(bad)
    bad.write_text("- id: a\n  chapter: c\n")
    with pytest.raises(ValueError, match="missing fields"):
        claims.load_registry(bad)


def test_table_and_html_render_every_claim():
    rows = claims.table()
    assert len(rows) == len(REG)
    html = claims.html_table(rows)
    assert html.count("<tr>") == len(REG) + 1
    for r in rows:
        assert r["verdict"] in claims.VERDICTS


def test_the_verdict_is_taken_at_the_largest_scale_and_holds_across_its_interval():
    quick_only = _claim(ours={"value": 120.0, "scale": "quick", "rtol": 1e-6})
    assert claims.verdict_of(quick_only) == "reproduced"
    both = _claim(ours={"value": 120.0, "scale": "quick", "rtol": 1e-6},
                  largest={"value": 1e4, "scale": "paper (n = 5000)", "rtol": 1e-6})
    assert claims.verdict_of(both) == "not reproduced"  # the largest scale decides
    inside = _claim(largest={"value": 110.0, "lo": 90.0, "hi": 130.0, "scale": "paper", "rtol": 1e-6})
    assert claims.verdict_of(inside) == "reproduced"
    straddle = _claim(largest={"value": 110.0, "lo": 20.0, "hi": 400.0, "scale": "paper", "rtol": 1e-6})
    assert claims.verdict_of(straddle) == "inconclusive"  # the interval spans reproduced and not reproduced
    assert claims.verdict_of(_claim(), 110.0, 90.0, 3e3) == "inconclusive"
    ratio = _claim(check={"kind": "ratio_range", "lo": 6, "hi": 9}, paper={"value": None, "version": "v1"})
    assert claims.verdict_of(ratio, 7.0, 6.5, 8.0) == "reproduced"
    assert claims.verdict_of(ratio, 7.0, 2.0, 8.0) == "inconclusive"
    assert "inconclusive" in claims.VERDICTS and "not tested at this scale" in claims.VERDICTS


def test_record_checks_each_scale_against_its_own_block(monkeypatch):
    c = _claim(id="demo", ours={"value": 120.0, "scale": "quick (n = 200)", "rtol": 1e-6},
               largest={"value": 1e4, "lo": 9e3, "hi": 1.1e4, "scale": "paper (n = 5000)", "rtol": 1e-6},
               verdict="not reproduced")
    monkeypatch.setattr(claims, "get", lambda cid: c)
    assert claims.record("demo", 120.0, glue=False) == 120.0                     # quick: against ours
    assert claims.record("demo", 1e4, glue=False, scale="paper", lo=9e3, hi=1.1e4) == 1e4
    with pytest.raises(claims.ClaimMismatch, match="computed value"):
        claims.record("demo", 1.2e4, glue=False, scale="paper")
    with pytest.raises(claims.ClaimMismatch, match="computed lo"):
        claims.record("demo", 1e4, glue=False, scale="paper", lo=5e3, hi=1.1e4)
    with pytest.raises(claims.ClaimMismatch, match="computed value"):
        claims.record("demo", 1e4, glue=False)  # a paper value is not the quick value
    glued = {}
    monkeypatch.setattr("linattn.book.glue", lambda k, v, display=False: glued.__setitem__(k, v))
    claims.record_many({"demo": (1e4, 9e3, 1.1e4)}, scale="paper")
    assert glued["demo__at_paper"] == 1e4 and "demo__paper" not in glued  # measured at paper scale; the paper's value is glued with the quick one
    claims.record_many({"demo": 120.0}, scale="quick")
    assert glued["demo"] == 120.0


def test_registry_table_is_one_table_with_one_row_per_claim():
    t = claims.registry_table()
    html = t.html
    assert html.count("<table") == 1 and html.count("<tbody>") == 1
    head = html.split("</thead>")[0]
    assert re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', head) == [
        "Chapter", "Claim", "Paper", "Ours (verdict's scale)".replace("'", "&#x27;"), "Verdict", "Note"]
    body = html.split("<tbody>")[1]
    rows = re.findall(r"<tr data-chapter=\"[^\"]*\" data-version=\"([^\"]*)\" data-verdict=\"([^\"]*)\" "
                      r"data-scale=\"([^\"]*)\">", body)
    assert len(rows) == body.count("<tr") == len(REG)
    assert {v for v, _, _ in rows} <= {"v1", "v2", "v1+v2", "abs"}
    assert {v for _, v, _ in rows} <= set(claims.VERDICTS)
    assert {s for _, _, s in rows} <= {"quick", "paper", "any"}
    assert 'class="linattn-table linattn-claims linattn-sortable"' in html
    assert 'data-filters="chapter:chapter,version:paper version,verdict:verdict,scale:verdict&#x27;s scale"' in html
    for cid, c in REG.items():
        assert f'<span class="cid">{cid}</span>' in html                 # every claim, by its id
        assert f'<span class="verdict verdict-{c.verdict.replace(" ", "-")}">{c.verdict}</span>' in html
    assert "book/part" not in re.sub(r'href="[^"]*"', "", html)          # no notebook path shown as text
    assert "<script" not in html and "style=" not in html


def test_every_claim_links_to_the_section_that_records_it():
    for cid, c in REG.items():
        loc = claims.locate(c)
        chapter = ROOT / c.chapter
        assert loc["href"].startswith("../") and ".html" in loc["href"], (cid, loc)
        assert (ROOT / "book" / loc["href"][3:].split("#")[0]).with_suffix(".ipynb") == chapter
        assert loc["section"], f"{cid}: no section of {c.chapter} records it"
        anchor = loc["href"].split("#")[1]
        assert re.fullmatch(r"[a-z][a-z0-9-]*", anchor), anchor
        assert not loc["chapter"].endswith(".ipynb")


def test_pretty_math_sets_the_registry_math_without_mangling_identifiers():
    pm = claims.pretty_math
    assert str(pm("||Theta_m - Theta_inf||_op")) == "‖Θ<sub>m</sub> − Θ<sub>∞</sub>‖<sub>op</sub>"
    assert str(pm("kappa_d^6 n ln n")) == "κ<sub>d</sub><sup>6</sup> n ln n"
    assert str(pm("|K(x_i + delta, x_j)| <= eps ||C^2 x_j||_1")) == (
        "|K(x<sub>i</sub> + δ, x<sub>j</sub>)| ≤ ε ‖C<sup>2</sup> x<sub>j</sub>‖<sub>1</sub>")
    assert str(pm("m^-1/2 and G^{3^k}")) == "m<sup>−1/2</sup> and G<sup>3<sup>k</sup></sup>"
    for ident in ("init_scale", "kernel_regime", "p3_at_relu_rises_mnist", "partI_width_v1_mnist_ours"):
        assert str(pm(ident)) == ident
    assert str(pm("<x^, x^'> & <script>")) == "&lt;x^, x^'&gt; &amp; &lt;script&gt;"
    assert pm("kappa(G)").text == "kappa(G)"


def test_the_appendix_shows_the_registry_as_one_table():
    nb = json.loads((ROOT / "book/appendix/claims.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert sum("claims.registry_table()" in s for s in code) == 1
    assert not any("<h3>" in s or "html_table" in s for s in code)      # no per-notebook tables under path headings
