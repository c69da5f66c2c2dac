"""Checks for the chapters' exercises: ``check("12.3", answer)`` says whether an answer is right.

Each chapter's checks live beside this file in ``chNN.py`` (``ch12.py`` for exercises ``12.x``),
each one a function registered with ``@checks("12.3")`` that takes the learner's answer and raises
:class:`Wrong` with a message naming what is wrong. :func:`check` finds the chapter's checks on
first use, runs the one asked for and prints ``✓`` with what was verified. A wrong answer raises
:class:`CheckFailed`, which Jupyter shows as one line (no traceback into the checker); an error
inside the learner's own code (their stub's ``NotImplementedError`` included) propagates with their
traceback, the checker's frames removed. Checks are offline and deterministic: they draw their
inputs from their own seeded generators and leave the global random state alone.

The helpers :func:`expect_close`, :func:`expect_equal` and :func:`expect_shape` compare a learner's
value with the right one and, when it is wrong, with the values that known mistakes give, so that
a message can name the mistake ("normalized over the batch axis instead of the classes").

Introduced in ``notebooks/02_autograd.ipynb``'s exercises; the catalogue of wrong answers each check
must reject is in ``mutants/*.toml`` (``[[wrong_answer]]``), run by ``make mutants``.

Example:
    >>> import torch
    >>> from course_utils.exercises import CheckFailed, Wrong, expect_close
    >>> expect_close(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]), "softmax([1, 1])")
    >>> try:
    ...     expect_close(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]), "softmax([1, 1])",
    ...                  mistakes={"the exponentials are not divided by their sum": torch.e * torch.ones(2)})
    ... except Wrong as wrong:
    ...     print(wrong)
    softmax([1, 1]): expected tensor of shape (2,) (float32) [0.5, 0.5], got tensor of shape (2,) (float32) [1, 1]
"""

from __future__ import annotations

import importlib
import math
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckFailed", "Wrong", "check", "checks", "expect_close", "expect_equal", "expect_shape",
           "registered", "describe"]

_ID = re.compile(r"^([1-9][0-9]?)\.([1-9][0-9]?)$")
_CHECKS: dict[str, Callable[..., str | None]] = {}
_HERE = str(Path(__file__).resolve().parent)


class Wrong(Exception):
    """Raised by a check: the answer is wrong, and the message says how."""


class CheckFailed(Exception):
    """A wrong answer to exercise ``exercise_id``; Jupyter shows only ``✗ exercise 12.3: message``."""

    def __init__(self, exercise_id: str, message: str) -> None:
        super().__init__(f"✗ exercise {exercise_id}: {message}")
        self.exercise_id = exercise_id
        self.message = message

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [str(self)]


def checks(exercise_id: str) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
    """Register the decorated function as the check of ``exercise_id`` (e.g. ``"12.3"``)."""
    _parse(exercise_id)

    def register(fn: Callable[..., str | None]) -> Callable[..., str | None]:
        if exercise_id in _CHECKS and _CHECKS[exercise_id].__qualname__ != fn.__qualname__:
            raise ValueError(f"exercise {exercise_id} has two checks: {_CHECKS[exercise_id].__name__} "
                             f"and {fn.__name__}")
        _CHECKS[exercise_id] = fn
        return fn
    return register


def _parse(exercise_id: str) -> int:
    match = _ID.match(exercise_id) if isinstance(exercise_id, str) else None
    if match is None:
        raise ValueError(f"exercise ids look like '12.3' (chapter.number), not {exercise_id!r}")
    return int(match.group(1))


def _load(exercise_id: str) -> Callable[..., str | None]:
    chapter = _parse(exercise_id)
    if exercise_id not in _CHECKS:
        try:
            importlib.import_module(f"{__name__}.ch{chapter:02d}")
        except ModuleNotFoundError as missing:
            if missing.name != f"{__name__}.ch{chapter:02d}":
                raise
    if exercise_id not in _CHECKS:
        raise ValueError(f"there is no exercise {exercise_id} (chapter {chapter} has: "
                         f"{', '.join(registered(chapter)) or 'none'})")
    return _CHECKS[exercise_id]


