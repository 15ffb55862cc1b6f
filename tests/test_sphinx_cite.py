"""Author-year bibliography labels (linattn.sphinx_cite), as the text cites."""
import pathlib
import shutil
import subprocess

import pytest
from pybtex.database import parse_string

from linattn.sphinx_cite import AuthorYearStyle, author_year

ROOT = pathlib.Path(__file__).resolve().parents[1]

BIB = r"""
@misc{one, author = {Krizhevsky, Alex}, title = {Tiny}, year = {2009}}
@misc{two, author = {Cho, Youngmin and Saul, Lawrence K.}, title = {Kernels}, year = {2009}}
@misc{many, author = {Jacot, Arthur and Gabriel, Franck and Hongler, Cl{\'e}ment}, title = {NTK}, year = {2018}}
@misc{others, author = {Brown, Tom B. and others}, title = {Few-shot}, year = {2020}}
@misc{accent, author = {Mi{\~n}oza, J. and Medina, P. and Iba{\~n}ez, S.}, title = {Attention}, year = {2026}}
@misc{prefix, author = {van der Vaart, Aad}, title = {Asymptotics}, year = {1998}}
@misc{undated, author = {Tropp, Joel A.}, title = {Matrices}}
@misc{edited, editor = {Doe, Jane}, title = {Proceedings}, year = {2001}}
@misc{twinA, author = {Jacot, Arthur and Gabriel, Franck and Hongler, Cl{\'e}ment}, title = {A first}, year = {2018}}
"""


def test_labels_read_as_the_text_cites():
    entries = parse_string(BIB, "bibtex").entries
    got = {key: author_year(e) for key, e in entries.items()}
    assert got["one"] == "Krizhevsky, 2009"
    assert got["two"] == "Cho and Saul, 2009"
    assert got["many"] == "Jacot et al., 2018"
    assert got["others"] == "Brown et al., 2020"
    assert got["accent"] == "Miñoza et al., 2026"
    assert got["prefix"] == "van der Vaart, 1998"
    assert got["undated"] == "Tropp, n.d."
    assert got["edited"] == "Doe, 2001"


def test_shared_labels_get_a_letter_and_entries_sort_by_author():
    entries = parse_string(BIB, "bibtex").entries
    labels = [e.label for e in AuthorYearStyle().format_entries(entries.values())]
    order = [labels.index(lab) for lab in ("Brown et al., 2020", "Cho and Saul, 2009", "Krizhevsky, 2009",
                                           "Tropp, n.d.")]
    assert order == sorted(order), labels                                   # sorted by author
    assert [lab for lab in labels if lab.startswith("Jacot")] == ["Jacot et al., 2018a", "Jacot et al., 2018b"]
    assert len(set(labels)) == len(labels)


def test_the_books_references_have_distinct_author_year_labels():
    entries = parse_string((ROOT / "references.bib").read_text(), "bibtex").entries
    labels = [e.label for e in AuthorYearStyle().format_entries(entries.values())]
    assert len(labels) == len(entries) and len(set(labels)) == len(labels)
    assert all(lab.rsplit(", ", 1)[1][:4].isdigit() for lab in labels), labels


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run the search script")
def test_search_snippets_show_formulas_as_text():
    """book/_static/linattn-search.js turns MathJax's TeX source into readable text."""
    cases = {r"\(K = G^3\)": "K = G^3", r"\(10^{24}\)": "10^24",
             r"\(\|\Theta_m - \Theta_\infty\|_{\mathrm{op}}\)": "‖Θ_m - Θ_∞‖_op",
             r"\[\frac{a_i}{1 - H_{ii}}\]": "(a_i)/(1 - H_ii)", r"\(\bigl(X^\top X\bigr)^{-1}\)": "(Xᵀ X)^-1",
             r"$\tau = 10\%$": "τ = 10%", r"\(\kappa^6 n \log n\)": "κ^6 n log n"}
    import json

    script = ("const {texToText} = require(process.argv[1]);"
              "const cases = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(Object.keys(cases).map(texToText)));")
    out = subprocess.run(["node", "-e", script, str(ROOT / "book" / "_static" / "linattn-search.js"),
                          json.dumps(cases)], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == list(cases.values())
