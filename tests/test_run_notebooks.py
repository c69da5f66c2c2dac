"""`make run`: every notebook runs, a failing one does not stop the others, the report names it."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils.cores import usable_cores

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "tools"):  # tools.website.offline and run_notebooks
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_runner_reports_results_and_failing_cell(tmp_path):
    good = notebook(tmp_path / "01_good.ipynb", "x = 21 * 2",
                    "from course_utils.report import report_results\nreport_results({'answer': x})")
    bad = notebook(tmp_path / "02_bad.ipynb", "y = 1", "assert y == 2, 'y is wrong'", "z = 3")
    out = tmp_path / "build"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), str(bad), str(good),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    report = (out / "report.md").read_text()
    assert "| 01_good | ok |" in report and "answer=42" in report
    assert "| 02_bad | FAILED |" in report and "cell 1" in report and "AssertionError" in report
    assert (out / "01_good.html").exists() and (out / "02_bad.ipynb").exists()
    assert (out / "report.html").exists()
    rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())}
    assert rows["01_good"]["results"] == {"answer": 42}


@pytest.mark.slow
def test_runner_runs_notebooks_in_parallel_with_one_thread_each(tmp_path):
    probe = ("import os\nfrom course_utils.report import report_results\n"
             "report_results({'threads': os.environ.get('OMP_NUM_THREADS', 'unset'), 'n': N})")
    paths = [notebook(tmp_path / f"0{i}_nb.ipynb", f"N = {i}", probe) for i in (1, 2, 3)]
    out = tmp_path / "build"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), *map(str, paths),
                             "--out", "build", "--jobs", "2"],  # relative to cwd, not to the kernels'
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((out / "report.json").read_text())
    assert [row["name"] for row in rows] == ["01_nb", "02_nb", "03_nb"]  # input order kept
    cores = usable_cores()
    assert [row["results"] for row in rows] == [{"threads": str(max(1, cores // 2)), "n": i} for i in (1, 2, 3)]


@pytest.mark.slow
def test_runner_writes_offline_html_labelled_smoke_report_and_learning_curve_thumbnail(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 01 · Demo\n\nThe loss is $\\ell(\\mathbf{w}) = \\|\\mathbf{w}\\|^2$."),
        nbformat.v4.new_code_cell("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
                                  "import matplotlib.pyplot as plt\nfrom tqdm.auto import tqdm"),
        nbformat.v4.new_code_cell("def train_demo():\n    for _ in tqdm(range(3), desc='epochs'):\n        pass\n"
                                  "    plt.plot([1, 2, 3], [3, 2, 1], marker='o'); plt.show()\ntrain_demo()"),
        nbformat.v4.new_code_cell("plt.imshow([[0, 1], [1, 0]]); plt.show()"),
        nbformat.v4.new_code_cell("from course_utils.report import report_results\nreport_results({'test_acc': 0.75})"),
    ]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "build"
    env = dict(os.environ, COURSE_SMOKE="1")
    result = subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), str(path), "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console
    assert "without encryption" not in console  # ipykernel's start-up warning is gone

    report = (out / "report.md").read_text()
    assert report.startswith("# Notebook run report — smoke mode (COURSE_SMOKE=1)\n")
    assert "fewer epochs — expected below the book's figure" in report and "d2l book (full run)" in report
    page = (out / "01_demo.html").read_text()
    from tools.website.offline import external_loads
    assert external_loads(page) == [] and "cdn" not in page.lower() and "unpkg" not in page
    assert '<script src="_static/mathjax/MathJax.js?config=' in page
    assert (out / "_static" / "mathjax" / "MathJax.js").is_file()
    assert '<progress max="3" value="3"></progress>' in page and "3/3" in page  # the bar, not an empty box
    assert "Smoke run (COURSE_SMOKE=1)" in page

    executed = nbformat.read(out / "01_demo.ipynb", as_version=4)
    assert executed.metadata["course_run"]["mode"] == "smoke"
    assert executed.metadata["course_run"]["status"] == "ok"
    curve = next(o for o in executed.cells[2].outputs if "image/png" in o.get("data", {}))
    assert (out / "thumbs" / "01_demo.png").read_bytes() == base64.b64decode(curve.data["image/png"])
    html_report = (out / "report.html").read_text()
    assert 'width="360"' in html_report and "smoke mode" in html_report


def test_thumbnail_prefers_tagged_then_training_then_last_image():
    from run_notebooks import thumbnail_png

    def cell(source, png, tags=()):
        c = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
        c.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
        return c

    nb = nbformat.v4.new_notebook(cells=[cell("plt.plot(x)", "A"), cell("h = train_classifier(net)", "B"),
                                         cell("show_images(x)", "C")])
    assert thumbnail_png(nb) == "B"
    nb.cells[0].metadata["tags"] = ["thumbnail"]
    assert thumbnail_png(nb) == "A"
    assert thumbnail_png(nbformat.v4.new_notebook(cells=[cell("x", "A"), cell("y", "C")])) == "C"
    assert thumbnail_png(nbformat.v4.new_notebook()) is None


def test_report_heading_and_labels_by_mode(tmp_path):
    from run_notebooks import Outcome, write_reports

    outcomes = [Outcome("04_softmax_regression", results={"test_acc": 0.7575})]
    smoke = write_reports(outcomes, tmp_path, smoke=True)
    assert smoke.splitlines()[0] == "# Notebook run report — smoke mode (COURSE_SMOKE=1)"
    assert "expected below the book's figure" in smoke and "test acc ≈ 0.83" in smoke
    full = write_reports(outcomes, tmp_path, smoke=False)
    assert full.splitlines()[0] == "# Notebook run report — full mode"
    assert "expected below" not in full


def test_a_kernel_that_dies_before_starting_is_retried_and_other_errors_are_not(tmp_path, monkeypatch):
    import nbclient
    import run_notebooks

    nb_path = notebook(tmp_path / "01_x.ipynb", "x = 1")
    starts = []

    class FlakyClient:  # the first kernel loses a port race; the second one runs the notebook
        def __init__(self, nb, **kwargs):
            self.nb = nb

        def execute(self, env=None):
            starts.append(1)
            if len(starts) == 1:
                raise RuntimeError(run_notebooks.KERNEL_NOT_STARTED)

    monkeypatch.setattr(nbclient, "NotebookClient", FlakyClient)
    outcome = run_notebooks.run_one(nb_path, tmp_path / "out", timeout=60)
    assert outcome.status == "ok" and len(starts) == 2

    class BrokenClient(FlakyClient):  # any other error is not hidden by a retry
        def execute(self, env=None):
            starts.append(1)
            raise RuntimeError("something else")

    starts.clear()
    monkeypatch.setattr(nbclient, "NotebookClient", BrokenClient)
    with pytest.raises(RuntimeError, match="something else"):
        run_notebooks.run_one(nb_path, tmp_path / "out", timeout=60)
    assert len(starts) == 1
