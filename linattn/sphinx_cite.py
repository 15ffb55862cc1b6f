"""Sphinx extension: the bibliography labelled as the text cites, "Jacot et al., 2018".

The book cites in author-year style (``bibtex_reference_style: author_year``: "[Jacot et al., 2018]"
in the text), while pybtex's default bibliography style labels entries alphabetically ("[JGH18]"),
so a reader cannot match a citation to its entry by eye. This extension registers the pybtex
formatting style ``linattn`` (pybtex's ``plain``, sorted by author, year and title) whose labels
are author-year, written as sphinxcontrib-bibtex writes them in the text:

    one author       "Krizhevsky, 2009"
    two authors      "Cho and Saul, 2009"
    three or more    "Jacot et al., 2018"

Entries that would share a label get a letter after the year ("2018a", "2018b"). Enabled in
``_config.yml`` (``sphinx.extra_extensions``, ``bibtex_default_style: linattn``).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

__all__ = ["AuthorYearLabelStyle", "AuthorYearStyle", "author_year", "setup"]


def _surname(person) -> str:
    """A person's surname as plain text ("Mi{\\~n}oza" -> "Miñoza")."""
    latex = " ".join(person.prelast_names + person.last_names)
    return str(Text.from_latex(latex).render_as("text")).strip()


def author_year(entry) -> str:
    """The citation label of a pybtex ``entry``: "Surname, year", "A and B, year" or "A et al., year".

    Authors, else editors; "others" in the author list (BibTeX's "and others") counts as a third
    author. An entry without a year gets "n.d.".
    """
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if len(names) >= 3 or (len(names) == 2 and names[1].lower() == "others"):
        who = f"{names[0]} et al."
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    elif names:
        who = names[0]
    else:
        who = entry.fields.get("key", entry.key)
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex label style: :func:`author_year`, with "a", "b", ... after the year of shared labels."""

    def format_labels(self, sorted_entries: Iterable) -> Iterator[str]:
        labels = [author_year(e) for e in sorted_entries]
        shared = {label for label, n in Counter(labels).items() if n > 1}
        used: Counter = Counter()
        for label in labels:
            if label in shared:
                yield label + "abcdefghijklmnopqrstuvwxyz"[used[label]]
                used[label] += 1
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` formatting with author-year labels."""

    default_label_style = AuthorYearLabelStyle


def setup(app) -> dict:
    register_plugin("pybtex.style.formatting", "linattn", AuthorYearStyle, force=True)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
