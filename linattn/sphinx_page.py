"""Sphinx extension: pages that load only what they use, once, and raise no console error.

Jupyter Book 1.x always adds sphinx-thebe, whose set-up runs twice in a build and so declares
``const THEBE_JS_URL`` twice on every page (an uncaught SyntaxError in the console). With
``launch_buttons.thebe: false`` (Thebe needs Binder and a CDN; this book runs offline) the thebe
script and style do nothing, so this extension drops them; any other inline script added twice is
kept once. It also sets the colour mode the theme falls back to ("auto": the reader's system
setting), without which pydata-sphinx-theme logs "Got invalid theme mode" on a first visit.

Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["prune_scripts", "setup"]


def _name(asset: Any) -> str:
    return str(getattr(asset, "filename", asset) or "")


def prune_scripts(scripts: list, *, thebe: bool) -> list:
    """``scripts`` (Sphinx's ``script_files``) with inline duplicates removed, and sphinx-thebe's
    script and inline configuration removed unless ``thebe``."""
    seen: set[str] = set()
    kept = []
    for js in scripts:
        body = (getattr(js, "attributes", None) or {}).get("body", "")
        name = _name(js)
        if not thebe and ("sphinx-thebe" in name or "THEBE_JS_URL" in body or "thebe@" in name):
            continue
        if not name and body:
            if body in seen:
                continue
            seen.add(body)
        kept.append(js)
    return kept


def _page_context(app, pagename, templatename, context, doctree) -> None:
    thebe = bool((app.config.html_theme_options or {}).get("launch_buttons", {}).get("thebe", False))
    if "script_files" in context:
        context["script_files"] = prune_scripts(context["script_files"], thebe=thebe)
    if not thebe and "css_files" in context:
        context["css_files"] = [c for c in context["css_files"] if "sphinx-thebe" not in _name(c)]
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app) -> dict:
    app.connect("html-page-context", _page_context, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
