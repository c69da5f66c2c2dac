"""``make site``: a static website of the executed notebooks that builds and displays offline.

Reads the executed notebooks that ``make run`` writes (``build/NN_topic.ipynb``) and writes
``build/site/``: ``index.html`` (the README's chapter table, how to run the course, search), one
page per chapter with its outputs, plots and rendered math, prev/next navigation, and a search
over every chapter's text and code. Nothing is fetched from the network, at build time or when
the pages are viewed: math is typeset by a local copy of MathJax (see ``offline.py`` and
``docs/site.md`` for why this tool). Open ``build/site/index.html`` in a browser, or serve the
folder (``python -m http.server -d build/site``).

Exercises: on the chapter pages every solution (``# BEGIN SOLUTION`` … ``# END SOLUTION`` in code,
``<!-- BEGIN SOLUTION -->`` … ``<!-- END SOLUTION -->`` in markdown) is folded into a closed
``<details>`` ("Solution") and left out of the search index; ``exercises.html`` lists every
exercise of ``notebooks/`` (``tools/exercises.py``'s ``all_exercises``) by chapter, each linking
to its heading on the chapter's page.

Colab links appear only when the repository's public address is known
(``tools/add_colab_cell.py``'s ``course_repo_url``: ``COURSE_REPO_URL``, else git's ``origin``
on GitHub); otherwise no page links to Colab or mentions running in the cloud.

    python tools/website/build.py [--src build] [--out build/site] [--readme README.md]
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from course_utils.atomic_write import WRITE_ERRNOS, WriteError  # noqa: E402
from tools.add_colab_cell import colab_url, course_repo_url  # noqa: E402
from tools.exercises import (  # noqa: E402
    CODE_BEGIN,
    CODE_END,
    MD_BEGIN,
    MD_END,
    Exercise,
    ExerciseError,
    all_exercises,
    read_notebook,
)
from tools.website.offline import (  # noqa: E402
    OfflineError,
    copy_mathjax,
    export_html,
    external_loads,
    run_banner,
)

HERE = Path(__file__).resolve().parent
STATIC = "_static"
EXERCISES_PAGE = "exercises.html"
AUTO = "auto"  # build_site(repo_url=AUTO): the repository's address from the settings

__all__ = ["Chapter", "chapter_table", "search_sections", "fold_solutions", "exercise_anchors", "build_site",
           "main"]


class SiteError(RuntimeError):
    """The site cannot be built from these inputs (the message says why)."""


class SiteWriteError(SiteError, WriteError):
    """The site could not be written (no space, read-only, no permission, too large)."""


@contextmanager
def _site_writes(tmp: Path, out: Path) -> Iterator[None]:
    """Remove the half-built ``tmp`` on any error; a failed write becomes a :class:`SiteWriteError`
    naming the file (the old site in ``out`` is kept)."""
    try:
        yield
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            where = Path(err.filename) if isinstance(err.filename, str) else out
            raise SiteWriteError.from_os_error(where, err, elsewhere="pass --out a folder on another disk",
                                               doing=f"building the site {out}; the old site is kept") from err
        raise


def _swap_in(new: Path, out: Path) -> None:
    """Put the finished folder ``new`` at ``out``; the old ``out`` is removed only afterwards."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class Chapter:
    """One executed notebook and its page."""

    name: str
    path: Path
    title: str
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def href(self) -> str:
        return f"{self.name}.html"


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def chapter_table(readme: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows (Markdown cells) of the first table under ``## Chapters``.

    >>> chapter_table("# T\\n\\n## Chapters\\n\\nIntro.\\n\\n| # | notebook |\\n| --- | --- |\\n| 01 | `01_a` |\\n")
    (['#', 'notebook'], [['01', '`01_a`']])
    """
    match = re.search(r"^##\s+Chapters\s*$", readme, re.M)
    if match is None:
        raise SiteError("README.md has no '## Chapters' section: the home page's table comes from it")
    lines = readme[match.end():].splitlines()
    table: list[str] = []
    for line in lines:
        if line.startswith("## "):
            break
        if line.lstrip().startswith("|"):
            table.append(line)
        elif table:
            break
    if len(table) < 3 or not re.fullmatch(r"[\s|:-]+", table[1]):
        raise SiteError("README.md's '## Chapters' section has no Markdown table (header, ---, rows)")
    header = _split_row(table[0])
    return header, [_split_row(line) for line in table[2:]]


def _inline_markdown(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    rendered = markdown2html_mistune(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.S)


def _readme_intro(readme: str) -> tuple[str, str]:
    """The README's title (its ``# `` heading) and first paragraph."""
    title_match = re.search(r"^#\s+(.+)$", readme, re.M)
    title = title_match.group(1).strip() if title_match else "The course"
    rest = readme[title_match.end():] if title_match else readme
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", rest) if p.strip()]
    intro = next((p for p in paragraphs if not p.startswith(("#", "|", "```", "-", ">"))), "")
    return title, intro


def _notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


class _SectionCollector(HTMLParser):
    """Splits an exported notebook page into (heading id, heading text, text) sections.

    Markdown and code text count; outputs, prompts, scripts and styles do not.
    """

    _SKIP_CLASSES = ("jp-OutputArea", "jp-InputPrompt", "anchor-link", "course-header",
                     "course-footer-nav", "course-banner", "course-links", "course-solution")
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
             "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[dict[str, str]] = [{"a": "", "s": "", "x": ""}]
        self._stack: list[tuple[str, bool]] = []  # (tag, skipping since this tag)
        self._heading: str | None = None
        self._raw = 0  # inside <script>/<style>

    @property
    def _skipping(self) -> bool:
        return any(skip for _, skip in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in ("script", "style"):
            self._raw += 1
            return
        if tag in self._VOID:
            return
        classes = values.get("class", "")
        skip = any(c in classes for c in self._SKIP_CLASSES)
        self._stack.append((tag, skip))
        if re.fullmatch(r"h[1-3]", tag) and values.get("id") and not self._skipping:
            self.sections.append({"a": values["id"], "s": "", "x": ""})
            self._heading = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._raw = max(0, self._raw - 1)
            return
        for i in range(len(self._stack) - 1, -1, -1):  # tolerate unclosed inner tags
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._raw or self._skipping:
            return
        key = "s" if self._heading else "x"
        self.sections[-1][key] += data


def search_sections(page: str) -> list[dict[str, str]]:
    """Sections of an exported page: anchor ``a``, heading ``s`` and whitespace-folded text ``x``.

    >>> search_sections('<h2 id="Loss">Loss<a class="anchor-link" href="#Loss">¶</a></h2><p>squared   error</p>')
    [{'a': 'Loss', 's': 'Loss', 'x': 'squared error'}]
    """
    collector = _SectionCollector()
    collector.feed(page)
    collector.close()
    sections = []
    for section in collector.sections:
        folded = {k: " ".join(v.split()) for k, v in section.items()}
        if folded["s"] or folded["x"]:
            sections.append(folded)
    return sections


_FOLDED_MD = re.compile(re.escape(MD_BEGIN) + r"(.*?)" + re.escape(MD_END), re.S)
_ANSWER_DETAILS = re.compile(r"\s*<details[^>]*>\s*<summary>.*?</summary>(.*)</details>\s*", re.S)


def _fold_markdown(source: str, where: str) -> str:
    def fold(match: re.Match[str]) -> str:
        inner = match.group(1)
        answer = _ANSWER_DETAILS.fullmatch(inner)  # already a <details> block: fold it only once
        body = (answer.group(1) if answer else inner).strip("\n")
        return f'<details class="course-solution"><summary>Solution</summary>\n\n{body}\n\n</details>'

    folded = _FOLDED_MD.sub(fold, source)
    if MD_BEGIN in folded or MD_END in folded:
        raise SiteError(f"{where}: unpaired '{MD_BEGIN}' / '{MD_END}'")
    return folded


def _code_parts(source: str, where: str) -> list[dict[str, Any]]:
    """The cell's code split at its solution markers: [{"solution": bool, "source": str}, ...]."""
    parts: list[dict[str, Any]] = []
    lines: list[str] = []
    inside = False

    def close(solution: bool) -> None:
        text = "\n".join(lines).strip("\n")
        if text or solution:
            parts.append({"solution": solution, "source": text})
        lines.clear()

    for line in source.split("\n"):
        marker = line.strip()
        if marker == CODE_BEGIN:
            if inside:
                raise SiteError(f"{where}: '{CODE_BEGIN}' inside a solution")
            close(False)
            inside = True
        elif marker == CODE_END:
            if not inside:
                raise SiteError(f"{where}: '{CODE_END}' without '{CODE_BEGIN}'")
            close(True)
            inside = False
        else:
            lines.append(line)
    if inside:
        raise SiteError(f"{where}: '{CODE_BEGIN}' without '{CODE_END}'")
    close(False)
    return parts


def fold_solutions(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of ``nb`` whose exercise solutions the site shows folded (closed ``<details>``).

    A markdown solution region becomes ``<details class="course-solution"><summary>Solution</summary>``
    around the answer (an answer that is already one ``<details>`` block is unwrapped first, so it
    folds once); a code cell with solution markers gets ``metadata.course_parts``, its code split
    at the markers (which are dropped), and the course template folds the solution parts.

    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    ...     "def f(x):\\n    # BEGIN SOLUTION\\n    return 2 * x\\n    # END SOLUTION\\n\\ncheck('2.1', f)")])
    >>> for part in fold_solutions(nb).cells[0].metadata["course_parts"]:
    ...     print(part["solution"], repr(part["source"]))
    False 'def f(x):'
    True '    return 2 * x'
    False "check('2.1', f)"
    >>> md = nbformat.v4.new_markdown_cell("Why?\\n<!-- BEGIN SOLUTION -->\\nBecause.\\n<!-- END SOLUTION -->")
    >>> print(fold_solutions(nbformat.v4.new_notebook(cells=[md])).cells[0].source)
    Why?
    <details class="course-solution"><summary>Solution</summary>
    <BLANKLINE>
    Because.
    <BLANKLINE>
    </details>
    """
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type == "markdown" and (MD_BEGIN in cell.source or MD_END in cell.source):
            cell.source = _fold_markdown(cell.source, where)
        elif cell.cell_type == "code" and any(line.strip() in (CODE_BEGIN, CODE_END)
                                              for line in cell.source.split("\n")):
            cell.metadata["course_parts"] = _code_parts(cell.source, where)
    return nb


_EXERCISE_HEADING = re.compile(r"^Exercise (\d+\.\d+) ·")


def exercise_anchors(page: str) -> dict[str, str]:
    """Exercise id → the id of its heading on an exported chapter page.

    >>> exercise_anchors('<h3 id="Exercise-2.1-x">Exercise 2.1 · implement · X<a class="anchor-link">¶</a></h3>')
    {'2.1': 'Exercise-2.1-x'}
    """
    anchors: dict[str, str] = {}
    for section in search_sections(page):
        match = _EXERCISE_HEADING.match(section["s"])
        if match and section["a"]:
            anchors.setdefault(match.group(1), section["a"])
    return anchors


def _solution_notebook_title(path: Path, fallback: str) -> str:
    """The title of a notebook in ``notebooks/`` (read as JSON: its first ``# `` heading)."""
    for cell in read_notebook(path)["cells"] if path.is_file() else []:
        match = re.search(r"^#\s+(.+)$", "".join(cell["source"]), re.M) if cell["cell_type"] == "markdown" else None
        if match:
            return match.group(1).strip()
    return fallback


def _exercise_groups(
    exercises: list[Exercise], chapters: dict[str, Chapter], anchors: dict[str, dict[str, str]], notebooks: Path
) -> list[dict[str, Any]]:
    """The exercises page's content: one group per chapter, in order, each exercise with its link."""
    groups: list[dict[str, Any]] = []
    for ex in exercises:
        if not groups or groups[-1]["name"] != ex.notebook:
            chapter = chapters.get(ex.notebook)
            if chapter is not None:
                title = chapter.title
            else:
                title = _solution_notebook_title(notebooks / f"{ex.notebook}.ipynb", ex.notebook)
            groups.append({"name": ex.notebook, "title": title, "href": chapter.href if chapter else None,
                           "exercises": []})
        group = groups[-1]
        anchor = anchors.get(ex.notebook, {}).get(ex.id)
        href = None if group["href"] is None else group["href"] + (f"#{anchor}" if anchor else "")
        group["exercises"].append({"id": ex.id, "kind": ex.kind, "title": ex.title, "checked": ex.checked,
                                   "href": href})
    return groups


def _find_chapters(src: Path) -> list[Chapter]:
    chapters = []
    for path in sorted(src.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        chapters.append(Chapter(path.stem, path, _notebook_title(nb, path.stem),
                                dict(nb.metadata.get("course_run", {}))))
    if not chapters:
        raise SiteError(
            f"no executed notebooks (NN_topic.ipynb) in {src}: run `make run` (the full lessons) or "
            "`COURSE_SMOKE=1 make run` (quick) first, or pass --src")
    return chapters


def _site_mode(chapters: list[Chapter]) -> str:
    modes = {c.run.get("mode", "unknown") for c in chapters}
    dates = sorted(c.run.get("finished", "")[:10] for c in chapters if c.run.get("finished"))
    when = (f" of {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")) if dates else ""
    if modes == {"full"}:
        return f"The outputs on these pages come from a full run of every lesson{when}."
    if modes == {"smoke"}:
        return (f"The outputs on these pages come from a smoke run{when} (COURSE_SMOKE=1: fewer examples "
                "and epochs), so trained models score below the full lessons and the book.")
    return ("The outputs on these pages come from runs in different modes (each page says which); "
            "smoke-mode numbers are below the full lessons'.")


def _home_rows(
    header: list[str], rows: list[list[str]], chapters: dict[str, Chapter], repo_url: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """Render the README's table cells; link each notebook to its page, and to Colab when the
    repository's public address ``repo_url`` is known (no Colab column otherwise)."""
    add_colab = repo_url is not None and not any("colab" in h.lower() for h in header)
    out_header = [html.escape(h) for h in header] + (["Colab"] if add_colab else [])
    out_rows = []
    for row in rows:
        cells = [_inline_markdown(cell) for cell in row]
        names = [name for cell in row for name in re.findall(r"`(\d\d_[A-Za-z0-9_]+)`", cell)]
        name = next((n for n in names if n in chapters), None)
        if name is not None:
            index = next(i for i, cell in enumerate(row) if f"`{name}`" in cell)
            chapter = chapters[name]
            failed = chapter.run.get("status", "ok") != "ok"
            cells[index] = (f'<a href="{chapter.href}">{html.escape(chapter.title)}</a>'
                            f'<br><code>{html.escape(name)}</code>'
                            + ('<br><strong class="course-failed">failed in this run</strong>' if failed else ""))
        if add_colab:
            target = name or (names[0] if names else None)
            cells.append(f'<a href="{html.escape(colab_url(target, repo_url))}">open</a>' if target else "")
        out_rows.append(cells)
    return out_header, out_rows


def _render(template: str, **context: Any) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)


def _lab_css() -> str:
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbconvert", "templates", "lab", "static"):
        index = Path(folder) / "index.css"
        if index.is_file():
            theme = Path(folder) / "theme-light.css"
            return index.read_text(encoding="utf-8") + "\n" + theme.read_text(encoding="utf-8")
    raise SiteError("nbconvert's lab template CSS was not found: reinstall nbconvert")


def _exercises(notebooks: Path) -> list[Exercise]:
    try:
        return all_exercises(notebooks)
    except ExerciseError as err:
        raise SiteError(f"the exercises page cannot be built: {err}") from err


def _repo_url(repo_url: str | None) -> str | None:
    if repo_url != AUTO:
        return repo_url
    try:
        return course_repo_url()
    except ValueError as err:
        raise SiteError(str(err)) from err


def build_site(
    src: Path,
    out: Path,
    readme: Path,
    *,
    quiet: bool = False,
    repo_url: str | None = AUTO,
    notebooks: Path = REPO / "notebooks",
) -> dict[str, Any]:
    """Build the site from the executed notebooks in ``src`` into ``out``; return a summary.

    ``repo_url``: the repository's public GitHub address for the Colab links; ``"auto"`` (the
    default) takes it from the settings (``course_repo_url``), None means none: no Colab link and
    no mention of the cloud. ``notebooks``: the solution notebooks whose exercises
    ``exercises.html`` lists.
    """
    tic = time.perf_counter()
    chapters = _find_chapters(src)
    repo_url = _repo_url(repo_url)
    exercises = _exercises(notebooks)
    header, rows = chapter_table(readme.read_text(encoding="utf-8"))
    site_title, intro = _readme_intro(readme.read_text(encoding="utf-8"))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with _site_writes(tmp, out):
        static = tmp / STATIC
        static.mkdir(parents=True)
        mathjax_url = f"{STATIC}/mathjax/" + copy_mathjax(static / "mathjax")
        for asset in ("site.css", "search.js"):
            shutil.copyfile(HERE / "static" / asset, static / asset)
        (static / "notebook.css").write_text(_lab_css(), encoding="utf-8")

        index: list[dict[str, str]] = []
        anchors: dict[str, dict[str, str]] = {}
        for i, chapter in enumerate(chapters):
            nb = fold_solutions(nbformat.read(chapter.path, as_version=4), chapter.path.name)
            neighbour = {
                "prev": chapters[i - 1] if i > 0 else None,
                "next": chapters[i + 1] if i + 1 < len(chapters) else None,
            }
            page = {
                "site_title": site_title,
                "static": STATIC,
                "colab_url": colab_url(chapter.name, repo_url) if repo_url else None,
                "exercises": EXERCISES_PAGE,
                **{k: ({"href": c.href, "title": c.title} if c else None) for k, c in neighbour.items()},
            }
            body = export_html(nb, mathjax_url=mathjax_url, banner=run_banner(chapter.run), page=page)
            (tmp / chapter.href).write_text(body, encoding="utf-8")
            anchors[chapter.name] = exercise_anchors(body)
            for section in search_sections(body):
                index.append({"p": chapter.href, "c": chapter.title, **section})
            if not quiet:
                print(f"  {chapter.href}", flush=True)

        by_name = {c.name: c for c in chapters}
        listed = {n for row in rows for cell in row for n in re.findall(r"`(\d\d_[A-Za-z0-9_]+)`", cell)}
        table_header, table_rows = _home_rows(header, rows, by_name, repo_url)
        home = _render(
            "home.html.j2", site_title=site_title, intro=_inline_markdown(intro) if intro else "",
            mode=_site_mode(chapters), header=table_header, rows=table_rows, static=STATIC,
            first=chapters[0], unlisted=[c for c in chapters if c.name not in listed],
            colab=repo_url is not None, exercises_page=EXERCISES_PAGE, exercise_count=len(exercises),
        )
        exercises_page = _render(
            "exercises.html.j2", site_title=site_title, static=STATIC, first=chapters[0],
            groups=_exercise_groups(exercises, by_name, anchors, notebooks), count=len(exercises),
            checked=sum(ex.checked for ex in exercises),
        )
        for name, text in (("index.html", home), (EXERCISES_PAGE, exercises_page)):
            external = external_loads(text)
            if external:
                raise OfflineError(f"{name} would load from other hosts: {', '.join(external[:5])}")
            (tmp / name).write_text(text, encoding="utf-8")
        (static / "search_index.js").write_text(
            "window.COURSE_SEARCH_INDEX = " + json.dumps(index, ensure_ascii=False, separators=(",", ":")) + ";\n",
            encoding="utf-8")

        _swap_in(tmp, out)  # replace the old site only once the new one is complete
    files = [p for p in out.rglob("*") if p.is_file()]
    summary = {
        "pages": len(chapters) + 2,
        "exercises": len(exercises),
        "colab": repo_url is not None,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - tic, 1),
        "mode": _site_mode(chapters),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(REPO / "build"), help="folder of executed notebooks (make run's output)")
    parser.add_argument("--out", default=None, help="site folder (default: SRC/site)")
    parser.add_argument("--readme", default=str(REPO / "README.md"), help="README with the '## Chapters' table")
    args = parser.parse_args(argv)
    src = Path(args.src).resolve()
    out = Path(args.out).resolve() if args.out else src / "site"
    try:
        summary = build_site(src, out, Path(args.readme))
    except (SiteError, OfflineError) as err:
        print(f"make site: {err}", file=sys.stderr)
        return 1
    print(f"site: {summary['pages']} pages, {summary['files']} files, "
          f"{summary['bytes'] / 2**20:.1f} MiB in {summary['seconds']} s -> {out}/index.html")
    print(summary["mode"])
    print(f"{summary['exercises']} exercises listed in {EXERCISES_PAGE}; "
          + ("Colab links to the repository's public address." if summary["colab"] else
             "no Colab links: the repository has no known public address (set COURSE_REPO_URL, see docs/site.md)."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
