"""The exercises: their checks, the learner copies, and the tool that writes and proves them.

What a learner relies on: ``check("12.3", answer)`` says ✓ or names what is wrong in one line, an
error in their own code shows their traceback, the learner copies hold no solution and fail only
at their stubs, and regenerating the copies never overwrites one they changed. What a maintainer
relies on: every checked exercise rejects its catalogued wrong answers (``make mutants`` runs
them; here the catalogues are validated and the tool is shown to notice a wrong answer that
passes).
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import exercises as tool  # noqa: E402

from course_utils.exercises import CheckFailed, check, registered  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
STEMS = [p.stem for p in NOTEBOOKS]
ALL = tool.all_exercises()


def central_difference(f, x, h=1e-6):
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        step = torch.zeros_like(x).view(-1)
        step[i] = h
        grad.view(-1)[i] = (f(x + step.view_as(x)) - f(x - step.view_as(x))) / (2 * h)
    return grad


# --- check() as a learner meets it ---------------------------------------------------------------

def test_a_right_answer_gets_a_tick_and_what_was_verified(capsys):
    check("2.1", central_difference)
    out = capsys.readouterr().out
    assert out.startswith("✓ exercise 2.1: ") and "autograd" in out


def test_a_wrong_answer_is_one_line_naming_the_mistake():
    def forward_difference(f, x, h=1e-6):
        grad = torch.zeros_like(x)
        for i in range(x.numel()):
            step = torch.zeros_like(x).view(-1)
            step[i] = h
            grad.view(-1)[i] = (f(x + step.view_as(x)) - f(x)) / h
        return grad
    with pytest.raises(CheckFailed) as failure:
        check("2.1", forward_difference)
    assert failure.value.exercise_id == "2.1"
    assert "a forward difference" in failure.value.message
    # IPython shows _render_traceback_'s lines instead of a traceback into the checker
    assert failure.value._render_traceback_() == [str(failure.value)]
    assert str(failure.value).startswith("✗ exercise 2.1: ") and "\n" not in str(failure.value)


def test_an_error_in_the_learners_code_shows_their_traceback_not_the_checkers():
    def broken(f, x, h=1e-6):
        return x / undefined_name  # noqa: F821

    with pytest.raises(NameError) as error:
        check("2.1", broken)
    frames = traceback.extract_tb(error.value.__traceback__)
    checker = [f for f in frames if "course_utils/exercises" in f.filename.replace("\\", "/")]
    # only check() itself remains (Python adds the frame that re-raises), and it is hidden from
    # IPython's and pytest's tracebacks by __tracebackhide__; the checks' own frames are gone
    assert [f.name for f in checker] == ["check"]
    assert frames[-1].name == "broken"


def test_the_learners_stub_reaches_them_as_not_implemented():
    def stub(f, x, h=1e-6):
        raise NotImplementedError("exercise 2.1")
    with pytest.raises(NotImplementedError, match="exercise 2.1"):
        check("2.1", stub)


@pytest.mark.parametrize("bad, says", [("12", "look like '12.3'"), ("2.x", "look like '12.3'"),
                                        ("2.99", "there is no exercise 2.99")])
def test_an_unknown_or_malformed_exercise_id_is_a_clear_error(bad, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        check(bad, central_difference)


# --- the exercises the course holds --------------------------------------------------------------

def test_there_are_enough_exercises_of_each_kind_in_every_chapter():
    per_chapter = {int(s.split("_")[0]): [e for e in ALL if e.notebook == s] for s in STEMS}
    thin = {n: len(found) for n, found in per_chapter.items() if 2 <= n <= 24 and len(found) < 3}
    assert not thin, f"chapters with fewer than 3 exercises: {thin}"
    assert len(ALL) >= 80, f"{len(ALL)} exercises; the course promises at least 80"
    checked_implementations = [e for e in ALL if e.kind == "implement" and e.checked]
    assert len(checked_implementations) >= 50, len(checked_implementations)
    unchecked = [e.id for e in ALL if e.kind == "implement" and not e.checked]
    assert not unchecked, f"implement exercises without a check(...) call: {unchecked}"


def test_every_check_belongs_to_one_exercise_and_every_checked_exercise_has_a_check():
    checked = {e.id for e in ALL if e.checked}
    assert checked <= set(registered()), f"no check registered for {sorted(checked - set(registered()))}"
    assert set(registered()) <= checked, f"checks no notebook calls: {sorted(set(registered()) - checked)}"


def test_every_checked_exercise_has_at_least_two_valid_wrong_answers():
    catalogues = sorted((REPO / "mutants" / "exercises").glob("*.toml"))
    assert {p.stem for p in catalogues} <= set(STEMS), "a wrong-answer catalogue without its notebook"
    counts: dict[str, int] = {}
    for path in catalogues:
        nb = tool.read_notebook(REPO / "notebooks" / f"{path.stem}.ipynb")
        found = {e.id: e for e in tool.exercises_of(nb, path.stem)}
        for wrong in tool.load_wrong_answers(path, found, nb):
            counts[wrong.exercise] = counts.get(wrong.exercise, 0) + 1
    short = {e.id: counts.get(e.id, 0) for e in ALL if e.checked and counts.get(e.id, 0) < 2}
    assert not short, f"checked exercises with fewer than 2 wrong answers: {short}"


def test_exercises_come_last_so_that_no_lesson_cell_can_use_their_results():
    for path in NOTEBOOKS:
        nb = tool.read_notebook(path)
        found = tool.exercises_of(nb, path.stem)
        if not found:
            continue
        owned = {i for e in found for i in [e.statement, *e.code_cells]}
        first = min(owned)
        heading = "".join(nb["cells"][first - 1]["source"]).split("\n", 1)[0]
        assert heading == "## Exercises", f"{path.stem}: the exercises must follow a '## Exercises' cell"
        after = [i for i in range(first, len(nb["cells"])) if i not in owned]
        assert not after, f"{path.stem}: cells {after} come after the first exercise but belong to none"


# --- learner copies ------------------------------------------------------------------------------

def _solution_lines(nb: dict, stem: str) -> list[str]:
    lines = []
    for e in tool.exercises_of(nb, stem):
        for source in e.sources(nb) + ["".join(nb["cells"][e.statement]["source"])]:
            inside = False
            for line in source.split("\n"):
                marker = line.strip()
                if marker in (tool.CODE_BEGIN, tool.MD_BEGIN):
                    inside = True
                elif marker in (tool.CODE_END, tool.MD_END):
                    inside = False
                elif inside and len(marker) >= 12:
                    lines.append(marker)
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=STEMS)
def test_learner_copy_has_no_solution_and_the_same_lessons(path):
    nb = tool.read_notebook(path)
    learner = tool.learner_copy(nb, path.stem)
    text = tool.notebook_text(learner)
    for marker in (tool.CODE_BEGIN, tool.CODE_END, tool.MD_BEGIN, tool.MD_END, "<summary>Answer"):
        assert marker not in text, f"{marker!r} left in the learner copy of {path.stem}"
    exercise_cells = {i for e in tool.exercises_of(nb, path.stem) for i in [e.statement, *e.code_cells]}
    exercise_text = "\n".join("".join(learner["cells"][i]["source"]) for i in exercise_cells)
    leaked = [line for line in _solution_lines(nb, path.stem) if line in exercise_text]
    assert not leaked, f"solution lines in the learner copy of {path.stem}: {leaked[:3]}"
    assert len(learner["cells"]) == len(nb["cells"])
    for i, (mine, theirs) in enumerate(zip(nb["cells"], learner["cells"], strict=True)):
        if i not in exercise_cells:  # the lessons are the very cells nbval runs in notebooks/
            assert mine["source"] == theirs["source"], f"{path.stem} cell {i} differs in the learner copy"
        if theirs["cell_type"] == "code":
            assert theirs["outputs"] == [] and theirs["execution_count"] is None


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if any(e.notebook == p.stem for e in ALL)],
                         ids=lambda p: p.stem)
def test_learner_copy_exercises_fail_only_at_their_stubs(path):
    results = tool.run_learner_cells(path.stem)
    for e in tool.exercises_of(tool.read_notebook(path), path.stem):
        if not e.code_cells:
            continue
        row = results[e.id]
        assert (row["status"], row["message"]) == ("ERROR", f"NotImplementedError: exercise {e.id}"), \
            f"{path.stem}, exercise {e.id} in the learner copy: {row}"


def test_a_whole_learner_copy_runs_in_a_kernel_with_only_its_stubs_failing(tmp_path):
    """End to end for one chapter: the copy `make exercises` writes, run top to bottom in a kernel."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    written, skipped = tool.write_learner_copies(tmp_path / "workbook")
    assert "02_autograd.ipynb" in written and not skipped
    nb = nbformat.read(tmp_path / "workbook" / "02_autograd.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, allow_errors=True,
                            resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    errors = [(o["ename"], o["evalue"]) for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    expected = [("NotImplementedError", f"exercise {e.id}") for e in ALL
                if e.notebook == "02_autograd" and e.code_cells]
    assert errors == expected


def _tiny_notebook(body: str) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# 05 · Tiny"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["## Exercises"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["### Exercise 5.1 · implement · Double"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 3, "outputs": [{"output_type": "stream",
                                                                            "name": "stdout", "text": "x"}],
         "source": [body]},
    ]}


