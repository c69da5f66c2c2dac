"""`make run`: every notebook runs, a failing one does not stop the others, the report names it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent


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
    cores = len(os.sched_getaffinity(0))
    assert [row["results"] for row in rows] == [{"threads": str(max(1, cores // 2)), "n": i} for i in (1, 2, 3)]
