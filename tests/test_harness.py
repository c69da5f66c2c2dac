"""The notebook harness really fails: a failing assert or a changed checked output is red."""

import subprocess
import sys

import nbformat
import pytest


def write_notebook(path, *sources, outputs=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for index, outs in (outputs or {}).items():
        nb.cells[index].outputs = outs
        nb.cells[index].execution_count = index + 1  # nbval ignores cells that look unrun
    nbformat.write(nb, path)
    return path


def run_nbval(path):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", str(path)],
        cwd=path.parent, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.slow
def test_nbval_passes_good_and_fails_bad_notebooks(tmp_path):
    good = write_notebook(tmp_path / "good.ipynb", "x = 2 + 2", "assert x == 4",
                          "# NBVAL_CHECK_OUTPUT\nprint(x)",
                          outputs={2: [nbformat.v4.new_output("stream", text="4\n")]})
    bad_assert = write_notebook(tmp_path / "bad_assert.ipynb", "x = 2 + 2", "assert x == 5, 'wrong'")
    bad_output = write_notebook(tmp_path / "bad_output.ipynb", "# NBVAL_CHECK_OUTPUT\nprint(5)",
                                outputs={0: [nbformat.v4.new_output("stream", text="4\n")]})
    result = run_nbval(good)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_nbval(bad_assert)
    assert result.returncode == 1 and "AssertionError" in result.stdout
    result = run_nbval(bad_output)
    assert result.returncode == 1, result.stdout