GOOD = "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"


def test_the_stub_keeps_the_signature_and_the_indentation():
    copy = tool.learner_copy(_tiny_notebook(GOOD), "05_tiny")
    assert "".join(copy["cells"][3]["source"]) == (
        'def double(x):\n    raise NotImplementedError("exercise 5.1")  # your code here\n')
    assert copy["cells"][3]["outputs"] == []


@pytest.mark.parametrize("body, says", [
    ("# BEGIN SOLUTION\nx = 1\n", "without '# END SOLUTION'"),
    ("x = 1\n# END SOLUTION\n", "without '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside a solution"),
])
def test_unpaired_markers_are_named(body, says):
    with pytest.raises(tool.ExerciseError, match=re.escape(says)):
        tool.learner_copy(_tiny_notebook(body), "05_tiny")


def test_malformed_exercises_are_named():
    nb = _tiny_notebook(GOOD)
    nb["cells"][2]["source"] = ["### Exercise 5.1 - implement - Double"]
    with pytest.raises(tool.ExerciseError, match="must read"):
        tool.exercises_of(nb, "05_tiny")
    nb = _tiny_notebook(GOOD)
    with pytest.raises(tool.ExerciseError, match="belongs to chapter 5, not 6"):
        tool.exercises_of(nb, "06_tiny")
    nb = _tiny_notebook(GOOD)
    nb["cells"].insert(1, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": [GOOD]})
    with pytest.raises(tool.ExerciseError, match="a solution marker outside an exercise"):
        tool.learner_copy(nb, "05_tiny")


def _write(folder: Path, name: str, nb: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(nb), encoding="utf-8")


def test_regenerating_never_overwrites_a_copy_the_learner_changed(tmp_path, capsys):
    src, out = tmp_path / "notebooks", tmp_path / "workbook"
    _write(src, "05_tiny.ipynb", _tiny_notebook(GOOD))
    _write(src, "06_other.ipynb", {**_tiny_notebook(GOOD.replace("2 * x", "x + x")), "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# 06 · Other"]}]})
    assert tool.write_learner_copies(out, src) == (["05_tiny.ipynb", "06_other.ipynb"], [])
    assert tool.write_learner_copies(out, src) == ([], [])  # nothing changed: nothing written

    mine = out / "05_tiny.ipynb"
    edited = mine.read_text(encoding="utf-8").replace("raise NotImplementedError", "return 2 * x  #")
    mine.write_text(edited, encoding="utf-8")
    changed = _tiny_notebook(GOOD.replace("def double(x):", "def double(x):\n    '''Twice x.'''"))
    _write(src, "05_tiny.ipynb", changed)
    _write(src, "06_other.ipynb", changed | {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# 06 · Other, revised"]}]})
    written, skipped = tool.write_learner_copies(out, src)
    assert (written, skipped) == (["06_other.ipynb"], ["05_tiny.ipynb"])
    assert mine.read_text(encoding="utf-8") == edited  # the learner's work is intact
    assert "revised" in (out / "06_other.ipynb").read_text(encoding="utf-8")

    # a copy this command did not write (no manifest entry) is the learner's too
    (out / tool.MANIFEST).write_text("not json", encoding="utf-8")
    assert tool.write_learner_copies(out, src) == ([], ["05_tiny.ipynb", "06_other.ipynb"])
    assert mine.read_text(encoding="utf-8") == edited


def test_the_command_names_what_it_skipped(tmp_path, capsys, monkeypatch):
    out = tmp_path / "workbook"
    assert tool.main(["learner", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert f"{len(NOTEBOOKS)} written" in first
    (out / "02_autograd.ipynb").write_text("{}", encoding="utf-8")
    assert tool.main(["learner", "--out", str(out)]) == 0
    assert "skipped 02_autograd.ipynb" in capsys.readouterr().out


# --- the wrong-answer catalogue and its runner ---------------------------------------------------

def _catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "02_autograd.toml"
    path.write_text(text, encoding="utf-8")
    return path


ENTRY = '''[[wrong_answer]]
exercise = "2.1"
id = "{id}"
bug = "a bug"
find = "{find}"
replace = "{replace}"
'''


@pytest.mark.parametrize("text, says", [
    (ENTRY.format(id="x", find="no such text", replace="y"), "find occurs 0 times"),
    (ENTRY.format(id="x", find="(2 * h)", replace="(2 * h)"), "find == replace"),
    (ENTRY.format(id="x", find="(2 * h)", replace="h") * 2, "id must be unique"),
    (ENTRY.format(id="x", find="(2 * h)", replace="h").replace('"2.1"', '"2.98"'), "no checked exercise 2.98"),
    (ENTRY.format(id="x", find="(2 * h)", replace="h") + 'colour = "red"\n', "keys must be"),
])
def test_a_bad_wrong_answer_entry_is_named(tmp_path, text, says):
    nb = tool.read_notebook(REPO / "notebooks" / "02_autograd.ipynb")
    found = {e.id: e for e in tool.exercises_of(nb, "02_autograd")}
    with pytest.raises(tool.ExerciseError, match=re.escape(says)):
        tool.load_wrong_answers(_catalogue(tmp_path, text), found, nb)


def test_verify_counts_only_a_check_failure_as_a_rejection(tmp_path):
    _catalogue(tmp_path, "\n".join([
        ENTRY.format(id="caught", find="/ (2 * h)", replace="/ h"),
        ENTRY.format(id="harmless", find="grad = torch.zeros_like(x)", replace="grad = x.new_zeros(x.shape)"),
        ENTRY.format(id="name-error", find="return grad", replace="return grads"),
    ]))
    rows = {r["key"]: r for r in tool.verify(["02_autograd"], catalogue_dir=tmp_path)}
    assert rows["2.1/solution"]["ok"] and rows["2.1/caught"]["ok"]
    assert rows["2.1/harmless"]["status"] == "PASSED" and not rows["2.1/harmless"]["ok"]
    assert rows["2.1/name-error"]["status"] == "ERROR" and not rows["2.1/name-error"]["ok"]
    assert "NameError" in rows["2.1/name-error"]["message"]
