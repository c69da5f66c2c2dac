"""Report a notebook's key results so that ``make run`` can collect them.

A notebook ends with ``report_results({"test_acc": 0.84})``. It prints the results and, when
``COURSE_RESULTS_FILE`` names a file (``make run`` sets it), appends one JSON line there.

Introduced in ``notebooks/01_tensors.ipynb``.
Copy with: ``atomic_write.py``.

>>> report_results({"test_acc": 0.8421})
results: test_acc=0.8421
"""

from __future__ import annotations

import json
import math
import os
from numbers import Real
from pathlib import Path
from typing import Mapping

if __package__:  # part of course_utils (or of your own package)
    from .atomic_write import atomic_write
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from atomic_write import atomic_write

__all__ = ["report_results", "read_results"]


def _as_plain(value: object) -> float | int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"result value {value!r} is not finite")
        return int(value) if isinstance(value, int) else number
    if hasattr(value, "item"):  # a 0-d tensor or numpy scalar
        return _as_plain(value.item())
    if isinstance(value, str):
        return value
    raise TypeError(f"result values must be numbers or strings, got {type(value).__name__}")


def report_results(results: Mapping[str, object]) -> None:
    """Print ``results`` on one short line (4 significant digits) and append them, unrounded, to
    ``$COURSE_RESULTS_FILE`` if set (the file is rewritten whole, with ``atomic_write``; a
    failed write raises ``WriteError``). Returns nothing, so a notebook's last cell echoes no ``Out[]``."""
    if not results:
        raise ValueError("report_results needs at least one result")
    plain = {str(key): _as_plain(value) for key, value in results.items()}
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in plain.items()
    )
    print(f"results: {shown}")
    target = os.environ.get("COURSE_RESULTS_FILE", "").strip()
    if target:  # the old lines and the new one, written whole (never a half line)
        old = Path(target).read_text(encoding="utf-8") if Path(target).is_file() else ""
        with atomic_write(target, "w", elsewhere="point COURSE_RESULTS_FILE at another disk") as handle:
            handle.write(old + json.dumps(plain) + "\n")


def read_results(path: str | os.PathLike[str]) -> dict[str, float | int | str]:
    """Merge the JSON lines written by :func:`report_results` (later keys win)."""
    merged: dict[str, float | int | str] = {}
    file = Path(path)
    if not file.exists():
        return merged
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            merged.update(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}:{number} is not a JSON line: {err}") from err
    return merged
