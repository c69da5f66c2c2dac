"""Keep notebooks clean: only cells marked ``# NBVAL_CHECK_OUTPUT`` carry outputs.

Usage::

    python tools/notebook_outputs.py refresh [NOTEBOOK ...]  # execute (smoke mode), keep marked outputs
    python tools/notebook_outputs.py strip [NOTEBOOK ...]    # strip unmarked outputs, no execution
    python tools/notebook_outputs.py check [NOTEBOOK ...]    # exit 1 if any notebook has stray outputs

Without notebook arguments every ``notebooks/*.ipynb`` is processed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from course_utils.atomic_write import atomic_write  # noqa: E402

MARKER = "# NBVAL_CHECK_OUTPUT"


def notebooks(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def is_checked(cell: nbformat.NotebookNode) -> bool:
    """True for a code cell whose first line is the nbval output marker."""
    lines = cell.source.lstrip().splitlines()
    return cell.cell_type == "code" and bool(lines) and lines[0].strip() == MARKER


def stray_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Describe every output or execution count a committed notebook should not carry."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            continue
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index}: execution_count is set")
        if cell.outputs:
            problems.append(f"cell {index}: has outputs but is not marked {MARKER}")
    return problems


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip outputs of unmarked cells, execution counts and per-cell run metadata.

    Marked cells keep their outputs and get a stable execution count (their position among
    the code cells): nbval skips comparing a cell that looks unrun.
    """
    number = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        number += 1
        if is_checked(cell):
            cell.execution_count = number
            for out in cell.outputs:
                if "execution_count" in out:
                    out.execution_count = number
        else:
            cell.execution_count = None
            cell.outputs = []
    nb.metadata.pop("widgets", None)
    return nb


def execute(nb: nbformat.NotebookNode, path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    os.environ.setdefault("COURSE_SMOKE", "1")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["refresh", "strip", "check"])
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    failed = False
    for path in notebooks(args.notebooks):
        nb = nbformat.read(path, as_version=4)
        if args.command == "check":
            problems = stray_outputs(nb)
            for problem in problems:
                print(f"{path}: {problem}")
            failed |= bool(problems)
            continue
        if args.command == "refresh":
            print(f"executing {path.name} (smoke mode) ...", flush=True)
            execute(nb, path)
        with atomic_write(path, "w") as handle:  # keeps the notebook's permissions
            nbformat.write(clean(nb), handle)
        kept = sum(1 for c in nb.cells if is_checked(c))
        print(f"{path.name}: kept outputs of {kept} checked cell(s)")
    if args.command == "check" and not failed:
        print("all notebooks are clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
