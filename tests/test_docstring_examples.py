"""The runnable examples in course_utils docstrings really run, print what they claim, and
leave ``os.environ`` as they found it (notebook kernels that a pytest worker starts later
inherit it: an example that once set COURSE_SMOKE=0 made a smoke run execute a notebook in
full mode)."""

import doctest
import importlib
import os
from pathlib import Path

import pytest

MODULES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "course_utils").glob("*.py")
                 if p.stem not in {"__init__", "__main__"})


def run_examples(name: str) -> doctest.TestResults:
    module = importlib.import_module(f"course_utils.{name}")
    return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


@pytest.fixture(scope="module", autouse=True)
def torch_compiler_imported():
    """The first torch optimizer imports torch's compiler, which sets TORCHINDUCTOR_CACHE_DIR in
    os.environ: do that before any snapshot, so that only the examples' own changes count."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    before = dict(os.environ)
    result = run_examples(name)
    assert result.failed == 0, f"{result.failed} docstring example(s) in course_utils/{name}.py failed"
    assert dict(os.environ) == before, f"the examples in course_utils/{name}.py change os.environ"
