"""The README's "Coming from d2l" table names only things that exist, so it cannot go stale."""

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = {p.stem for p in (REPO / "course_utils").glob("*.py")}


def d2l_table_rows() -> list[tuple[str, str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Coming from d2l\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [(cells[0].strip("| "), cells[1].strip("| ")) for cells in rows[1:]]  # without the header


def course_utils_names() -> list[str]:
    names = []
    for _, ours in d2l_table_rows():
        for token in re.findall(r"`([^`]+)`", ours):
            match = re.match(r"(\w+)\.(\w+)", token)
            if match and match.group(1) in MODULES:
                names.append(match.group(0))
            elif token.endswith(".py"):
                names.append(token)
    return names


def test_the_table_is_there_and_maps_the_main_helpers():
    rows = d2l_table_rows()
    assert len(rows) >= 15
    assert len(course_utils_names()) >= 40


@pytest.mark.parametrize("name", course_utils_names())
def test_every_course_utils_name_in_the_table_exists(name):
    if name.endswith(".py"):
        assert (REPO / name).is_file(), name
        return
    module, attribute = name.split(".")
    assert hasattr(importlib.import_module(f"course_utils.{module}"), attribute), f"course_utils.{name}"
