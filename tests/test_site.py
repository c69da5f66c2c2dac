"""`make site`: the offline website of the executed notebooks, built and read in Chromium.

The browser test executes two real chapters in smoke mode with `make run`'s runner, builds the
site from them, serves it on 127.0.0.1 and reads it in headless Chromium with every request to
another host aborted (and asserts none was even attempted): a rendered equation, a plot, the
next-chapter link and a search hit. Needs Chromium (CI installs Debian's, see ``.ci/run``);
without it that test is skipped, the others run.
"""

from __future__ import annotations

import doctest
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.website import build, offline  # noqa: E402

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
CHAPTERS = ["01_tensors", "02_autograd"]  # small, with math and plots, consecutive


def test_docstring_examples_of_the_site_tools():
    for module in (offline, build):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_external_loads_finds_cdn_scripts_styles_and_fonts_but_not_links():
    page = """<html><head>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"></script>
    <link rel="stylesheet" href="//fonts.example.org/css">
    <style>/* https://comment.example */ @font-face { src: url("https://f.example/a.woff"); }</style>
    <script>var s = document.createElement('script'); s.src = 'https://unpkg.com/x/embed.js';</script>
    </head><body><a href="https://colab.research.google.com/x">Colab</a>
    <img src="data:image/png;base64,AAAA"><script src="_static/search.js"></script></body></html>"""
    assert offline.external_loads(page) == [
        "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js",
        "//fonts.example.org/css",
        "https://f.example/a.woff",
        "https://unpkg.com/x/embed.js",
    ]


def test_stock_nbconvert_html_is_not_offline_and_ours_is():
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x^2$")])
    stock, _ = HTMLExporter().from_notebook_node(nb)
    assert any("mathjax" in url for url in offline.external_loads(stock))
    ours = offline.export_html(nb, mathjax_url="m/MathJax.js")
    assert offline.external_loads(ours) == [] and '<script src="m/MathJax.js"></script>' in ours


def test_export_refuses_an_output_that_loads_from_a_cdn():
    cell = nbformat.v4.new_code_cell("show()", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": '<script src="https://cdn.example/plot.js"></script>'})])
    nb = nbformat.v4.new_notebook(cells=[cell])
    with pytest.raises(offline.OfflineError, match="cdn.example"):
        offline.export_html(nb, mathjax_url="m/MathJax.js")


def test_unknown_widget_keeps_its_text_fallback_and_state_is_dropped():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        "s": {"state": {"_model_name": "IntSliderModel", "value": 3}}}}}
    nb.cells = [nbformat.v4.new_code_cell("slider", outputs=[nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "s"}, "text/plain": "IntSlider(value=3)"})])]
    static = offline.static_widgets(nb)
    assert static.cells[0].outputs[0].data == {"text/plain": "IntSlider(value=3)"}
    assert "widgets" not in static.metadata and "widgets" in nb.metadata  # the input is not modified


def test_chapter_table_is_read_from_the_readme_and_its_absence_is_a_clear_error():
    header, rows = build.chapter_table((REPO / "README.md").read_text(encoding="utf-8"))
    assert header[0] == "#" and any("`01_tensors`" in cell for cell in rows[0])
    assert [row[0] for row in rows][:2] == ["01", "02"]
    with pytest.raises(build.SiteError, match="no '## Chapters' section"):
        build.chapter_table("# Title\n\nNo table here.\n")
    with pytest.raises(build.SiteError, match="no Markdown table"):
        build.chapter_table("## Chapters\n\nSoon.\n\n## Next\n")


def test_build_without_executed_notebooks_says_what_to_run(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "website" / "build.py"), "--src", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no executed notebooks" in result.stderr and "make run" in result.stderr
    assert not (tmp_path / "site").exists()


def _distinctive_word(own: nbformat.NotebookNode, other: nbformat.NotebookNode) -> str:
    """A word of one of ``own``'s section headings that ``other`` never uses."""
    other_text = " ".join(c.source for c in other.cells).lower()
    for cell in own.cells:
        if cell.cell_type != "markdown":
            continue
        for heading in re.findall(r"^#{2,3}\s+(.+)$", cell.source, re.M):
            for word in re.findall(r"[A-Za-z]{6,}", heading):
                if word.lower() not in other_text:
                    return word.lower()
    raise AssertionError("no heading word of the first chapter is absent from the second")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.slow
