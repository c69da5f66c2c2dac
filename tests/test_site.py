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
import html
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


def _exercise_notebook(number: int, topic: str, exercises: list[tuple[str, str, str]]) -> nbformat.NotebookNode:
    """A small chapter whose ``## Exercises`` section holds ``exercises``: (kind, title, solution kind)."""
    cells = [nbformat.v4.new_markdown_cell(f"# {number:02d} · {topic.title()}\n\nThe lesson."),
             nbformat.v4.new_code_cell("x = 1"),
             nbformat.v4.new_markdown_cell("## Exercises")]
    for n, (kind, title, solution) in enumerate(exercises, start=1):
        ex = f"{number}.{n}"
        if solution == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(
                f"### Exercise {ex} · {kind} · {title}\n\nWhy does $x^2$ grow?\n\n<!-- BEGIN SOLUTION -->\n"
                f"<details><summary>Answer</summary>\n\nBecause secret_answer_{ex.replace('.', '_')}.\n\n</details>\n"
                "<!-- END SOLUTION -->"))
        else:
            cells.append(nbformat.v4.new_markdown_cell(f"### Exercise {ex} · {kind} · {title}\n\nWrite `f`."))
            cells.append(nbformat.v4.new_code_cell(
                "from course_utils.exercises import check\n\n\ndef f(x):\n    \"\"\"Twice x.\"\"\"\n"
                f"    # BEGIN SOLUTION\n    secret_solution_{ex.replace('.', '_')} = 2 * x\n"
                f"    return secret_solution_{ex.replace('.', '_')}\n    # END SOLUTION\n\n\ncheck(\"{ex}\", f)"))
    return nbformat.v4.new_notebook(cells=cells)


def _readme(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text("# A course\n\nLearn things.\n\n## Chapters\n\n| # | notebook | topics |\n| --- | --- | --- |\n"
                      "| 02 | `02_first` | one |\n| 03 | `03_second` | two |\n", encoding="utf-8")
    return readme


@pytest.fixture(scope="module")
def exercise_sources(tmp_path_factory) -> tuple[Path, Path]:
    """``notebooks/`` with two chapters of exercises, and a ``make run`` output of the first only."""
    root = tmp_path_factory.mktemp("exercises")
    notebooks, src = root / "notebooks", root / "build"
    notebooks.mkdir()
    src.mkdir()
    first = _exercise_notebook(2, "first", [("implement", "Double it", "code"),
                                            ("question", 'Why "a & b"?', "markdown")])
    nbformat.write(first, notebooks / "02_first.ipynb")
    nbformat.write(first, src / "02_first.ipynb")
    nbformat.write(_exercise_notebook(3, "second", [("implement", "Again", "code")]), notebooks / "03_second.ipynb")
    return notebooks, src


def _pages(site: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in site.glob("*.html")}


def test_fold_solutions_folds_code_and_markdown_and_refuses_unpaired_markers():
    nb = _exercise_notebook(2, "first", [("implement", "Double it", "code"), ("question", "Why?", "markdown")])
    folded = build.fold_solutions(nb)
    assert nb.cells[4].metadata == {} and "course_parts" in folded.cells[4].metadata  # the input is kept
    parts = folded.cells[4].metadata["course_parts"]
    assert [p["solution"] for p in parts] == [False, True, False]
    assert parts[1]["source"] == "    secret_solution_2_1 = 2 * x\n    return secret_solution_2_1"
    assert '"""Twice x."""' in parts[0]["source"] and parts[2]["source"] == 'check("2.1", f)'
    markdown = folded.cells[5].source
    assert markdown.count("<details") == 1 and "Answer" not in markdown  # one fold, not two
    assert '<details class="course-solution"><summary>Solution</summary>' in markdown
    assert "BEGIN SOLUTION" not in markdown and "secret_answer_2_2" in markdown
    for broken in ("# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION"):
        with pytest.raises(build.SiteError, match="cell 0"):
            build.fold_solutions(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(broken)]))
    with pytest.raises(build.SiteError, match="unpaired"):
        build.fold_solutions(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("<!-- BEGIN SOLUTION -->")]))


