"""The book's build configuration: a failing cell fails the build; pages need no CDN."""
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
# jupyter-book run in-process with the nbclient wake-up fix (scripts/nbclient_wakeup.py), as `make book` does
JB = [sys.executable, str(ROOT / "scripts" / "nbclient_wakeup.py")]


def _tiny_book(tmp_path: pathlib.Path, cell: str, prose: str = "") -> pathlib.Path:
    """A one-chapter book that uses the project's own _config.yml (execution, JS, extensions):
    a heading, ``cell`` and then ``prose`` (markdown)."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["bibtex_bibfiles"] = ["references.bib"]
    cfg["exclude_patterns"] = ["_build", "_vendor"]
    cfg["sphinx"]["config"]["html_static_path"] = [str(ROOT / "_vendor"), str(ROOT / "book" / "_static")]
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "references.bib", book / "references.bib")
    (book / "_config.yml").write_text(yaml.safe_dump(cfg))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (book / "intro.md").write_text("# Intro\n\nMath: $a^2 + b^2 = c^2$.\n")
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter\n\n$$x = 1$$"), nbformat.v4.new_code_cell(cell)]
    if prose:
        nb.cells.append(nbformat.v4.new_markdown_cell(prose))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "chapter.ipynb")
    return book


@pytest.fixture(scope="module")
def vendored():
    if not (ROOT / "_vendor" / ".vendored-v2").exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is needed to vendor the JavaScript")
        subprocess.run(["bash", str(ROOT / "scripts" / "vendor_js.sh")], check=True)
    return ROOT / "_vendor"


def _build(book: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([*JB, "build", str(book), "-W", "--keep-going"],
                          capture_output=True, text=True, timeout=600)


def test_a_failing_cell_fails_the_build(tmp_path, vendored):
    res = _build(_tiny_book(tmp_path, "raise RuntimeError('deliberate failure')"))
    assert res.returncode != 0, res.stdout[-2000:]
    assert "deliberate failure" in res.stdout + res.stderr


def test_a_passing_book_builds_and_needs_no_cdn(tmp_path, vendored):
    import ipywidgets  # noqa: F401  (the widget must be saved with its state)

    book = _tiny_book(tmp_path, "import ipywidgets as w\nfrom myst_nb import glue\nglue('kappa', 21000.0)\n"
                                "glue('rate', 0.25)\nw.IntSlider(value=3)",
                      prose="kappa = {glue:text}`kappa:.1e`, rate {glue:text}`rate:.2f`, typed 1e5.")
    res = _build(book)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    html = (book / "_build" / "html" / "chapter.html").read_text()
    for cdn in ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com/@jupyter-widgets"):
        assert cdn not in html, f"the page loads {cdn}"
    assert "_static/mathjax/tex-mml-chtml.js" in html
    # a bare ipywidgets view cannot respond without a kernel: the HTML shows its text, loads no widget
    # script (the book's widgets are linattn.interact's precomputed states), and no thebe script either
    assert "application/vnd.jupyter.widget-view+json" not in html and "IntSlider(value=3)" in html
    assert "_static/widgets/" not in html
    assert html.count("THEBE_JS_URL") == 0 and "sphinx-thebe" not in html
    assert (book / "_build" / "html" / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    # glued numbers in reader's notation (linattn.sphinx_numbers); typed text untouched
    assert "2.1 × 10<sup>4</sup>" in html and "2.1e+04" not in html, html[html.find("kappa ="):][:300]
    assert "0.25" in html and "typed 1e5." in html


WIDGET_CELL = """import matplotlib.pyplot as plt
import ipywidgets as widgets
from linattn.interact import interact

def show(n=3, kind="line"):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(range(n), "-" if kind == "line" else "o")
    ax.set_xlabel("index")
    ax.set_ylabel("value")
    ax.set_title(f"n = {n}")
    plt.show()

interact(show, n=widgets.IntSlider(value=3, min=2, max=6), kind=widgets.Dropdown(options=["line", "dots"]));
"""


def test_a_widget_responds_in_the_static_html(tmp_path, vendored):
    """linattn.interact's precomputed states reach the HTML in place of the dead widget view, and in
    headless Chromium with the network cut the page has no problem and its widget responds."""
    book = _tiny_book(tmp_path, WIDGET_CELL)
    res = _build(book)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    html = (book / "_build" / "html" / "chapter.html").read_text()
    assert html.count('class="linattn-widget-state"') == 5 * 2           # n in 2..6, two styles
    assert html.count('class="linattn-widget-state" data-key="1,0">') == 1  # n = 3, line: shown
    assert "application/vnd.jupyter.widget-view+json" not in html
    assert "_static/linattn-widgets.js" in html
    from linattn import pagecheck

    if pagecheck.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the page was not opened")
    pytest.importorskip("playwright")
    [report] = pagecheck.check_book(book / "_build" / "html", pages=["chapter.html"])
    assert report.widgets == 1
    assert report.problems == [], "\n".join(map(str, report.problems))


def test_the_page_check_finds_a_wide_printout_and_a_wide_equation(tmp_path, vendored):
    """The checker itself: a plain-text table and a display equation wider than the column are reported
    (a printout wraps its lines, so nothing is hidden; a table that wraps is unreadable)."""
    from linattn import pagecheck

    if pagecheck.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the page was not opened")
    pytest.importorskip("playwright")
    wide_eq = "$$ " + " + ".join(f"x_{{{k}}}^{{2}}" for k in range(60)) + " $$"
    table = "for r in range(3):\n    print('  '.join(f'{r * k:8d}' for k in range(12)))"  # 118 columns
    book = _tiny_book(tmp_path, table, prose=wide_eq)
    res = _build(book)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    [report] = pagecheck.check_book(book / "_build" / "html", pages=["chapter.html"])
    kinds = [(p.kind, p.detail.split(" ")[0].split("#")[0]) for p in report.problems]
    assert ("clipped", "pre") in kinds, report.problems                 # the plain-text table
    assert ("clipped", "mjx-container") in kinds, report.problems       # the equation
    assert all(p.kind == "clipped" for p in report.problems), report.problems


def test_citations_search_snippets_and_one_search_box(tmp_path, vendored):
    """The bibliography is labelled as the text cites (linattn.sphinx_cite); in Chromium, a search
    result's snippet shows a formula as text, not TeX (linattn-search.js), and a wide page shows one
    search field (the sidebar's), not the header's copy of it."""
    book = _tiny_book(tmp_path, "print('searchable words')",
                      prose="As {cite}`jacot2018` show.\n\n```{bibliography}\n```\n")
    res = _build(book)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    html = (book / "_build" / "html" / "chapter.html").read_text()
    assert "Jacot <em>et al.</em>, 2018" in html                       # the text: author-year
    label = html[html.find('class="citation"'):][:400]
    assert "Jacot et al., 2018" in label and "JGH18" not in label, label  # the entry: the same label
    from linattn import pagecheck

    if pagecheck.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the pages were not opened")
    playwright = pytest.importorskip("playwright.sync_api")
    with pagecheck._serve(book / "_build" / "html") as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=pagecheck.find_chromium())
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
        page.goto(f"{base}/search.html?q=math")
        page.wait_for_selector("#search-results p.context", timeout=20_000)
        snippet = page.inner_text("#search-results p.context")
        assert "a^2 + b^2 = c^2" in snippet and "\\(" not in snippet, snippet
        page.goto(f"{base}/chapter.html")
        visible = page.eval_on_selector_all(".search-button-field", "els => els.filter(e => e.offsetParent).length")
        assert visible == 1, f"{visible} search fields shown"
        browser.close()
