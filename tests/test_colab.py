"""Open in Colab: the set-up cell that ``tools/add_colab_cell.py`` writes into each notebook.

Colab is simulated: a fake ``google.colab`` module, an empty working folder, the network guard
on (root ``conftest.py``). The cell's pip install and downloads are recorded instead of run, so
the test sees exactly the steps it would take on Colab.
"""

from __future__ import annotations

import doctest
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import tools.add_colab_cell as colab  # noqa: E402
from course_utils import datafiles  # noqa: E402

FMNIST = [(relpath, datafiles.FILES[relpath].sha256) for relpath in sorted(datafiles.DATASETS["fashion-mnist"])]
SOMEONE = "https://github.com/someone/course"
GIT = shutil.which("git")


def test_docstring_examples():
    result = doctest.testmod(colab)
    assert result.failed == 0 and result.attempted > 0


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """An empty working folder on a 'Colab' machine; returns the list of recorded steps."""
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)  # type: ignore[attr-defined]
    workdir = tmp_path / "content"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COURSE_DATA", "unset-after-the-test")  # so that undo removes what the cell sets
    monkeypatch.delenv("COURSE_DATA")
    steps: list[tuple] = []

    def fake_run(cmd, **kwargs):
        steps.append(("run", list(cmd), kwargs))
        return subprocess.CompletedProcess(cmd, 0)

    def fake_download(url, dest, sha256, **kwargs):
        steps.append(("download", url, Path(dest), sha256))
        return Path(dest)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(datafiles, "download", fake_download)
    return steps


def run_cell(source: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the learner sees no warning either
        exec(compile(source, "<colab-setup cell>", "exec"), {"__name__": "__main__"})


def test_on_colab_the_cell_installs_course_utils_and_fetches_the_chapters_data(fake_colab, tmp_path):
    nb = nbformat.read(REPO / "notebooks" / "04_softmax_regression.ipynb", as_version=4)
    files = colab.notebook_data_files(nb)
    assert files == FMNIST
    run_cell(colab.colab_cell_source(files, "https://github.com/someone/course", "main"))
    data = tmp_path / "content" / "course_data"
    assert fake_colab == [
        ("run", [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                 "git+https://github.com/someone/course@main"], {"check": True}),
        *[("download", f"https://github.com/someone/course/raw/main/data/{relpath}", data / relpath, sha)
          for relpath, sha in FMNIST],
    ]


def test_a_second_run_verifies_the_files_already_there_and_downloads_nothing(fake_colab, tmp_path):
    relpath = "timemachine/timemachine.txt"
    target = tmp_path / "content" / "course_data" / relpath
    target.parent.mkdir(parents=True)
    target.write_bytes((REPO / "data" / relpath).read_bytes())
    source = colab.colab_cell_source([(relpath, datafiles.FILES[relpath].sha256)], SOMEONE)
    run_cell(source)
    assert [step[0] for step in fake_colab] == ["run"]  # pip only
    target.write_bytes(b"tampered")
    with pytest.raises(datafiles.ChecksumError, match="timemachine.txt"):
        run_cell(source)


def test_outside_colab_the_cell_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(datafiles, "download", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(tmp_path)
    run_cell(colab.colab_cell_source(FMNIST, SOMEONE))
    assert calls == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, datasets", [
    ("01_tensors", set()),
    ("04_softmax_regression", {"fashion-mnist"}),
    ("13_resnet_densenet", {"fashion-mnist", "cifar-10"}),
    ("14_text_and_language_models", {"timemachine"}),
    ("17_optimizers", {"airfoil"}),
])
def test_each_notebook_gets_the_data_its_code_reads(name, datasets):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    files = colab.notebook_data_files(nb)
    assert files == sorted((f, datafiles.FILES[f].sha256) for d in datasets for f in datafiles.DATASETS[d])


