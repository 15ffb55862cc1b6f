"""A Sphinx extension for the book: glued numbers written as a reader writes them.

A chapter glues a value and its prose formats it, ``{glue:text}`name:.2g```, so Python's format
decides the text: ``2e+04``, ``1.2e-05``. This post-transform rewrites scientific notation in glued
text (myst-nb's ``pasted-text`` inlines) as ``2 × 10⁴``-style math a reader expects: a mantissa, a
multiplication sign and a superscript exponent, ``10^k`` alone when the mantissa is 1. Nothing else
is touched: prose typed by hand, code, and glued text without an exponent stay as they are.

Enable it in ``_config.yml`` (``sphinx: extra_extensions: [linattn.sphinx_numbers]``).
"""
from __future__ import annotations

import re
from typing import Any

from docutils import nodes

__all__ = ["SCIENTIFIC", "readable_parts", "setup"]

#: a float in Python's scientific format: mantissa, sign and digits of the exponent
SCIENTIFIC = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)[eE]([-+]?)(\d+)(?![\w.])")


def readable_parts(text: str) -> list[tuple[str, str]]:
    """``text`` split into (plain, exponent) pairs: each number ``m e k`` becomes the plain text
    ``"m × 10"`` (``"10"`` when m is 1, ``"-10"`` when m is -1) followed by the exponent ``k``
    (without a plus sign or leading zeros); the exponent of a pair is ``""`` where no number
    follows. Joining ``plain + ^exponent`` over the pairs gives the text back in reader's notation.

    >>> readable_parts("kappa = 2.1e+04, width 1e29")
    [('kappa = 2.1 × 10', '4'), (', width 10', '29'), ('', '')]
    """
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in SCIENTIFIC.finditer(text):
        mantissa, sign, digits = m.group(1), m.group(2), m.group(3)
        exponent = ("-" if sign == "-" else "") + (digits.lstrip("0") or "0")
        if exponent == "0":  # 3e+00 is just 3
            parts.append((text[pos:m.start()] + mantissa, ""))
        else:
            head = {"1": "10", "+1": "10", "-1": "-10"}.get(mantissa, f"{mantissa} × 10")
            parts.append((text[pos:m.start()] + head, exponent.replace("-", "−")))
        pos = m.end()
    parts.append((text[pos:], ""))
    return parts


def _apply(document: nodes.Node) -> int:
    """Rewrite every glued text inline of ``document`` in place; the number of inlines changed."""
    changed = 0
    for node in list(document.findall(nodes.inline)):
        if "pasted-text" not in node.get("classes", ()) or len(node.children) != 1:
            continue
        child = node.children[0]
        if not isinstance(child, nodes.Text) or not SCIENTIFIC.search(child.astext()):
            continue
        new: list[nodes.Node] = []
        for plain, exponent in readable_parts(child.astext()):
            if plain:
                new.append(nodes.Text(plain))
            if exponent:
                new.append(nodes.superscript(exponent, exponent))
        node.replace(child, new)
        changed += 1
    return changed


def setup(app: Any) -> dict[str, Any]:
    from sphinx.transforms.post_transforms import SphinxPostTransform

    class ReadableNumbers(SphinxPostTransform):
        """After myst-nb has pasted every glued value (its post-transform has priority 5)."""

        default_priority = 900

        def run(self, **kwargs: Any) -> None:
            _apply(self.document)

    app.add_post_transform(ReadableNumbers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
