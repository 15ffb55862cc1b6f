"""The book's glued numbers in reader's notation (linattn.sphinx_numbers)."""
from docutils import nodes
from docutils.utils import new_document
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser

from linattn.sphinx_numbers import _apply, readable_parts


def test_scientific_notation_becomes_a_power_of_ten():
    assert readable_parts("2e+04") == [("2 × 10", "4"), ("", "")]
    assert readable_parts("1.2e-05 and 1e29") == [("1.2 × 10", "−5"), (" and 10", "29"), ("", "")]
    assert readable_parts("-1e+03") == [("-10", "3"), ("", "")]
    assert readable_parts("3e+00") == [("3", ""), ("", "")]


def test_text_without_an_exponent_is_left_alone():
    for text in ("0.25", "commit 4dd8b41486", "1e3acd", "x1e5", "T = sqrt(d)", ""):
        assert readable_parts(text) == [(text, "")]


def _document(*inlines):
    doc = new_document("<test>", get_default_settings(Parser))
    para = nodes.paragraph()
    for text, classes in inlines:
        para += nodes.inline(text, text, classes=classes)
    doc += para
    return doc, para


def test_only_glued_text_is_rewritten():
    doc, para = _document(("2.1e+04", ["pasted-text"]), (" typed 1e5 ", []), ("0.3", ["pasted-text"]))
    assert _apply(doc) == 1
    glued = para.children[0]
    assert [type(c).__name__ for c in glued.children] == ["Text", "superscript"]
    assert glued.astext() == "2.1 × 104" and glued.children[1].astext() == "4"
    assert para.children[1].astext() == " typed 1e5 " and para.children[2].astext() == "0.3"
