"""Read every page of the built book in headless Chromium with the network cut, as a reader would.

``python -m linattn.pagecheck _build/html`` serves the folder on localhost, opens each page in
Chromium (Playwright drives Debian's ``/usr/bin/chromium``; any request off the machine is refused
and reported), waits for MathJax, and reports per page:

- ``console``: an error in the console or an uncaught exception;
- ``offline``: a request that leaves the machine; ``missing``: a local file the page asks for and
  the build lacks;
- ``clipped``: a table, code block, cell output or display equation wider than its box (its end is
  hidden or needs a scroll), or reaching past the text column (past the cell, for a cell tagged
  ``full-width``, which the theme widens over the margin);
- ``shrunk``: a figure drawn below ``min_scale`` of its size, so its text is too small to read;
- ``widget``: a live ipywidgets view (it cannot respond without a kernel), or a precomputed widget
  (``linattn.interact``) whose controls do not change what it shows.

Exit status 1 when a page has a problem. ``--screenshots DIR`` keeps one full-page PNG per page
(out of git: put it under ``_build/``). Needs ``pip install playwright`` and Debian's ``chromium``.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import pathlib
import sys
import threading
from dataclasses import dataclass, field
from typing import Iterator

__all__ = ["Problem", "check_book", "find_chromium", "main"]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Measured in the page: every element that must fit the column, and whether it does.
_MEASURE_JS = r"""
(minScale) => {
  const out = {clipped: [], shrunk: [], widgets: []};
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const right = article.getBoundingClientRect().right;
  const label = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    const sec = el.closest("section[id]");
    if (sec) s += " in section #" + sec.id;
    const text = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ");
    return s + (text ? ': "' + text.slice(0, 60) + '"' : "");
  };
  const hiddenByUs = (el) => el.closest("[hidden], details:not([open]), .toggle-hidden, .cell.tag_hide-output .cell_output");
  const sel = "article table, article pre, article mjx-container[display='true'], article .cell_output .output, " +
              "article .math-wrapper, article div.math";
  const seen = new Set();
  for (const found of document.querySelectorAll(sel)) {
    // a result table is judged by its wrapper, which scrolls when the table is wider than the column
    const el = (found.tagName === "TABLE" && found.closest(".linattn-table-wrap")) || found;
    if (seen.has(el)) continue;
    seen.add(el);
    if (hiddenByUs(el) || el.offsetParent === null) continue;
    if (el.tagName === "PRE" && el.closest(".cell_output") && getComputedStyle(el).whiteSpace !== "pre") {
      // a printout wraps its long lines (nothing is hidden); a plain-text *table* that wraps is unreadable
      // (monospace: a line's width is its length times the width of one character)
      const lines = el.textContent.split("\n").filter(l => l.trim());
      const rows = lines.filter(l => /\S {2,}\S/.test(l.trim()));
      if (rows.length < 3) continue;
      const ws = el.style.whiteSpace;
      el.style.whiteSpace = "pre";
      const natural = el.scrollWidth;
      el.style.whiteSpace = ws;
      const longest = Math.max(...lines.map(l => l.length));
      const tableWidth = Math.round(natural * Math.max(...rows.map(l => l.length)) / longest);
      if (tableWidth > el.clientWidth + 2)
        out.clipped.push(label(el) + ` (a plain-text table ${tableWidth}px wide wraps in a ${el.clientWidth}px column)`);
      continue;
    }
    const r = el.getBoundingClientRect();
    // a cell tagged full-width (the theme widens it over the margin) may use that width
    const wide = el.closest(".tag_full-width, .full-width");
    const edge = wide ? wide.getBoundingClientRect().right : right;
    if (el.scrollWidth > el.clientWidth + 2)
      out.clipped.push(label(el) + ` (content ${el.scrollWidth}px in a ${el.clientWidth}px box)`);
    else if (r.right > edge + 2)
      out.clipped.push(label(el) + ` (reaches ${Math.round(r.right - edge)}px past the column)`);
  }
  for (const img of document.querySelectorAll("article img")) {
    if (hiddenByUs(img) || !img.naturalWidth || img.offsetParent === null) continue;
    const scale = img.clientWidth / img.naturalWidth;
    if (scale < minScale)
      out.shrunk.push(label(img.closest(".cell") || img) + ` (figure drawn at ${Math.round(100 * scale)}% of its size)`);
  }
  for (const w of document.querySelectorAll("article .jupyter-widgets, article .widget-slider, article script[type='application/vnd.jupyter.widget-view+json']"))
    out.widgets.push("a live ipywidgets view, which cannot respond without a kernel: " + label(w.closest(".cell") || w));
  out.interactive = document.querySelectorAll("article .linattn-widget").length;
  return out;
}
"""

# Move every control of every precomputed widget and report the widgets whose shown state did not change.
_WIDGET_JS = r"""
() => {
  const dead = [];
  document.querySelectorAll("article .linattn-widget").forEach((box, i) => {
    const shown = () => Array.from(box.querySelectorAll(".linattn-widget-state")).filter(s => !s.hidden).map(s => s.dataset.key).join("|");
    const before = shown();
    let moved = false;
    box.querySelectorAll(".linattn-widget-controls input, .linattn-widget-controls select").forEach(el => {
      const n = el.tagName === "SELECT" ? el.options.length : (+el.max + 1);
      if (n < 2) return;
      el.value = String((+el.value + 1) % n);
      el.dispatchEvent(new Event("input", {bubbles: true}));
      el.dispatchEvent(new Event("change", {bubbles: true}));
      moved = true;
    });
    const after = shown();
    if (moved && (after === before || after === "")) dead.push(`widget ${i + 1}: moving its controls left "${before}" shown`);
  });
  return dead;
}
"""


def _clean(text: str) -> str:
    """Text from the page as valid UTF-8 (MathJax's glyphs arrive as surrogate pairs)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass
class Problem:
    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class PageReport:
    page: str
    problems: list[Problem] = field(default_factory=list)
    widgets: int = 0


def find_chromium() -> str | None:
    """The path of a Chromium the checker can drive, or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def _serve(root: pathlib.Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D102 - silence the access log
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def check_book(html_dir: str | pathlib.Path, *, pages: list[str] | None = None, width: int = 1280,
               height: int = 900, min_scale: float = 0.75, screenshots: str | pathlib.Path | None = None,
               chromium: str | None = None, timeout_ms: int = 60_000) -> list[PageReport]:
    """Open each page (``pages``, relative to ``html_dir``; default every ``*.html`` but Sphinx's own
    genindex/search) at ``width`` x ``height`` and return one report per page."""
    root = pathlib.Path(html_dir)
    if not (root / "index.html").exists() and not pages:
        raise FileNotFoundError(f"html_dir = {str(root)!r} holds no index.html; build the book first "
                                "(make book) and pass _build/html")
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must lie in (0, 1], got {min_scale!r}; 0.75 keeps 9-pt text readable")
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found; apt-get install chromium (Debian), or pass chromium=PATH")
    from playwright.sync_api import sync_playwright

    if pages is None:
        skip = {"genindex.html", "search.html", "py-modindex.html"}
        pages = sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                       if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)
    if screenshots:
        pathlib.Path(screenshots).mkdir(parents=True, exist_ok=True)
    reports = []
    with _serve(root) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
        for rel in pages:
            rep = PageReport(rel)
            add = lambda kind, detail, rep=rep: rep.problems.append(Problem(rep.page, kind, _clean(detail)))  # noqa: E731
            page = context.new_page()

            def route(r, add=add):
                url = r.request.url
                if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
                    return r.continue_()
                add("offline", f"request off the machine refused: {url}")
                return r.abort()

            page.route("**/*", route)
            page.on("console", lambda m, add=add: add("console", m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, add=add: add("console", f"uncaught: {e}"))
            page.on("response", lambda r, add=add: add("missing", f"{r.status} {r.url[len(base) - 1:]}")
                    if r.status >= 400 and r.url.startswith(base) else None)
            page.goto(base + rel, wait_until="load", timeout=timeout_ms)
            with contextlib.suppress(Exception):
                page.wait_for_function("!window.MathJax || !MathJax.startup || MathJax.startup.promise",
                                       timeout=timeout_ms)
                page.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise")
            page.wait_for_timeout(200)
            found = page.evaluate(_MEASURE_JS, min_scale)
            for d in found["clipped"]:
                add("clipped", d)
            for d in found["shrunk"]:
                add("shrunk", d)
            for d in found["widgets"]:
                add("widget", d)
            rep.widgets = found["interactive"]
            if rep.widgets:
                for d in page.evaluate(_WIDGET_JS):
                    add("widget", d)
            if screenshots:
                shot = pathlib.Path(screenshots) / (rel.replace("/", "__").removesuffix(".html") + ".png")
                page.screenshot(path=str(shot), full_page=True)
            page.close()
            reports.append(rep)
        browser.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m linattn.pagecheck", description=__doc__.split("\n\n")[0])
    ap.add_argument("html_dir", help="the built book, e.g. _build/html")
    ap.add_argument("--page", action="append", help="check only this page (repeatable), e.g. intro.html")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--min-scale", type=float, default=0.75)
    ap.add_argument("--screenshots", help="folder for one full-page PNG per page (keep it out of git)")
    ap.add_argument("--json", help="write the reports as JSON here")
    args = ap.parse_args(argv)
    reports = check_book(args.html_dir, pages=args.page, width=args.width, min_scale=args.min_scale,
                         screenshots=args.screenshots)
    bad = [p for r in reports for p in r.problems]
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            [{"page": r.page, "widgets": r.widgets, "problems": [p.__dict__ for p in r.problems]}
             for r in reports], indent=1, ensure_ascii=False))
    for r in reports:
        status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
        extra = f", {r.widgets} precomputed widget(s) respond" if r.widgets else ""
        print(f"{r.page}: {status}{extra}")
        for p in r.problems:
            print(f"    {p.kind}: {p.detail}")
    print(f"{len(reports)} pages, {sum(1 for r in reports if r.problems)} with problems, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