def registered(chapter: int | None = None) -> list[str]:
    """The exercise ids with a check (of one chapter, or of every chapter), in order."""
    chapters = [chapter] if chapter is not None else range(1, 100)
    for number in chapters:
        try:
            importlib.import_module(f"{__name__}.ch{number:02d}")
        except ModuleNotFoundError as missing:
            if missing.name != f"{__name__}.ch{number:02d}":
                raise
    ids = [i for i in _CHECKS if chapter is None or _parse(i) == chapter]
    return sorted(ids, key=lambda i: tuple(int(p) for p in i.split(".")))


def _without_checker_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback with this package's frames left out: the learner sees only their code."""
    frames = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_HERE):
            frames.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for frame in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return rebuilt


def check(exercise_id: str, *answer: Any) -> None:
    """Check the answer to ``exercise_id``: print ``✓`` and what was verified, or raise CheckFailed.

    ``answer`` is what the exercise asks for (usually the function or module you wrote). An
    exception raised inside your code reaches you unchanged, with your traceback.
    """
    __tracebackhide__ = True  # noqa: F841  (IPython and pytest leave this frame out of tracebacks)
    run = _load(exercise_id)
    try:
        verified = run(*answer)
    except Wrong as wrong:
        raise CheckFailed(exercise_id, str(wrong)) from None
    except Exception as error:  # the learner's own code failed: show them their traceback
        theirs = _without_checker_frames(error.__traceback__)
        if theirs is None:  # every frame is the checker's: a bug in the check, shown whole
            raise
        raise error.with_traceback(theirs) from None
    print(f"✓ exercise {exercise_id}" + (f": {verified}" if verified else ""))


# --- helpers for writing checks --------------------------------------------------------------

def describe(value: Any, limit: int = 6) -> str:
    """A short, readable rendering of a value for a message: tensors show shape, dtype and values."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()
        shown = ", ".join(_number(float(v)) if value.is_floating_point() else str(int(v))
                          for v in flat[:limit].tolist()) if flat.numel() else ""
        more = ", …" if flat.numel() > limit else ""
        dtype = str(value.dtype).removeprefix("torch.")
        return f"tensor of shape {tuple(value.shape)} ({dtype}) [{shown}{more}]"
    if isinstance(value, float):
        return _number(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    raise Wrong(f"{what} should be a tensor or a number, got {type(value).__name__}: {describe(value)}")


def expect_shape(got: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """``got`` as a tensor of exactly ``shape``, or Wrong naming both shapes."""
    tensor = _as_tensor(got, what)
    if tuple(tensor.shape) != tuple(shape):
        raise Wrong(f"{what} should have shape {tuple(shape)}, got shape {tuple(tensor.shape)}")
    return tensor


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().double(), b.detach().double(),
                                                 rtol=rtol, atol=atol, equal_nan=False)


def expect_close(got: Any, expected: Any, what: str, *, rtol: float = 1e-4, atol: float = 1e-5,
                 mistakes: Mapping[str, Any] | None = None) -> None:
    """Wrong unless ``got`` equals ``expected`` within tolerance (same shape).

    ``mistakes`` maps the description of a known mistake to the value that mistake gives; a wrong
    ``got`` equal to one of them is reported by its description, otherwise by expected against got.
    """
    expected_t = _as_tensor(expected, "the expected value")
    got_t = _as_tensor(got, what)
    if _close(got_t, expected_t, rtol, atol):
        return
    for mistake, value in (mistakes or {}).items():
        if _close(got_t, _as_tensor(value, mistake), rtol, atol):
            raise Wrong(f"{what}: {mistake}")
    if got_t.shape != expected_t.shape:
        raise Wrong(f"{what} should have shape {tuple(expected_t.shape)}, got shape {tuple(got_t.shape)}")
    raise Wrong(f"{what}: expected {describe(expected_t)}, got {describe(got_t)}")


def expect_equal(got: Any, expected: Any, what: str, *, mistakes: Mapping[str, Any] | None = None) -> None:
    """Wrong unless ``got == expected`` (tensors: same shape and every element equal)."""
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                    and a.shape == b.shape and bool(torch.equal(a.detach().cpu(), b.detach().cpu())))
        return bool(a == b)
    if same(got, expected):
        return
    for mistake, value in (mistakes or {}).items():
        if same(got, value):
            raise Wrong(f"{what}: {mistake}")
    raise Wrong(f"{what}: expected {describe(expected)}, got {describe(got)}")
