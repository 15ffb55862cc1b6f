"""linattn.sphinx_page: each page loads its scripts once, and no thebe script when thebe is off."""
from types import SimpleNamespace

from linattn.sphinx_page import prune_scripts


def _js(filename=None, body=""):
    return SimpleNamespace(filename=filename, attributes={"body": body} if body else {})


def test_duplicate_inline_scripts_and_thebe_are_dropped():
    thebe_cfg = 'const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"'
    scripts = [_js("jquery.js"), _js(None, thebe_cfg), _js("sphinx-thebe.js"), _js(None, thebe_cfg),
               _js(None, "var a = 1;"), _js(None, "var a = 1;"), _js("linattn-widgets.js")]
    kept = prune_scripts(scripts, thebe=False)
    assert [s.filename or s.attributes["body"] for s in kept] == ["jquery.js", "var a = 1;", "linattn-widgets.js"]
    with_thebe = prune_scripts(scripts, thebe=True)          # thebe on: its script and one config remain
    assert [s.filename or s.attributes["body"][:5] for s in with_thebe] == [
        "jquery.js", "const", "sphinx-thebe.js", "var a", "linattn-widgets.js"]