def test_site_folds_solutions_and_lists_the_exercises_with_links_to_their_headings(tmp_path, exercise_sources):
    notebooks, src = exercise_sources
    site = tmp_path / "site"
    summary = build.build_site(src, site, _readme(tmp_path), quiet=True, repo_url=None, notebooks=notebooks)
    assert summary["exercises"] == 3 and summary["pages"] == 3
    pages = _pages(site)
    assert set(pages) == {"index.html", "02_first.html", "exercises.html"}
    for name, page in pages.items():
        assert offline.external_loads(page) == [], name
        assert name == "exercises.html" or 'href="exercises.html"' in page, f"{name} does not link the exercises page"

    chapter = pages["02_first.html"]
    folds = re.findall(r'<details class="course-solution"( open)?><summary>Solution</summary>(.*?)</details>',
                       chapter, re.S)
    assert len(folds) == 2 and all(not is_open for is_open, _ in folds)  # closed by default
    assert "secret_solution_2_1" in folds[0][1] and "secret_answer_2_2" in folds[1][1]
    outside = re.sub(r'<details class="course-solution">.*?</details>', "", chapter, flags=re.S)
    assert "secret_" not in outside and "BEGIN SOLUTION" not in chapter and "END SOLUTION" not in chapter
    assert "Twice x." in outside and "check" in outside  # the signature, docstring and check stay visible
    search_index = (site / "_static" / "search_index.js").read_text(encoding="utf-8")
    assert "Double it" in search_index and "secret_" not in search_index  # solutions are not searchable

    listing = pages["exercises.html"]
    ids = set(re.findall(r'\bid="([^"]+)"', chapter))
    links = dict(re.findall(r'<a href="02_first\.html#([^"]+)">([^<]+)</a>', listing))
    assert {html.unescape(title) for title in links.values()} == {"Double it", 'Why "a & b"?'}
    assert set(links) <= ids, "an exercise link points to no heading of the chapter page"
    rows = re.findall(r"<tr><td>([\d.]+)</td><td>(\w+)</td><td>(.*?)</td><td>(\w+)</td></tr>", listing)
    assert [(r[0], r[1], r[3]) for r in rows] == [("2.1", "implement", "yes"), ("2.2", "question", "no"),
                                                  ("3.1", "implement", "yes")]
    assert rows[2][2] == "Again"  # its chapter is not in this build: listed, not linked
    assert "03 · Second" in listing and "not in this build" in listing


@pytest.mark.parametrize("setting, colab", [("", False), ("git@github.com:someone/course.git", True)])
def test_colab_links_and_the_cloud_only_when_the_repository_has_a_public_address(
        tmp_path, monkeypatch, exercise_sources, setting, colab):
    notebooks, src = exercise_sources
    monkeypatch.setenv("COURSE_REPO_URL", setting)  # build_site reads the setting (repo_url="auto")
    site = tmp_path / "site"
    assert build.build_site(src, site, _readme(tmp_path), quiet=True, notebooks=notebooks)["colab"] is colab
    pages = _pages(site)
    if not colab:
        for name, page in pages.items():
            assert not re.search(r"colab|cloud", page, re.I), name
        return
    assert "Run in the cloud" in pages["index.html"]
    for name in ("02_first", "03_second"):  # the home table's column, one link a chapter
        assert f'href="https://colab.research.google.com/github/someone/course/blob/main/notebooks/{name}.ipynb"' in (
            pages["index.html"])
    assert ('<a class="course-colab" href="https://colab.research.google.com/github/someone/course/blob/main/'
            'notebooks/02_first.ipynb">') in pages["02_first.html"]
    assert "OWNER" not in "".join(pages.values())


def test_a_repository_address_off_github_is_a_clear_error(tmp_path, monkeypatch, exercise_sources):
    notebooks, src = exercise_sources
    monkeypatch.setenv("COURSE_REPO_URL", "https://gitlab.com/someone/course")
    with pytest.raises(build.SiteError, match="COURSE_REPO_URL must be the repository's GitHub address"):
        build.build_site(src, tmp_path / "site", _readme(tmp_path), quiet=True, notebooks=notebooks)
    assert not (tmp_path / "site").exists()


def test_the_exercises_page_lists_every_exercise_of_the_course(tmp_path):
    """Generated from tools/exercises.py's all_exercises() over notebooks/, whatever their number."""
    from tools.exercises import all_exercises

    src = tmp_path / "build"
    src.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Tensors")]),
                   src / "01_tensors.ipynb")
    build.build_site(src, tmp_path / "site", REPO / "README.md", quiet=True, repo_url=None)
    listing = (tmp_path / "site" / "exercises.html").read_text(encoding="utf-8")
    exercises = all_exercises()
    rows = re.findall(r"<tr><td>([\d.]+)</td><td>(\w+)</td><td>(.*?)</td><td>(yes|no)</td></tr>", listing)
    assert [(ex.id, ex.kind, ex.checked) for ex in exercises] == [(r[0], r[1], r[3] == "yes") for r in rows]
    for ex, row in zip(exercises, rows, strict=True):
        assert ex.title in html.unescape(row[2]), (ex.id, row)
    assert (f"{len(exercises)} exercise" in listing) if exercises else ("No exercises yet." in listing)


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
