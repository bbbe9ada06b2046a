"""The rendered `ci` book, opened in headless Chromium through Playwright.

`make test` renders `_build/ci/html` before pytest starts. Every chapter page and the scorecard
must load without errors, their figures must decode, their math must be typeset by the vendored
MathJax (no request leaves the machine), and the scorecard must list every claim of every chapter.
"""

import functools
import http.server
import json
import shutil
import threading

import pytest

from lib import ROOT, build, claims

HTML = ROOT / "_build" / "ci" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGES = ["intro.html", "scorecard.html", "sweeps.html", "teaching.html", "references.html", "api/index.html"] + [
    f"chapters/{slug}/{page}.html" for slug in build.chapters() for page in ("index", "theory", "reproduce")
]
API_PAGES = [page[:-3] + ".html" for page in build.api_pages() if not page.endswith("/index.md")]


def test_ci_book_was_rendered():
    assert (HTML / "index.html").is_file(), "the ci book was not rendered: run `python -m lib.build --scale ci`"
    for page in PAGES:
        assert (HTML / page).is_file(), f"{page} is missing from the rendered book"


def test_mathjax_is_vendored_and_used():
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()
    page = (HTML / "chapters" / build.chapters()[0] / "theory.html").read_text()
    assert "mathjax/tex-chtml.js" in page and "cdn.jsdelivr" not in page