def test_data_functions_follow_calls_through_the_package(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text(
        "def read_a():\n    return ensure_file('alpha/x.bin')\n"
        "def loaders():\n    return read_a()\n"
        "class Data:\n    def __init__(self):\n        self.x = loaders()\n"
        "def _private():\n    return ensure_file(f'beta/{name}')\n"
        "def public():\n    return _private()\n"
        "def unrelated():\n    return 1\n")
    (package / "b.py").write_text(
        "GAMMA_FILES = {f.relpath: f for f in [DataFile('gamma/g.csv', 'abc')]}\n"
        "def load_gamma():\n    return ensure_file(GAMMA_FILES['gamma/g.csv'])\n")
    (package / "datafiles.py").write_text(  # the generic machinery names every data set: left out
        "FILES = [DataFile('alpha/x.bin', 'a'), DataFile('beta/y', 'b')]\n"
        "def ensure_file(name):\n    return FILES\n")
    assert colab.data_functions(package) == {
        "read_a": {"alpha"}, "loaders": {"alpha"}, "Data": {"alpha"}, "public": {"beta"},
        "load_gamma": {"gamma"}}


def test_registry_collects_the_datafile_specs_of_every_module(tmp_path, monkeypatch):
    package = tmp_path / "fakecourse"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "extra.py").write_text(
        "from course_utils.datafiles import DataFile\n"
        "ONE = DataFile('new-set/one.csv', '11')\n"
        "BY_NAME = {'two.csv': DataFile('new-set/two.csv', '22')}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = colab.data_registry("fakecourse")
    assert registry["new-set/one.csv"] == "11" and registry["new-set/two.csv"] == "22"
    assert all(registry[relpath] == spec.sha256 for relpath, spec in datafiles.FILES.items())


def test_data_files_must_be_shipped_and_match_the_registry(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('ensure_file("mine/a.txt")')])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("hello")
    sha = datafiles.sha256sum(tmp_path / "mine" / "a.txt")
    registry = {"mine/a.txt": sha, "mine/archive.zip": "ff"}  # the archive is not shipped: left out
    assert colab.notebook_data_files(nb, {}, registry, tmp_path) == [("mine/a.txt", sha)]
    with pytest.raises(ValueError, match="has SHA-256 .* but course_utils expects 00"):
        colab.notebook_data_files(nb, {}, {"mine/a.txt": "00"}, tmp_path)
    with pytest.raises(ValueError, match="reads data set 'mine', but no file of it"):
        colab.notebook_data_files(nb, {}, {}, tmp_path)


def test_cell_is_inserted_before_the_settings_cell_and_updated_idempotently(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_REPO_URL", SOMEONE)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Test"),
        nbformat.v4.new_code_cell("from course_utils.settings import SMOKE"),
        nbformat.v4.new_code_cell("from course_utils.text import read_time_machine\nread_time_machine()"),
    ])
    path = tmp_path / "99_test.ipynb"
    nbformat.write(nb, path)
    assert colab.main([str(path), "--check"]) == 1
    assert colab.main([str(path)]) == 0
    first = path.read_text(encoding="utf-8")
    written = nbformat.read(path, as_version=4)
    assert [c.cell_type for c in written.cells] == ["markdown", "code", "code", "code"]
    cell = written.cells[1]
    expected = cell.source
    assert cell.id == colab.CELL_ID and cell.metadata["tags"] == [colab.CELL_TAG]
    assert cell.outputs == [] and cell.execution_count is None
    assert '"timemachine/timemachine.txt"' in cell.source and f'"{SOMEONE}"' in cell.source
    nbformat.validate(written)
    assert colab.main([str(path), "--check"]) == 0
    assert colab.main([str(path)]) == 0 and path.read_text(encoding="utf-8") == first  # idempotent
    written.cells[1].source = "# an old version of the cell"
    nbformat.write(written, path)
    assert colab.main([str(path)]) == 0
    assert nbformat.read(path, as_version=4).cells[1].source == expected  # updated, not duplicated
    assert len(nbformat.read(path, as_version=4).cells) == 4


def test_colab_url_and_a_clear_error_for_a_non_github_repository():
    assert colab.colab_url("notebooks/05_mlp.ipynb", "https://github.com/a/b.git", "dev") == (
        "https://colab.research.google.com/github/a/b/blob/dev/notebooks/05_mlp.ipynb")
    with pytest.raises(ValueError, match="must be https://github.com/OWNER/NAME"):
        colab.colab_url("05_mlp", "https://gitlab.com/a/b")
    with pytest.raises(ValueError, match="must be https://github.com/OWNER/NAME"):  # the docs' placeholder
        colab.colab_url("05_mlp", "https://github.com/OWNER/REPO")


