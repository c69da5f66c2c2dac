"""Notebook → HTML that displays fully offline (used by ``make run`` and ``make site``).

nbconvert's stock HTML loads MathJax, require.js and the Jupyter widget manager from CDNs, so
offline every equation shows as raw ``$…$`` and every progress bar as an empty box. Here:

* math: a local copy of MathJax 2.7 (the files of the PyPI package ``jupyter-server-mathjax``,
  which Jupyter itself uses to serve math offline), copied next to the pages by
  :func:`copy_mathjax` and referenced by a relative URL;
* widgets: :func:`static_widgets` replaces each widget output (tqdm's progress bars) by static
  HTML drawn from the widget state saved at the end of the run — the final bar and its text;
* :func:`external_loads` lists whatever a page would still fetch from another host; the
  exporters here refuse to return a page for which that list is not empty.

>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Euler: $e^{i\\\\pi} = -1$")])
>>> page = export_html(nb, mathjax_url="_static/mathjax/MathJax.js")
>>> external_loads(page)
[]
>>> '<script src="_static/mathjax/MathJax.js' in page
True
"""

from __future__ import annotations

import copy
import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat

__all__ = [
    "MATHJAX_CONFIG",
    "TEMPLATES",
    "copy_mathjax",
    "mathjax_source",
    "static_widgets",
    "export_html",
    "external_loads",
    "run_banner",
    "OfflineError",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
# MathJax 2's combined configuration shipped by jupyter-server-mathjax (TeX and MathML input,
# HTML-CSS output with the STIX-Web fonts), plus the Safe extension that disables raw HTML in math.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class OfflineError(RuntimeError):
    """A page would load something from another host, or an asset is missing."""


def mathjax_source() -> Path:
    """The folder holding ``MathJax.js`` in the installed ``jupyter-server-mathjax`` package."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise OfflineError(
            "jupyter-server-mathjax is not installed; it provides the MathJax files for offline "
            "pages (pip install jupyter-server-mathjax, or `make setup`)"
        ) from err
    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        raise OfflineError(f"{static / 'MathJax.js'} is missing: reinstall jupyter-server-mathjax")
    return static


def _skip_mathjax_file(rel: Path) -> bool:
    # Interface translations other than English, and the SVG output's fonts (the pages use
    # HTML-CSS output), are never loaded: leave them out (about 2.5 MB).
    parts = rel.parts
    return (parts[:1] == ("localization",) and parts[1:2] != ("en",)) or parts[:3] == (
        "jax", "output", "SVG")


def copy_mathjax(dest: str | Path) -> str:
    """Copy MathJax into ``dest`` (a folder) and return the script's file name with its config.

    Files already there with the same size are left alone, so repeated builds are cheap.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     copy_mathjax(Path(tmp) / "mathjax")
    'MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'
    """
    source = mathjax_source()
    dest = Path(dest)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or _skip_mathjax_file(rel):
            continue
        target = dest / rel
        if target.is_file() and target.stat().st_size == path.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return f"MathJax.js?config={MATHJAX_CONFIG}"


def _widget_models(nb: nbformat.NotebookNode) -> dict[str, dict[str, Any]]:
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    return {model_id: model.get("state", {}) for model_id, model in state.items()}


def _model(models: dict[str, dict[str, Any]], ref: str) -> dict[str, Any]:
    return models.get(ref.removeprefix("IPY_MODEL_"), {})


def _text(value: object) -> str:
    """Widget HTML/label value → escaped plain text (tqdm pads with figure spaces)."""
    plain = re.sub(r"<[^>]*>", "", html.unescape(str(value or "")))
    return html.escape(plain.replace("\u2007", " ").replace("\u200b", "").strip())


def _render_widget(models: dict[str, dict[str, Any]], model_id: str) -> str | None:
    """Static HTML for a progress bar (a box of label/progress/label), or None if unknown."""
    state = models.get(model_id)
    if state is None:
        return None
    name = state.get("_model_name", "")
    parts: list[str] = []
    if name in ("HBoxModel", "VBoxModel", "BoxModel"):
        children = [_model(models, ref) for ref in state.get("children", [])]
    else:
        children = [state]
    for child in children:
        child_name = child.get("_model_name", "")
        if child_name in ("FloatProgressModel", "IntProgressModel"):
            low, high = float(child.get("min", 0)), float(child.get("max", 0))
            value = float(child.get("value", 0))
            parts.append(f'<progress value="{value - low:g}" max="{max(high - low, 0):g}"></progress>')
            if child.get("description"):
                parts.insert(len(parts) - 1, f"<span>{_text(child['description'])}</span>")
        elif child_name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
            text = _text(child.get("value"))
            if text:
                parts.append(f"<span>{text}</span>")
        else:
            return None
    if not parts:
        return None
    return '<div class="course-progress">' + " ".join(parts) + "</div>"


def static_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose widget outputs are static HTML and without widget state.

    Progress bars (tqdm's box of text, bar, text) become an HTML ``<progress>`` with the final
    value and texts; another widget keeps its plain-text fallback. The copy has no
    ``widgets`` metadata, so nbconvert adds no widget-manager script.

    >>> nb = nbformat.v4.new_notebook()
    >>> nb.metadata["widgets"] = {_WIDGET_STATE: {"state": {
    ...     "b": {"state": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_p"]}},
    ...     "p": {"state": {"_model_name": "FloatProgressModel", "value": 3, "max": 3}}}}}
    >>> out = nbformat.v4.new_output("display_data", data={
    ...     _WIDGET_VIEW: {"model_id": "b"}, "text/plain": "0%|"})
    >>> nb.cells = [nbformat.v4.new_code_cell("bar()", outputs=[out])]
    >>> static_widgets(nb).cells[0].outputs[0].data
    {'text/html': '<div class="course-progress"><progress value="3" max="3"></progress></div>'}
    """
    nb = copy.deepcopy(nb)
    models = _widget_models(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            view = data.get(_WIDGET_VIEW)
            if view is None:
                continue
            static = _render_widget(models, view.get("model_id", ""))
            if static is not None:
                output["data"] = nbformat.from_dict({"text/html": static})
            else:
                output["data"] = nbformat.from_dict(
                    {k: v for k, v in data.items() if k != _WIDGET_VIEW}
                    or {"text/plain": "(interactive widget: open the notebook in Jupyter)"})
    nb.metadata.pop("widgets", None)
    return nb


def run_banner(run: dict[str, Any]) -> str:
    """The line shown above an executed notebook: its mode, date and status.

    ``run`` is the ``course_run`` metadata that ``make run`` stores in the executed notebook.

    >>> run_banner({"mode": "smoke", "finished": "2026-11-27T10:00:00+00:00", "status": "ok"})[:45]
    'Smoke run (COURSE_SMOKE=1) of 2026-11-27: few'
    >>> run_banner({"mode": "full", "status": "FAILED", "failing_cell": "cell 3"})
    'Full run of the lesson. This notebook FAILED (cell 3); its outputs stop there.'
    >>> run_banner({})
    ''
    """
    if not run:
        return ""
    date = f" of {run['finished'][:10]}" if run.get("finished") else ""
    if run.get("mode") == "smoke":
        text = (f"Smoke run (COURSE_SMOKE=1){date}: fewer examples and epochs than the lesson, so "
                "trained models score below the full run and the book.")
    elif run.get("mode") == "full":
        text = f"Full run of the lesson{date}."
    else:
        text = f"Run{date} in an unknown mode."
    if run.get("status", "ok") != "ok":
        text += f" This notebook FAILED ({run.get('failing_cell', 'unknown cell')}); its outputs stop there."
    return text


def export_html(
    nb: nbformat.NotebookNode,
    *,
    mathjax_url: str,
    banner: str = "",
    page: dict[str, Any] | None = None,
    strict: bool = True,
) -> str:
    """Export ``nb`` to an HTML page that loads nothing from another host.

    ``mathjax_url`` is the (relative) URL of the copied ``MathJax.js`` with its config query;
    ``banner`` a line shown above the notebook (e.g. the run mode); ``page`` the site's
    navigation (see ``tools/website/build.py``). With ``strict`` (the default) raises
    :class:`OfflineError` if the page would still load something from elsewhere (e.g. an
    output that embeds a CDN script).
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="course", extra_template_basedirs=[str(TEMPLATES)],
                            mathjax_url=mathjax_url)
    resources = {"course_mathjax_url": mathjax_url, "course_banner": banner, "course_page": page}
    body, _ = exporter.from_notebook_node(static_widgets(nb), resources=resources)
    external = external_loads(body) if strict else []
    if external:
        raise OfflineError(f"the page would load from other hosts: {', '.join(external[:5])}")
    return body


class _LoadCollector(HTMLParser):
    """Collects every URL a page would fetch on display (not mere links)."""

    _LOADING = {("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"),
                ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"),
                ("input", "src"), ("track", "src"), ("img", "srcset"), ("source", "srcset")}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        for attr, value in values.items():
            if (tag, attr) in self._LOADING:
                self.urls.extend(u.strip().split(" ")[0] for u in value.split(",") if u.strip())
        if tag == "link" and values.get("rel", "").lower() not in ("", "canonical", "license",
                                                                      "author", "help", "next",
                                                                      "prev", "alternate"):
            self.urls.append(values.get("href", ""))
        if "style" in values:
            self._css(values["style"])
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self._css(data)
        elif self._in == "script":
            # a script that builds a URL to another host (e.g. a widget-manager loader)
            self.urls.extend(re.findall(r"""["'`]((?:https?:)?//[^"'`\s]+)""", data))

    def _css(self, css: str) -> None:
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
        self.urls.extend(re.findall(r"""url\(\s*["']?([^"')\s]+)""", css))
        self.urls.extend(re.findall(r"""@import\s+(?:url\()?\s*["']?([^"')\s;]+)""", css))


def external_loads(page: str) -> list[str]:
    """The URLs on other hosts that ``page`` (HTML) would load: scripts, styles, images, fonts.

    Relative URLs and ``data:`` URLs are local; ``<a href>`` links are not loads.

    >>> external_loads('<script src="https://cdn.example/x.js"></script><a href="https://x.org">x</a>')
    ['https://cdn.example/x.js']
    >>> external_loads('<img src="data:image/png;base64,AAAA"><script src="_static/s.js"></script>')
    []
    """
    collector = _LoadCollector()
    collector.feed(page)
    collector.close()
    return [u for u in collector.urls
            if re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", u, re.I) or
            re.match(r"^\s*(?:https?|ftp|wss?):", u, re.I)]
