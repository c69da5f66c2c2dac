"""Open in Colab: write the set-up cell that lets every notebook run on Google Colab.

On Colab a notebook has neither ``course_utils`` nor ``data/``. The cell this script puts at the
top of each notebook (before the settings cell) does nothing elsewhere; on Colab
(``"google.colab" in sys.modules``) it

1. installs ``course_utils`` from the course repository with pip (``--no-deps``: what it
   imports — torch, torchvision, numpy, matplotlib, tqdm, IPython — Colab has), and
2. downloads the data files this chapter reads from the repository's ``data/`` into
   ``./course_data`` (``COURSE_DATA``) with ``course_utils.datafiles.download``, which checks
   each file against the SHA-256 written into the cell (from course_utils' own registry) before
   moving it into place; a file already there is verified instead.

Which files a chapter reads is derived from its code (:func:`notebook_data_files`): the data
sets behind the ``course_utils`` functions it uses (found by reading ``course_utils``' source
for ``ensure_file`` calls and ``DataFile`` specs, :func:`data_functions`) plus any
``ensure_file("...")`` the notebook makes itself; the files are those the repository ships.

    python tools/add_colab_cell.py [NOTEBOOK ...]   # insert or update the cell (idempotent)
    python tools/add_colab_cell.py --check          # exit 1 if a notebook's cell is missing or stale
    python tools/add_colab_cell.py --links          # each notebook's Colab link, in Markdown

**The repository's public address is a setting** (:func:`course_repo_url`), never a placeholder:
``COURSE_REPO_URL=https://github.com/OWNER/NAME`` (or ``git@github.com:OWNER/NAME.git``), else the
address of git's ``origin`` remote when that is on GitHub (https or ssh; a user name or token in
it is dropped). ``COURSE_REPO_URL=`` (empty) means "none" without asking git. While no address is
known there is no Colab link anywhere (``make site`` leaves them out) and this script writes no
cell: it says so and exits 2. Once the repository is public, run it (and ``make site``) again.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from course_utils.atomic_write import WriteError, write_text  # noqa: E402  (standard library only)

# The setting that gives the course repository's public address (see course_repo_url), and the
# branch the notebooks and data are read from.
REPO_URL_VARIABLE = "COURSE_REPO_URL"
COURSE_REF = "main"

CELL_ID = "colab-setup"
CELL_TAG = "colab-setup"

__all__ = ["REPO_URL_VARIABLE", "COURSE_REF", "NoPublicAddress", "github_address", "course_repo_url", "colab_url",
           "data_functions", "data_registry", "notebook_data_files", "colab_cell_source", "set_colab_cell", "main"]

_NAME = r"[A-Za-z0-9_.-]+"
_GITHUB = [  # https (an optional user name or token is dropped), scp-like ssh, ssh:// URLs
    re.compile(rf"https://(?:[^@/\s]+@)?github\.com/({_NAME})/({_NAME}?)(?:\.git)?/?"),
    re.compile(rf"(?:[A-Za-z0-9_.-]+@)?github\.com:/?({_NAME})/({_NAME}?)(?:\.git)?/?"),
    re.compile(rf"ssh://(?:[A-Za-z0-9_.-]+@)?github\.com(?::\d+)?/({_NAME})/({_NAME}?)(?:\.git)?/?"),
]


class NoPublicAddress(ValueError):
    """The repository has no known public GitHub address, so no Colab link can be made."""


def github_address(address: str) -> str | None:
    """``https://github.com/OWNER/NAME`` for a GitHub https or ssh address, else None.

    A user name or token in the address is dropped; the documentation's placeholder
    ``OWNER/REPO`` is no address.

    >>> github_address("git@github.com:someone/course.git")
    'https://github.com/someone/course'
    >>> github_address("https://x-access-token:abc@github.com/someone/course.git")
    'https://github.com/someone/course'
    >>> github_address("https://gitlab.com/someone/course") is None, github_address("/srv/course") is None
    (True, True)
    """
    for pattern in _GITHUB:
        match = pattern.fullmatch(address.strip())
        if match and match.group(2) and match.group(2) not in (".", ".."):
            owner, name = match.group(1), match.group(2)
            if (owner, name) == ("OWNER", "REPO"):
                return None
            return f"https://github.com/{owner}/{name}"
    return None


def _origin(repo_dir: Path) -> str | None:
    """The address of git's ``origin`` remote in ``repo_dir``, or None (no git, no remote)."""
    try:
        result = subprocess.run(["git", "-C", str(repo_dir), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def course_repo_url(environ: Mapping[str, str] | None = None, repo_dir: Path = REPO) -> str | None:
    """The repository's public address, ``https://github.com/OWNER/NAME``, or None if unknown.

    ``COURSE_REPO_URL`` when set (empty: none, git is not asked; an address that is not on
    GitHub is an error, since Colab opens only GitHub notebooks); otherwise git's ``origin``
    remote in ``repo_dir`` when it is a GitHub https or ssh address. No network is used.

    >>> course_repo_url({"COURSE_REPO_URL": "https://github.com/someone/course.git"})
    'https://github.com/someone/course'
    >>> course_repo_url({"COURSE_REPO_URL": ""}) is None
    True
    """
    environ = os.environ if environ is None else environ
    if REPO_URL_VARIABLE in environ:
        value = environ[REPO_URL_VARIABLE].strip()
        if not value:
            return None
        url = github_address(value)
        if url is None:
            raise ValueError(f"{REPO_URL_VARIABLE} must be the repository's GitHub address, "
                             f"https://github.com/OWNER/NAME or git@github.com:OWNER/NAME.git (Colab opens only "
                             f"notebooks on GitHub), got {value!r}; set it empty for none")
        return url
    origin = _origin(repo_dir)
    return github_address(origin) if origin else None


def _known(repo: str | None) -> str:
    """``repo`` (or the setting, when None) as ``https://github.com/OWNER/NAME``; else an error."""
    if repo is None:
        found = course_repo_url()
        if found is None:
            raise NoPublicAddress(
                "the course repository has no known public address, so there is no Colab link: set "
                f"{REPO_URL_VARIABLE}=https://github.com/OWNER/NAME (or clone it from GitHub, so that git's "
                "origin remote is its address)")
        return found
    url = github_address(repo)
    if url is None:
        raise ValueError(f"the repository address must be https://github.com/OWNER/NAME (Colab opens only "
                         f"notebooks on GitHub), got {repo!r}")
    return url


def colab_url(notebook: str | Path, repo: str | None = None, ref: str = COURSE_REF) -> str:
    """The address that opens ``notebooks/<name>.ipynb`` of the repository in Colab.

    ``repo`` defaults to :func:`course_repo_url`; :class:`NoPublicAddress` when that is unknown
    (a link to a placeholder would be dead).

    >>> colab_url("01_tensors", "https://github.com/someone/course")
    'https://colab.research.google.com/github/someone/course/blob/main/notebooks/01_tensors.ipynb'
    """
    owner_name = _known(repo).removeprefix("https://github.com/")
    name = Path(notebook).stem
    return f"https://colab.research.google.com/github/{owner_name}/blob/{ref}/notebooks/{name}.ipynb"


def _dataset_of(arg: ast.expr) -> str | None:
    """'fashion-mnist' for ensure_file("fashion-mnist/...") or ensure_file(f"fashion-mnist/{x}")."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        text = arg.value
    elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        text = str(arg.values[0].value)
    else:
        return None
    return text.split("/", 1)[0] if "/" in text else None


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _names_used(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


def _ensure_file_datasets(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) == "ensure_file" and node.args:
            dataset = _dataset_of(node.args[0])
            if dataset:
                found.add(dataset)
    return found


def _datafile_datasets(tree: ast.AST) -> set[str]:
    """Data sets named by ``DataFile("<dataset>/...", ...)`` literals in ``tree``."""
    return {dataset for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _called_name(node) == "DataFile" and node.args
            for dataset in [_dataset_of(node.args[0])] if dataset}


_GENERIC = {"datafiles"}  # the registry and download machinery itself reads no particular data set


def data_functions(package: Path = REPO / "course_utils") -> dict[str, set[str]]:
    """Map each public ``course_utils`` function or class that reads course data to its data sets.

    A module-level function (or a class, through any of its methods) reads a data set if it
    calls ``ensure_file("<dataset>/...")``, uses a module-level name that holds a
    ``DataFile("<dataset>/...")``, or calls another function or class that does (followed
    through the package by name). ``datafiles.py``, the generic machinery, is left out.

    >>> sorted(data_functions()["read_time_machine"])
    ['timemachine']
    """
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for source in sorted(package.glob("*.py")):
        if source.stem in _GENERIC:
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        holders: dict[str, set[str]] = {}  # module-level names bound to DataFile specs
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found = _datafile_datasets(node.value)
                for target in targets:
                    if isinstance(target, ast.Name) and found:
                        holders[target.id] = found
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own = direct.setdefault(node.name, set())
                own.update(_ensure_file_datasets(node), _datafile_datasets(node))
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Name) and sub.id in holders:
                        own.update(holders[sub.id])
                calls.setdefault(node.name, set()).update(
                    name for sub in ast.walk(node) if isinstance(sub, ast.Call)
                    for name in [_called_name(sub)] if name)
    reads = {name: set(found) for name, found in direct.items()}
    changed = True
    while changed:  # propagate through calls until nothing changes
        changed = False
        for name, callees in calls.items():
            for callee in callees & reads.keys():
                if callee != name and not reads[callee] <= reads[name]:
                    reads[name] |= reads[callee]
                    changed = True
    return {name: found for name, found in reads.items() if found and not name.startswith("_")}


def data_registry(package: str = "course_utils") -> dict[str, str]:
    """Every data file ``course_utils`` knows (relative path → SHA-256), from all its modules.

    ``datafiles.FILES`` plus the ``DataFile`` specs other modules keep (alone, or in a dict,
    list or tuple at module level).

    >>> data_registry()["timemachine/timemachine.txt"][:12]
    '8424dbd9532a'
    """
    import importlib
    import pkgutil

    from course_utils.datafiles import FILES, DataFile

    registry = {relpath: spec.sha256 for relpath, spec in FILES.items()}
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, dict):
                value = list(value.values())
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, DataFile):
                    known = registry.setdefault(item.relpath, item.sha256)
                    if known != item.sha256:
                        raise ValueError(f"{item.relpath} has two SHA-256s in course_utils: {known}, {item.sha256}")
    return registry


def _code(nb: nbformat.NotebookNode) -> str:
    """The notebook's code cells as one Python source, without IPython magics and shell lines."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("id") == CELL_ID:
            continue
        for line in cell.source.splitlines():
            stripped = line.lstrip()
            lines.append("" if stripped.startswith(("%", "!")) else line)
        lines.append("")
    return "\n".join(lines)


def notebook_data_files(
    nb: nbformat.NotebookNode,
    functions: dict[str, set[str]] | None = None,
    registry: dict[str, str] | None = None,
    data: Path = REPO / "data",
) -> list[tuple[str, str]]:
    """The shipped data files the notebook's code reads, as (relative path, SHA-256) pairs.

    A data set's files are those of the registry (:func:`data_registry`) under its folder that
    the repository's ``data/`` ships (an archive that is only downloaded and unpacked is left
    out); each shipped file must have the registry's checksum.

    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    ...     "from course_utils.text import read_time_machine\\ntext = read_time_machine()")])
    >>> [relpath for relpath, _ in notebook_data_files(nb)]
    ['timemachine/timemachine.txt']
    """
    from course_utils.datafiles import sha256sum

    functions = data_functions() if functions is None else functions
    registry = data_registry() if registry is None else registry
    tree = ast.parse(_code(nb))
    datasets = _ensure_file_datasets(tree)
    for name in _names_used(tree) & functions.keys():
        datasets |= functions[name]
    files = []
    for dataset in sorted(datasets):
        known = sorted(relpath for relpath in registry if relpath.split("/", 1)[0] == dataset)
        shipped = [relpath for relpath in known if (data / relpath).is_file()]
        if not shipped:
            raise ValueError(f"the notebook reads data set {dataset!r}, but no file of it is both in "
                             f"course_utils' registry and in {data}")
        for relpath in shipped:
            actual = sha256sum(data / relpath)
            if actual != registry[relpath]:
                raise ValueError(f"{data / relpath} has SHA-256 {actual}, but course_utils expects "
                                 f"{registry[relpath]}: fix the file or the registry first")
            files.append((relpath, registry[relpath]))
    return files


def colab_cell_source(data_files: list[tuple[str, str]], repo: str | None = None, ref: str = COURSE_REF) -> str:
    """The set-up cell's code for a notebook that reads ``data_files`` ((path, SHA-256) pairs).

    ``repo`` defaults to :func:`course_repo_url` (:class:`NoPublicAddress` when unknown).

    >>> print(colab_cell_source([], "https://github.com/someone/course").splitlines()[3])
    if "google.colab" in sys.modules:
    """
    repo = _known(repo)
    files = "".join(f"\n        ({json.dumps(relpath)}, {json.dumps(sha)})," for relpath, sha in data_files)
    files_list = f"[{files}\n    ]" if data_files else "[]"
    return f'''# On Google Colab: install the course's helper package and fetch the data this chapter
# reads (each file checked against its SHA-256). Anywhere else this cell does nothing.
import sys
if "google.colab" in sys.modules:
    import importlib, os, subprocess
    COURSE_REPO, COURSE_REF = {json.dumps(repo)}, {json.dumps(ref)}
    # --no-deps: what course_utils imports (torch, torchvision, numpy, matplotlib, tqdm) Colab has
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    f"git+{{COURSE_REPO}}@{{COURSE_REF}}"], check=True)
    importlib.invalidate_caches()
    os.environ.setdefault("COURSE_DATA", os.path.abspath("course_data"))
    os.makedirs(os.environ["COURSE_DATA"], exist_ok=True)
    from course_utils.datafiles import data_root, download, verify
    for relpath, sha256 in {files_list}:
        target = data_root() / relpath
        if target.exists():
            verify(target, sha256)
        else:
            download(f"{{COURSE_REPO}}/raw/{{COURSE_REF}}/data/{{relpath}}", target, sha256)'''


def set_colab_cell(nb: nbformat.NotebookNode, source: str) -> bool:
    """Insert the set-up cell before the first code cell, or update it; True if ``nb`` changed."""
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.get("id") == CELL_ID or CELL_TAG in cell.metadata.get("tags", [])):
            if cell.source == source:
                return False
            cell.source = source
            return True
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [CELL_TAG]})
    cell["id"] = CELL_ID
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, cell)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/[0-9][0-9]_*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a cell is missing or stale")
    parser.add_argument("--links", action="store_true", help="print each notebook's Colab link (Markdown)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    try:
        repo = _known(None)
    except ValueError as err:  # NoPublicAddress, or a COURSE_REPO_URL that is not on GitHub
        print(f"add_colab_cell: {err}", file=sys.stderr)
        return 2
    if args.links:
        for path in paths:
            print(f"{path.stem}: [Colab]({colab_url(path, repo)})")
        return 0
    functions, registry = data_functions(), data_registry()
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        files = notebook_data_files(nb, functions, registry)
        if not set_colab_cell(nb, colab_cell_source(files, repo)):
            continue
        stale.append(path)
        if not args.check:
            try:  # whole or not at all: a full disk must not truncate a notebook
                write_text(path, nbformat.writes(nb) + "\n")
            except WriteError as err:
                print(f"add_colab_cell: {err}", file=sys.stderr)
                return 2
            print(f"{path.name}: Colab cell written ({len(files)} data file(s))")
    if args.check and stale:
        print("missing or stale Colab cell (run python tools/add_colab_cell.py): "
              + ", ".join(p.name for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