def test_site_builds_offline_and_reads_in_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
                    "to run the site's browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

    # 1. make run (smoke mode) on two chapters, 2. make site from its output.
    build_dir, site = tmp_path / "build", tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels' inline plots
    env.update(COURSE_SMOKE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), "--jobs", "2",
                          "--out", str(build_dir), *(str(REPO / "notebooks" / f"{c}.ipynb") for c in CHAPTERS)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    made = subprocess.run([sys.executable, str(REPO / "tools" / "website" / "build.py"), "--src", str(build_dir),
                           "--out", str(site)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "smoke run" in made.stdout
    for page in site.glob("*.html"):
        assert offline.external_loads(page.read_text(encoding="utf-8")) == [], page.name
    index = json.loads((site / "_static" / "search_index.js").read_text(encoding="utf-8")
                       .removeprefix("window.COURSE_SEARCH_INDEX = ").rstrip().rstrip(";"))
    assert {entry["p"] for entry in index} == {f"{c}.html" for c in CHAPTERS}
    executed = [nbformat.read(build_dir / f"{c}.ipynb", as_version=4) for c in CHAPTERS]
    word = _distinctive_word(executed[0], executed[1])

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    requested: list[str] = []
    blocked: list[str] = []

    def only_local(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith((base + "/", "data:", "about:")):
            route.continue_()  # type: ignore[attr-defined]
        else:
            blocked.append(url)
            route.abort()  # type: ignore[attr-defined]

    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_local)
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            try:
                # The home page: the README's chapter table, linking each chapter's page.
                page.goto(f"{base}/index.html")
                page.screenshot(path=str(tmp_path / "home.png"))
                assert "smoke run" in page.inner_text(".course-banner")
                page.click(f"table.course-chapters a[href='{CHAPTERS[0]}.html']")
                page.wait_for_url(f"{base}/{CHAPTERS[0]}.html")

                # A rendered equation: MathJax typeset the TeX, no raw $...$ is left in the prose.
                page.wait_for_selector(".jp-RenderedMarkdown .MathJax", state="attached", timeout=60_000)
                page.evaluate("() => new Promise(done => MathJax.Hub.Queue(done))")
                assert page.locator(".jp-RenderedMarkdown .MathJax").count() > 0
                prose = page.evaluate("""() => {
                    const main = document.querySelector('main');
                    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
                    const skip = 'script, code, pre, .MathJax, .MathJax_Preview, .MathJax_Display, '
                               + '.jp-OutputArea, .jp-InputArea';
                    let text = '';
                    while (walker.nextNode()) {
                        if (!walker.currentNode.parentElement.closest(skip)) text += walker.currentNode.data + ' ';
                    }
                    return text;
                }""")
                assert not re.search(r"\$[^$\n]+\$", prose), re.search(r".{0,40}\$[^$\n]+\$.{0,40}", prose)
                assert not re.search(r"\\(mathbf|frac|sum|top)\b", prose)
                page.screenshot(path=str(tmp_path / "chapter.png"))

                # A plot: an output image that the browser decoded.
                plot = page.locator(".jp-OutputArea-output img").first
                plot.scroll_into_view_if_needed()
                assert plot.get_attribute("src").startswith("data:image/png;base64,")
                assert plot.evaluate("img => img.complete && img.naturalWidth") > 100
                page.screenshot(path=str(tmp_path / "plot.png"))

                # Navigation: next -> the next chapter.
                page.click("header a.course-next")
                page.wait_for_url(f"{base}/{CHAPTERS[1]}.html")
                assert page.inner_text("main h1").startswith(CHAPTERS[1][:2])
                assert page.locator("header a.course-prev").get_attribute("href") == f"{CHAPTERS[0]}.html"

                # Search from the second chapter: a word only the first chapter uses.
                page.fill("#course-search-input", word)
                first_hit = page.locator("#course-search-results a.course-hit").first
                first_hit.wait_for(timeout=10_000)
                page.screenshot(path=str(tmp_path / "search.png"))
                href = first_hit.get_attribute("href")
                assert href.startswith(f"{CHAPTERS[0]}.html#"), (word, href)
                first_hit.click()
                page.wait_for_url(re.compile(re.escape(f"{base}/{CHAPTERS[0]}.html#")))
                anchor = page.evaluate("() => decodeURIComponent(location.hash.slice(1))")
                assert page.locator(f"[id='{anchor}']").count() == 1  # the hit's section is on the page
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert blocked == [], f"the site tried to reach other hosts: {blocked}"
    assert requested and all(u.startswith((base + "/", "data:", "about:")) for u in requested), [
        u for u in requested if not u.startswith((base + "/", "data:", "about:"))]
    screenshots = os.environ.get("COURSE_SITE_SCREENSHOTS")
    if screenshots:  # keep the pictures for a person to look at
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copyfile(png, Path(screenshots) / png.name)
