"""Data facts are written once (issue 33, item 5): ``datafiles.FILES`` is the one source of each
data file's SHA-256 and size; ``data/SHA256SUMS``, the data READMEs and the README's data
paragraph (size, list of data sets) are tested against it and against the real ``data/`` folder."""

import re
from pathlib import Path

from course_utils import datafiles as df

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
DOCS = {"README.md", "SHA256SUMS"}  # documentation, not data


def shipped_files() -> set[str]:
    return {p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
            if p.is_file() and p.name not in DOCS}


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_shipped_file_is_registered_and_every_registered_file_ships():
    assert shipped_files() == set(df.FILES)


def test_sha256sums_is_exactly_the_registry():
    """``data/SHA256SUMS`` (for ``sha256sum -c``) is generated from FILES: regenerate it with
    ``python -c "from course_utils.datafiles import sha256sums; print(sha256sums(), end='')" > data/SHA256SUMS``."""
    assert (DATA / "SHA256SUMS").read_text() == df.sha256sums()


def test_each_data_readme_gives_the_registered_checksum_of_each_of_its_files():
    for relpath, spec in df.FILES.items():
        folder, name = relpath.split("/", 1)
        readme = (DATA / folder / "README.md").read_text(encoding="utf-8")
        assert spec.sha256 in readme, f"data/{folder}/README.md lacks the SHA-256 of {name} ({spec.sha256})"
        for line in readme.splitlines():  # a table row of this file gives this checksum, no other
            cells = [c.strip().strip("`") for c in line.split("|")]
            if name in cells:
                stated = [c for c in cells if re.fullmatch(r"[0-9a-f]{64}", c)]
                assert stated in ([], [spec.sha256]), f"data/{folder}/README.md: {line}"


def test_readme_data_size_and_data_sets_are_those_of_the_data_folder():
    section = readme_section("Data")
    size = sum((DATA / relpath).stat().st_size for relpath in df.FILES) / 2**20
    stated = re.search(r"about (\d+) MiB", section)
    assert stated, "README's Data section must say 'about N MiB'"
    assert abs(int(stated[1]) - size) <= 1, f"README says about {stated[1]} MiB; the data files are {size:.1f} MiB"
    table = (DATA / "README.md").read_text(encoding="utf-8")
    for dataset in df.DATASETS:
        assert f"`{dataset}/`" in section, f"README's Data section does not name `{dataset}/`"
        assert f"| `{dataset}/` |" in table, f"data/README.md's table has no row for `{dataset}/`"


def test_contributing_names_every_file_to_touch_when_adding_a_dataset():
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    recipe = text.split("### Adding a dataset", 1)[1].split("\n### ", 1)[0]
    for needed in ("data/<dataset>/", "data/<dataset>/README.md", "course_utils/datafiles.py", "FILES",
                   "data/SHA256SUMS", "data/README.md", "README.md", "course_utils/<dataset>.py",
                   "tests/test_<dataset>.py", "tests/test_data_facts.py", "test_shipped_data_is_verified"):
        assert needed in recipe, f"CONTRIBUTING's 'Adding a dataset' does not name {needed}"
