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


# The README is for learners; what maintainers need lives in docs/ and is linked from "For maintainers".
LEARNER_SECTIONS = ["Start here", "Chapters", "Settings", "Data", "The helper package", "Coming from d2l",
                    "Troubleshooting", "For maintainers"]
MOVED = {"Tests": "docs/testing.md", "Adding a notebook": "docs/adding-a-notebook.md", "Devices": "docs/devices.md",
         "Benchmarks": "docs/benchmarks.md", "Safety": "docs/safety.md"}


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def section(text: str, title: str, level: str = "##") -> str:
    return text.split(f"\n{level} {title}\n", 1)[1].split(f"\n{level} ", 1)[0]


def test_the_readme_keeps_the_learners_sections_and_links_what_moved_to_docs():
    text = readme()
    assert [line[3:] for line in text.splitlines() if line.startswith("## ")] == LEARNER_SECTIONS
    maintainers = section(text, "For maintainers")
    for title, path in MOVED.items():
        assert f"## {title}" not in text, f"README still has '## {title}'; it lives in {path}"
        assert (REPO / path).read_text(encoding="utf-8").startswith(f"# {title}\n"), path
        assert f"]({path})" in maintainers, f"README's 'For maintainers' does not link {path}"


def test_working_the_exercises_says_how():
    exercises = section(readme(), "Working the exercises", "###")
    for needed in ("make exercises", "workbook/", "make lab", 'check("12.3", answer)', "✓", "never overwrites",
                   "skips it and names it", "notebooks/"):
        assert needed in exercises, f"README's 'Working the exercises' does not say {needed!r}"
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "\nexercises:" in makefile and "--out workbook" in makefile  # the target the README promises


def test_local_links_of_the_readme_and_the_docs_resolve():
    for doc in [REPO / "README.md", REPO / "docs" / "site.md", *(REPO / path for path in MOVED.values())]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)} links {target}, which does not exist"


def test_the_readme_has_no_colab_link_while_the_repository_has_no_public_address():
    """Colab links are made from the repository's address (tools/add_colab_cell.py), never written by hand."""
    assert "colab.research.google.com" not in readme() and "OWNER/REPO" not in readme()
