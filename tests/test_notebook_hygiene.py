"""Committed notebooks are clean and follow the course conventions (CONTRIBUTING.md)."""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("notebook_outputs", REPO / "tools" / "notebook_outputs.py")
notebook_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_outputs)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks_and_names_follow_course_order():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), "two notebooks share a chapter number"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_stray_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert notebook_outputs.stray_outputs(nb) == [], "run `make outputs` to clean it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    cells = code_cells(nb)
    assert "course_utils.settings" in cells[0].source, "first code cell must be the settings cell"
    source = "\n".join(c.source for c in cells)
    assert not re.search(r"^\s*(import d2l|from d2l)", source, re.M), "notebooks never import d2l"
    assert re.search(r"\bassert\b|assert_close", source), "a notebook must check itself"
    assert "report_results(" in source, "end with report_results({...})"
    hard_coded = re.search(r"""(torch\.device\(|\.to\(|device\s*=\s*)['"](cuda|mps)|\.cuda\(\)""", source)
    assert not hard_coded, f"never hard-code a device: {hard_coded}"


# Helpers that take a seed of their own (their default would not follow COURSE_SEED).
SEEDED_HELPERS = ("fra_eng_loaders", "language_model_data", "movielens_loaders", "bike_sharing_loaders")


def unshifted_seeds(source: str) -> list[str]:
    """Places in notebook code that set a seed without going through ``course_seed``."""
    found = re.findall(r"(?:manual_seed|random\.Random|default_rng|RandomState)\((?!course_seed\()[^)\n]*\)?",
                       source)
    for helper in SEEDED_HELPERS:
        for call in re.finditer(rf"\b{helper}\(", source):
            depth, i = 1, call.end()
            while depth and i < len(source):
                depth += {"(": 1, ")": -1}.get(source[i], 0)
                i += 1
            if "seed=course_seed(" not in source[call.end():i]:
                found.append(source[call.start():i])
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_seed_follows_course_seed(path):
    """COURSE_SEED=N must move every seed a notebook sets (README, Settings)."""
    source = "\n".join(c.source for c in code_cells(nbformat.read(path, as_version=4)))
    assert unshifted_seeds(source) == [], "pass the seed through course_seed(...)"


def test_unshifted_seed_detection():
    assert unshifted_seeds("g = torch.Generator().manual_seed(0)") == [".manual_seed(0)"[1:]]
    assert unshifted_seeds("torch.manual_seed(course_seed(0)); random.Random(course_seed(1))") == []
    assert unshifted_seeds("x = fra_eng_loaders(batch_size=4,\n    num_steps=f(3))") != []
    assert unshifted_seeds("x = fra_eng_loaders(4, seed=course_seed(0), num_steps=f(3))") == []


def test_stray_output_detection_and_cleaning():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(2)", execution_count=7,
                                  outputs=[nbformat.v4.new_output("stream", text="2\n")]),
    ]
    problems = notebook_outputs.stray_outputs(nb)
    assert any("cell 0: has outputs" in p for p in problems)
    assert any("execution_count" in p for p in problems)
    cleaned = notebook_outputs.clean(nb)
    assert notebook_outputs.stray_outputs(cleaned) == []
    assert cleaned.cells[0].outputs == [] and cleaned.cells[1].outputs[0].text == "2\n"
    assert cleaned.cells[0].execution_count is None and cleaned.cells[1].execution_count == 2


# The training loops written by hand after chapter 04: only where the lesson *is* the loop
# (CONTRIBUTING.md, "Training loops that are not `fit`"). A cell is named by the functions it
# defines or, without any, by its first line. Everything else trains with course_utils' fit.
HAND_LOOPS_ALLOWED = {
    "06_model_selection_weight_decay": {"train_scratch"},
    "10_cnn_basics": {"seed_everything(0)"},
    "15_rnn": {"net_tbptt = RNNScratch(V, 16)", "train_steps_recording_norms"},
    "17_optimizers": {"train_minibatch_sgd", "check_parity", "train_with", "train_scheduled"},
    "21_collaborative_filtering": {"train_scratch"},
    "24_cifar10_ladder": {"lr_range_test"},
}


def hand_training_loops(source: str) -> bool:
    """A loop that calls backward() and steps (an optimizer's step() or a manual `-=` update)."""
    return (".backward()" in source and bool(re.search(r"\.step\(\)|-= ", source))
            and bool(re.search(r"^\s*(for|while) ", source, re.MULTILINE)))


def cell_names(source: str) -> set[str]:
    return set(re.findall(r"^def (\w+)", source, re.MULTILINE)) or {source.split("\n", 1)[0]}


def test_after_chapter_04_every_training_loop_is_fit_unless_the_loop_is_the_lesson():
    found = {}
    for path in NOTEBOOKS:
        if int(path.name[:2]) < 5:
            continue
        for cell in code_cells(nbformat.read(path, as_version=4)):
            if hand_training_loops(cell.source):
                names = cell_names(cell.source)
                if not names & HAND_LOOPS_ALLOWED.get(path.stem, set()):
                    found.setdefault(path.stem, []).append(sorted(names))
    assert not found, ("hand-written training loops; train with course_utils.training.fit (a step function) "
                       f"or, if the loop is the lesson, list it in CONTRIBUTING.md and here: {found}")


def test_hand_loop_detection():
    loop = "for X, y in data:\n    loss = f(X, y)\n    loss.backward()\n    opt.step()\n"
    assert hand_training_loops(loop) and hand_training_loops(loop.replace("opt.step()", "w -= lr * w.grad"))
    assert not hand_training_loops("fit(net, data, step, 3, optimizer=opt)\nloss.backward()")
    assert cell_names("def a():\n    pass\ndef b():\n    pass") == {"a", "b"} and cell_names("x = 1\ny") == {"x = 1"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 cells carry ids (a cell without one is a warning now, an error in future
    nbformat versions); a script that appends cells must give them one."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]  # raw: nbformat's reader fills ids in
    ids = [cell.get("id") for cell in cells]
    assert all(ids), f"cells without an id: {[i for i, c in enumerate(ids) if not c]}"
    assert len(set(ids)) == len(ids), "two cells share an id"
