"""The runnable examples in course_utils docstrings really run and print what they claim."""

import doctest
import importlib
import os
from pathlib import Path

import pytest

MODULES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "course_utils").glob("*.py")
                 if p.stem not in {"__init__", "__main__"})


def run_examples(name: str) -> doctest.TestResults:
    """Run a module's docstring examples, then restore os.environ: examples may set variables
    (settings' sets COURSE_SMOKE=0), and the notebook kernels this pytest worker starts later
    inherit os.environ — a leak once made a smoke run execute a notebook in full mode."""
    module = importlib.import_module(f"course_utils.{name}")
    saved = dict(os.environ)
    try:
        return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    result = run_examples(name)
    assert result.failed == 0, f"{result.failed} docstring example(s) in course_utils/{name}.py failed"


def test_examples_do_not_leak_environment_variables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_SMOKE", "1")
    run_examples("settings")  # its example sets COURSE_SMOKE=0
    assert os.environ["COURSE_SMOKE"] == "1"
