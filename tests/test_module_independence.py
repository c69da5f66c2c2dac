"""The copy promise: every course_utils module can be copied into another project together with
exactly the files its docstring names ("Copy alone." or "Copy with: ``a.py``, ``b.py``."), flat
into a plain folder or into a package of your own, and then imports and runs its docstring
example. Modules import their siblings relatively inside a package and absolutely when copied
flat (``if __package__: from .x import y`` / ``else: from x import y``); they need only the
standard library, torch, numpy, matplotlib, tqdm and IPython."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "course_utils"
THIRD_PARTY = {"torch", "numpy", "matplotlib", "tqdm", "IPython"}
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"})
COPY = re.compile(r"^Copy (alone|with: ((?:.|\n(?!\n))+?))\.$", re.MULTILINE)  # a list may wrap
INTRODUCED = re.compile(r"^Introduced in ``(notebooks/[^`]+\.ipynb)``", re.MULTILINE)


def docstring(module: str) -> str:
    return ast.get_docstring(ast.parse((PACKAGE / f"{module}.py").read_text())) or ""


def declared_copies(module: str) -> set[str]:
    """The files the module's docstring says to copy with it."""
    found = COPY.findall(docstring(module))
    assert len(found) == 1, f"{module}.py: its docstring needs one line 'Copy alone.' or 'Copy with: ``x.py``, ...'"
    alone, listed = found[0]
    return set() if alone == "alone" else set(re.findall(r"``(\w+)\.py``", listed))


# Imports only the type checker runs (`if TYPE_CHECKING:`): typing_extensions' Unpack, for
# `**fit_options: Unpack[FitOptions]` on Python 3.10 (installed with torch, never imported at run time).
TYPE_ONLY = {"typing_extensions"}


def _type_checking_imports(tree: ast.Module) -> set[ast.AST]:
    blocks = [node for node in ast.walk(tree) if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    return {inner for block in blocks for stmt in block.body for inner in ast.walk(stmt)}


def imports_of(module: str) -> tuple[set[str], set[str], set[str]]:
    """(third-party top-level names, siblings imported relatively, siblings imported absolutely);
    the ``TYPE_ONLY`` names imported under ``if TYPE_CHECKING:`` do not count (never run)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top, relative, absolute = set(), set(), set()
    type_only = _type_checking_imports(tree)
    for node in ast.walk(tree):
        if node in type_only and isinstance(node, ast.ImportFrom) and node.module in TYPE_ONLY:
            continue
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            relative |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    absolute = {name for name in top if (PACKAGE / f"{name}.py").exists()}
    return top - absolute, relative, absolute


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        _, relative, _ = imports_of(todo.pop())
        for sibling in relative - seen:
            seen.add(sibling)
            todo.append(sibling)
    return seen - {module}


@pytest.mark.parametrize("module", MODULES)
def test_docstring_names_its_notebook_and_exactly_the_files_to_copy(module):
    introduced = INTRODUCED.findall(docstring(module))
    assert introduced, f"{module}.py: its docstring must say 'Introduced in ``notebooks/NN_topic.ipynb``'"
    assert (REPO / introduced[0]).exists(), f"{module}.py names {introduced[0]}, which does not exist"
    assert declared_copies(module) == closure(module), (
        f"{module}.py imports (directly or through its siblings) {sorted(closure(module))}, but its docstring "
        f"says to copy {sorted(declared_copies(module))}")


@pytest.mark.parametrize("module", [*MODULES, "__main__"])
def test_module_imports_only_allowed_things(module):
    top, relative, absolute = imports_of(module)
    allowed = THIRD_PARTY | ({"torchvision"} if module == "__main__" else set())
    foreign = top - allowed - set(sys.stdlib_module_names) - {"__future__"}
    assert not foreign, f"{module}.py imports {foreign}"
    if module != "__main__":  # the CLI only runs as part of the package
        assert relative == absolute, (f"{module}.py imports {sorted(relative)} inside the package but "
                                      f"{sorted(absolute)} when copied flat: use the same names in both branches")


RUNNER = """
import doctest, importlib, importlib.abc, os, sys
guard = getattr(sys.modules.get("sitecustomize"), "__file__", "") or ""
assert guard.endswith(os.path.join("netguard", "sitecustomize.py")), "the network guard is not active"
class NoCourseUtils(importlib.abc.MetaPathFinder):  # as on a learner's machine without this repository
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "course_utils":
            raise ImportError(f"{name} is not installed here; the copied files must not need it")
sys.meta_path.insert(0, NoCourseUtils())
module = importlib.import_module(sys.argv[1])
assert os.path.dirname(os.path.abspath(module.__file__)) == os.getcwd(), module.__file__
result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
print(result)
sys.exit(1 if result.failed or not result.attempted else 0)
"""


def fresh_env() -> dict[str, str]:
    """No PYTHON* or COURSE_* variables of this run, except the network guard (tests/netguard,
    which holds only sitecustomize.py); the data comes from the repository's data/ folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COURSE_"))}
    env.update(PYTHONPATH=str(REPO / "tests" / "netguard"), COURSE_NETWORK_GUARD="1",
               COURSE_DATA=str(REPO / "data"), COURSE_OFFLINE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env


@pytest.mark.parametrize("module", MODULES)
def test_module_copied_flat_imports_and_runs_its_example(module, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"flat_{module}")  # outside the repository
    assert REPO not in folder.parents
    for name in {module} | declared_copies(module):
        (folder / f"{name}.py").write_text((PACKAGE / f"{name}.py").read_text())
    (folder / "run_example.py").write_text(RUNNER)
    # -s: no user site; on the path: the folder, the network guard and the installed libraries
    result = subprocess.run([sys.executable, "-s", "run_example.py", module], cwd=folder,
                            env=fresh_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{module} copied flat with {sorted(declared_copies(module))}:\n" + (
        result.stdout[-3000:] + result.stderr[-3000:])


@pytest.mark.parametrize("module", [m for m in MODULES if closure(m)])
def test_module_copied_into_a_package_of_your_own_imports(module, tmp_path):
    package = tmp_path / "their_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in {module} | declared_copies(module):
        (package / f"{name}.py").write_text((PACKAGE / f"{name}.py").read_text())
    code = f"import their_project.{module} as m; print(sorted(m.__all__)[:1])"
    result = subprocess.run([sys.executable, "-s", "-c", code], cwd=tmp_path, env=fresh_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