def test_rendered_pages_have_title_and_copyright():
    page = (HTML / "intro.html").read_text()
    assert "Computational neuroscience, reproduced" in page and "2026" in page


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail("the ci book was not rendered")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML.resolve()))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (apt-get install chromium); CI installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_page()
    outside, errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("http://127.0.0.1"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    resp = page.goto(url, wait_until="load")
    assert resp is not None and resp.ok, f"{url}: HTTP {resp and resp.status}"
    return page, outside, errors


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_figures_decode_and_math_renders(browser, server, path):
    page, outside, errors = open_page(browser, f"{server}/{path}")
    try:
        assert not errors, f"{path}: JavaScript errors {errors}"
        images = page.eval_on_selector_all(
            "article img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0])")
        bad = [src for src, ok in images if not ok]
        assert not bad, f"{path}: images that did not decode: {bad}"
        if path.endswith(("theory.html", "reproduce.html")):
            assert images, f"{path}: a notebook page without a single figure"
        has_math = page.evaluate("() => document.querySelector('article .math, article div.math, article span.math') !== null")
        if has_math:
            page.wait_for_selector("mjx-container", state="attached", timeout=20000)
            raw = page.evaluate("() => Array.from(document.querySelectorAll('article .math'))"
                                ".filter(e => !e.querySelector('mjx-container')).length")
            assert raw == 0, f"{path}: {raw} math elements were not typeset"
        assert not outside, f"{path}: requests left the machine: {outside[:5]}"
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.parametrize("path", [p for p in PAGES if p.endswith(("theory.html", "reproduce.html"))])
def test_no_code_cell_or_output_scrolls_sideways_at_1280_px(browser, server, path):
    """Code lines of up to 88 characters fit the content column of a 1280-px window, and printed
    outputs wrap rather than hide their right edge."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{server}/{path}", wait_until="load")
        wide = page.evaluate(
            "() => Array.from(document.querySelectorAll('article div.cell pre, article div.output pre'))"
            ".filter(e => e.scrollWidth > e.clientWidth + 1)"
            ".map(e => [e.closest('div.cell_output, div.output') ? 'output' : 'code',"
            " e.scrollWidth - e.clientWidth, e.textContent.split('\\n').reduce("
            "(a, l) => l.length > a.length ? l : a, '').slice(0, 60)])")
        assert not wide, f"{path}: {len(wide)} blocks scroll sideways (kind, overflow px, longest line): {wide[:4]}"
    finally:
        page.close()


@pytest.mark.browser
def test_scorecard_lists_every_claim(browser, server):
    page, _, _ = open_page(browser, f"{server}/scorecard.html")
    text = page.inner_text("article")
    page.close()
    for slug in build.chapters():
        _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
        for c in cs:
            assert c.id in text, f"scorecard lacks claim {slug}/{c.id}"
    rows = json.loads((ROOT / "_build" / "ci" / "seed-0" / "scorecard.json").read_text())
    unmeasured = [f"{r['chapter']}/{r['id']}" for r in rows if r["verdict"] == claims.NOT_MEASURED]
    assert not unmeasured, f"claims of the ci book that were not measured: {unmeasured}"


@pytest.mark.browser
def test_download_ipynb_button_serves_the_executed_notebook(browser, server):
    slug = build.chapters()[0]
    page, _, _ = open_page(browser, f"{server}/chapters/{slug}/theory.html")
    hrefs = page.eval_on_selector_all("a[href$='.ipynb']", "els => els.map(e => e.href)")
    page.close()
    assert hrefs, "no .ipynb download link on a notebook page"
    resp = browser.new_context().request.get(hrefs[0])
    assert resp.ok and b'"cells"' in resp.body()


@pytest.mark.browser
@pytest.mark.parametrize("slug", build.chapters())
def test_index_and_reproduce_show_the_generated_claims_table(browser, server, slug):
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    rows = {r["id"]: r for r in json.loads((ROOT / "_build" / "ci" / "seed-0" / "scorecard.json").read_text())
            if r["chapter"] == slug}
    for name in ("index", "reproduce"):
        page, _, _ = open_page(browser, f"{server}/chapters/{slug}/{name}.html")
        ids = page.eval_on_selector_all("table.claims-table code", "els => els.map(e => e.textContent)")
        verdicts = page.eval_on_selector_all("table.claims-table .claim-verdict", "els => els.map(e => e.textContent)")
        page.close()
        assert ids == [c.id for c in cs], f"{slug}/{name}: the claims table is not the one of claims.yml"
        assert verdicts == [rows[c.id]["verdict"] for c in cs], f"{slug}/{name}: verdicts differ from the scorecard"


@pytest.mark.browser
def test_scorecard_opens_with_a_summary_per_chapter(browser, server):
    page, _, _ = open_page(browser, f"{server}/scorecard.html")
    first = page.eval_on_selector("article table", "t => t.innerText")
    links = page.eval_on_selector("article table",
                                  "t => Array.from(t.querySelectorAll('a')).map(a => a.getAttribute('href'))")
    page.close()
    assert "reproduced" in first and "not measured" in first and "all chapters" in first
    for slug in build.chapters():
        assert f"#scorecard-{slug}" in links, f"the summary does not link to {slug}'s table"


@pytest.mark.browser
@pytest.mark.parametrize("path", API_PAGES)
def test_api_pages_render_the_docstrings(browser, server, path):
    page, outside, errors = open_page(browser, f"{server}/{path}")
    try:
        assert not errors and not outside
        documented = page.eval_on_selector_all("dl.py", "els => els.length")
        module = path[len("api/"):-len(".html")]
        is_package = build.lib_modules()[module].name == "__init__.py"
        text = page.inner_text("article")
        assert module in text and len(text) > 200, f"{path}: the module's docstring did not render"
        assert documented > 0 or is_package, f"{path}: no documented function or class"
    finally:
        page.close()


STUDENT = ROOT / "_build" / "ci" / "student" / "html"


def _texts(folder):
    """The readable text of every file of a rendered book: HTML without tags, notebooks' cells."""
    import html as _html
    import re

    out = []
    for f in folder.rglob("*"):
        if not f.is_file() or f.suffix in (".png", ".jpg", ".svg", ".woff", ".woff2", ".ttf", ".eot", ".ico", ".gif"):
            continue
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        if f.suffix == ".ipynb":
            cells = json.loads(text)["cells"]
            text = "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in cells)
        elif f.suffix == ".html":
            text = _html.unescape(re.sub(r"<[^>]+>", "", text))
        out.append(" ".join(text.split()))
    return "\n".join(out)


def _lines(nb):
    return {" ".join(line.split()) for c in nb["cells"]
            for line in (c["source"] if isinstance(c["source"], str) else "".join(c["source"])).splitlines()}


def _notebook(path):
    import jupytext
    import nbformat

    return json.loads(nbformat.writes(jupytext.read(path)))


def _visible_lines():
    """Every line a student may see: the student flavour of every notebook, and every index page."""
    from lib import teaching

    out = set()
    for slug in build.chapters():
        for name in build.NOTEBOOKS:
            out |= _lines(teaching.strip_solutions(_notebook(ROOT / "chapters" / slug / f"{name}.md"))[0])
        out |= {" ".join(x.split()) for x in (ROOT / "chapters" / slug / "index.md").read_text().splitlines()}
    return out


def _solution_lines(slug, visible):
    """Distinctive lines of a chapter's solutions: in the full notebook, nowhere a student may see."""
    from lib import teaching

    nb = _notebook(ROOT / "chapters" / slug / "theory.md")
    student, _ = teaching.strip_solutions(nb)
    secret = _lines(nb) - _lines(student) - visible
    return sorted(x for x in secret if len(x) >= 30 and "`" not in x and "$" not in x)


def test_the_student_build_has_no_solution_anywhere():
    assert (STUDENT / "index.html").is_file(), "the student book was not rendered (make test renders it)"
    teacher, student = _texts(HTML), _texts(STUDENT)
    visible = _visible_lines()
    for slug in build.chapters():
        secrets = _solution_lines(slug, visible)
        found = [s for s in secrets if s in teacher]
        assert len(found) >= 3, f"{slug}: too few solution lines found in the teacher's book to test with"
        leaked = [s for s in secrets if s in student]
        assert not leaked, f"{slug}: solution text in the student build: {leaked[:3]}"
    assert "write your solution here" in student