@pytest.mark.parametrize("address, expected", [
    ("https://github.com/someone/course", SOMEONE),
    ("https://github.com/someone/course.git", SOMEONE),
    ("https://github.com/someone/course/", SOMEONE),
    ("https://x-access-token:s3cret@github.com/someone/course.git", SOMEONE),  # never into a link
    ("git@github.com:someone/course.git", SOMEONE),
    ("github.com:someone/course", SOMEONE),
    ("ssh://git@github.com/someone/course.git", SOMEONE),
    ("ssh://git@github.com:22/someone/course", SOMEONE),
    ("  https://github.com/some-one/my.course.git\n", "https://github.com/some-one/my.course"),
    ("https://github.com/OWNER/REPO", None),  # the placeholder
    ("https://github.com/someone", None),
    ("https://github.com/someone/course/tree/main", None),
    ("http://github.com/someone/course", None),
    ("https://gitlab.com/someone/course.git", None),
    ("git@gitlab.com:someone/course.git", None),
    ("https://github.com.evil.example/someone/course", None),
    ("/srv/git/course", None),
    ("", None),
])
def test_github_address_accepts_github_https_and_ssh_only(address, expected):
    assert colab.github_address(address) == expected


@pytest.mark.skipif(GIT is None, reason="needs git")
def test_the_address_comes_from_the_setting_else_from_gits_origin(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_REPO_URL", raising=False)
    repo = tmp_path / "clone"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run([GIT, "-C", str(repo), *args], check=True, capture_output=True)

    assert colab.course_repo_url({}, tmp_path / "not-a-repository") is None
    git("init", "-q")
    assert colab.course_repo_url({}, repo) is None  # no origin
    git("remote", "add", "origin", "git@github.com:someone/course.git")
    assert colab.course_repo_url({}, repo) == SOMEONE
    git("remote", "set-url", "origin", "https://user:token@github.com/someone/course.git")
    assert colab.course_repo_url({}, repo) == SOMEONE
    git("remote", "set-url", "origin", "/srv/git/course")  # e.g. a clone of a local copy
    assert colab.course_repo_url({}, repo) is None
    git("remote", "set-url", "origin", "https://github.com/someone/course")
    assert colab.course_repo_url({"COURSE_REPO_URL": "https://github.com/other/fork"}, repo) == (
        "https://github.com/other/fork")  # the setting wins over git
    assert colab.course_repo_url({"COURSE_REPO_URL": ""}, repo) is None  # empty: none, git not asked
    with pytest.raises(ValueError, match="COURSE_REPO_URL must be the repository's GitHub address.*gitlab"):
        colab.course_repo_url({"COURSE_REPO_URL": "https://gitlab.com/someone/course"}, repo)
    monkeypatch.setenv("COURSE_REPO_URL", "git@github.com:someone/course.git")
    assert colab.course_repo_url() == SOMEONE  # os.environ by default


def test_without_an_address_there_is_no_link_and_no_cell(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_REPO_URL", "")
    with pytest.raises(colab.NoPublicAddress, match="no known public address.*COURSE_REPO_URL"):
        colab.colab_url("01_tensors")
    with pytest.raises(colab.NoPublicAddress):
        colab.colab_cell_source([])
    assert colab.main(["--links", str(REPO / "notebooks" / "01_tensors.ipynb")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "no known public address" in out.err
    path = tmp_path / "99_test.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    before = path.read_text(encoding="utf-8")
    assert colab.main([str(path)]) == 2
    assert path.read_text(encoding="utf-8") == before  # no cell pointing at a placeholder


def test_links_print_the_markdown_link_format(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_REPO_URL", SOMEONE)
    assert colab.main(["--links", str(REPO / "notebooks" / "01_tensors.ipynb")]) == 0
    assert capsys.readouterr().out == (
        f"01_tensors: [Colab]({colab.colab_url('01_tensors', SOMEONE)})\n")


def test_colab_cells_are_all_current_or_all_absent():
    """Until the repository has a public address (COURSE_REPO_URL) the notebooks carry no Colab cell;
    once `tools/add_colab_cell.py` adds them, every notebook has exactly one, it names a real GitHub
    address (never a placeholder) and it lists the data that notebook reads today."""
    present, absent = [], []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.get("id") == colab.CELL_ID or colab.CELL_TAG in c.metadata.get("tags", [])]
        if not cells:
            absent.append(path.name)
            continue
        present.append(path.name)
        assert len(cells) == 1, f"{path.name}: {len(cells)} Colab cells"
        repo = re.search(r'^    COURSE_REPO, COURSE_REF = "([^"]*)"', cells[0].source, re.M)
        assert repo and colab.github_address(repo[1]) == repo[1], f"{path.name}: no GitHub address in its Colab cell"
        assert cells[0].source == colab.colab_cell_source(colab.notebook_data_files(nb), repo[1]), (
            f"{path.name}: stale Colab cell: run `python tools/add_colab_cell.py`")
    assert not (present and absent), f"Colab cell missing in {absent} but present in {present}"
