"""Every course_utils module can be copied into another project on its own (or with the one or
two small siblings it names): it imports only the standard library, torch, numpy, matplotlib,
tqdm and IPython (optional)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"
THIRD_PARTY = {"torch", "numpy", "matplotlib", "tqdm", "IPython"}
# module -> the siblings it may import (keep this short; each entry is a copy-along file)
ALLOWED_SIBLINGS = {
    "fashion_mnist": {"datafiles", "loaders", "image_batches"},
    "cifar10": {"datafiles", "loaders", "image_batches"},
    "training": {"plotting", "distributed", "checkpoints"},
    "language_model": {"plotting", "checkpoints"},
    "text": {"datafiles"},
    "nmt": {"datafiles", "loaders", "text", "plotting", "checkpoints"},
    "__main__": {"datafiles", "settings"},
}
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    top, siblings = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    siblings.add(node.module.split(".")[0])
                else:  # from . import name
                    siblings |= {alias.name for alias in node.names}
            elif node.module:
                root = node.module.split(".")[0]
                (siblings if root == "course_utils" else top).add(
                    node.module.split(".")[1] if root == "course_utils" else root)
    return top, siblings


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_allowed_things(module):
    top, siblings = imports_of(PACKAGE / f"{module}.py")
    allowed = THIRD_PARTY | ({"torchvision"} if module == "__main__" else set())
    foreign = top - allowed - set(sys.stdlib_module_names) - {"__future__"}
    assert not foreign, f"{module}.py imports {foreign}"
    extra = siblings - ALLOWED_SIBLINGS.get(module, set())
    assert not extra, f"{module}.py imports siblings {extra}; update ALLOWED_SIBLINGS consciously"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__main__"])
def test_module_works_when_copied_alone(module, tmp_path):
    pkg = tmp_path / "their_project"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in {module} | ALLOWED_SIBLINGS.get(module, set()):
        (pkg / f"{name}.py").write_text((PACKAGE / f"{name}.py").read_text())
    code = f"import their_project.{module} as m; print(sorted(m.__all__)[:1])"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
