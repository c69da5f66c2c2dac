"""Course-wide settings: smoke mode, device choice and seeding.

Two environment variables steer every notebook (``COURSE_DATA`` and ``COURSE_OFFLINE``, about
the data files, live in :mod:`course_utils.datafiles`):

``COURSE_SMOKE=1``
    Quick "smoke" mode for CI: notebooks run the same code on fewer examples and epochs.
    Unset or ``0`` means the full lesson.
``COURSE_DEVICE=cpu|cuda|cuda:N|mps``
    Overrides the automatic choice (CUDA, then Apple MPS, then CPU). A device that is not
    there, or a malformed name such as ``cpu:3``, is an error.
``COURSE_PRECISION=auto|fp32|bf16``
    The precision of training forward passes run under :func:`autocast`. ``auto`` (the default):
    on the CPU, ``train_classifier`` times float32 against bfloat16 for each model and takes the
    faster (``fast_settings.py``); bfloat16 on a CUDA GPU that has it; float32 elsewhere.
    ``fp32`` forces float32 everywhere, ``bf16`` bfloat16.
``COURSE_CHANNELS_LAST=auto|1|0``
    Whether convolutional training uses the channels-last memory layout (same numbers up to
    rounding, often faster convolutions). ``auto``: timed per model on the CPU (as above), on
    for CUDA, off for MPS. Setting either variable turns the timing off.
``COURSE_SEED=N``
    Shifts every seed the course sets by ``N`` (a whole number ≥ 0; default 0):
    :func:`seed_everything` and :func:`course_seed`, which the notebooks pass every other seed
    through. Run a chapter with ``COURSE_SEED=1``, ``2``, ... to see how much a result moves.

:func:`describe` puts all of it in the one line that every notebook's first cell prints.

Introduced in ``notebooks/01_tensors.ipynb`` (the first code cell of every notebook).
Copy alone.

>>> epochs = choose(full=10, smoke=1)
>>> get_device().type in {"cpu", "cuda", "mps"}
True
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import TypeVar

import torch

__all__ = [
    "SMOKE",
    "env_flag",
    "smoke_mode",
    "choose",
    "get_device",
    "device_report",
    "seed_offset",
    "course_seed",
    "seed_everything",
    "precision_report",
    "autocast",
    "channels_last_report",
    "timed_per_model",
    "describe",
    "full_fp32",
]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_flag(name: str, usage: str = "1/true/yes/on or 0/false/no/off") -> bool:
    """The boolean environment setting ``name``, the course's one reader of yes/no settings.

    ``1``/``true``/``yes``/``on`` mean True; ``0``/``false``/``no``/``off``, empty or unset mean
    False (any case, surrounding spaces ignored). Anything else raises ``ValueError`` naming the
    setting, its value and ``usage``, so a typo such as ``=ture`` is not silently read as False.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"MY_FLAG": " Yes "}):
    ...     env_flag("MY_FLAG"), env_flag("MY_UNSET_FLAG")
    (True, False)
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not understood; use {usage}")


def smoke_mode() -> bool:
    """Return True when ``COURSE_SMOKE`` asks for the quick CI mode.

    Raises ``ValueError`` for a value that is neither true-ish nor false-ish, so a typo such as
    ``COURSE_SMOKE=ture`` is not silently read as "full mode".
    """
    return env_flag("COURSE_SMOKE", "1 (smoke) or 0 (full lesson)")


SMOKE: bool = smoke_mode()
"""Smoke mode as read when this module was first imported (notebooks read it once, at the top)."""


def choose(full: T, smoke: T) -> T:
    """Return ``smoke`` in smoke mode and ``full`` otherwise (read from the environment now).

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"COURSE_SMOKE": "1"}):  # restores os.environ after
    ...     choose(full=10, smoke=2)
    2
    >>> with mock.patch.dict(os.environ, {"COURSE_SMOKE": "0"}):
    ...     choose(full=10, smoke=2)
    10
    """
    return smoke if smoke_mode() else full


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_report() -> tuple[torch.device, str]:
    """Pick the device and say why: ``COURSE_DEVICE`` if set, else CUDA, then MPS, then CPU.

    Raises ``ValueError`` if ``COURSE_DEVICE`` names a device that is malformed or not
    available here (rather than silently training somewhere else).
    """
    requested = os.environ.get("COURSE_DEVICE", "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(
                f"COURSE_DEVICE={requested!r} is not a device name; use cpu, cuda, cuda:N or mps"
            ) from err
        if device.type == "cpu" and device.index is not None:
            raise ValueError(f"COURSE_DEVICE={requested!r}: cpu takes no device index; use cpu")
        if device.type == "mps" and device.index not in (None, 0):
            raise ValueError(f"COURSE_DEVICE={requested!r}: there is only one MPS device; use mps")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"COURSE_DEVICE={requested!r} but CUDA is not available here")
            index = device.index or 0
            if index >= torch.cuda.device_count():
                raise ValueError(
                    f"COURSE_DEVICE={requested!r} but only {torch.cuda.device_count()} "
                    "CUDA device(s) exist"
                )
        elif device.type == "mps" and not _mps_available():
            raise ValueError(f"COURSE_DEVICE={requested!r} but Apple MPS is not available here")
        elif device.type not in {"cpu", "cuda", "mps"}:
            raise ValueError(f"COURSE_DEVICE={requested!r}: only cpu, cuda, cuda:N, mps supported")
        return device, f"COURSE_DEVICE={requested}"
    if torch.cuda.is_available():
        return torch.device("cuda"), f"CUDA is available ({torch.cuda.get_device_name(0)})"
    if _mps_available():
        return torch.device("mps"), "Apple MPS is available"
    return torch.device("cpu"), "no CUDA or MPS device found"


def get_device() -> torch.device:
    """The device notebooks should use (see :func:`device_report` for the rules)."""
    return device_report()[0]


def seed_offset() -> int:
    """The shift ``COURSE_SEED`` asks for: a whole number ≥ 0, 0 when unset.

    Anything else (``-1``, ``1.5``, ``abc``) raises ``ValueError`` naming the value, so a typo
    never silently runs the default seed.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"COURSE_SEED": "3"}):
    ...     seed_offset()
    3
    """
    raw = os.environ.get("COURSE_SEED", "").strip()
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"COURSE_SEED={raw!r} is not understood; use a whole number >= 0 such as 0, 1, 2")
    return int(raw)


def course_seed(seed: int = 0) -> int:
    """``seed`` shifted by ``COURSE_SEED``: pass every seed a notebook sets through this.

    With ``COURSE_SEED`` unset it returns ``seed`` unchanged, so the lessons' numbers stay those
    of seed 0; ``COURSE_SEED=1`` moves every seed at once, and a result that only holds for one
    of them shows itself.

    >>> import os
    >>> from unittest import mock
    >>> course_seed(5)
    5
    >>> with mock.patch.dict(os.environ, {"COURSE_SEED": "2"}):
    ...     torch.Generator().manual_seed(course_seed(5)).initial_seed()
    7
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed + seed_offset()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy (if installed) and torch with ``course_seed(seed)``; return a
    ``torch.Generator`` with that seed.

    The seed is shifted by ``COURSE_SEED`` (see :func:`course_seed`; unset means no shift).

    The returned generator is handy for ``DataLoader(generator=...)`` or ``torch.randperm``.
    It starts in the same state as the global torch RNG, so do not use it to draw the *same
    kind* of numbers as the global RNG (e.g. data and initial weights) or both streams match;
    use ``torch.Generator().manual_seed(another_seed)`` for a second stream.
    """
    seed = course_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a course dependency
        pass
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def timed_per_model(device: torch.device | None = None) -> bool:
    """Whether precision and layout are timed per model (``fast_settings.py``): on the CPU, with
    neither ``COURSE_PRECISION`` nor ``COURSE_CHANNELS_LAST`` set (or both ``auto``).

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"COURSE_PRECISION": "fp32"}):
    ...     timed_per_model(torch.device("cpu"))
    False
    """
    device = get_device() if device is None else torch.device(device)
    unset = all(os.environ.get(name, "").strip().lower() in ("", "auto")
                for name in ("COURSE_PRECISION", "COURSE_CHANNELS_LAST"))
    return device.type == "cpu" and unset


def precision_report(device: torch.device | None = None) -> tuple[torch.dtype, str]:
    """The dtype :func:`autocast` computes in on ``device`` (default :func:`get_device`), and why.

    ``COURSE_PRECISION`` decides: ``fp32``, ``bf16``, or ``auto`` (unset). ``auto`` means bfloat16
    on a CUDA GPU that supports it, float32 elsewhere; on the CPU, ``train_classifier`` does not
    ask this function but times both per model (:func:`timed_per_model`, ``fast_settings.py``),
    because CPU flags do not tell: with the same AVX-512 BF16 flags bfloat16 trained the course's
    CNN 2.1× as fast on a Zen 4 EPYC and 0.66–1.03× as fast on a Xeon. Anything else raises
    ``ValueError``.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"COURSE_PRECISION": "fp32"}):
    ...     precision_report(torch.device("cpu"))
    (torch.float32, 'COURSE_PRECISION=fp32')
    """
    device = get_device() if device is None else torch.device(device)
    raw = os.environ.get("COURSE_PRECISION", "").strip().lower()
    if raw == "fp32":
        return torch.float32, "COURSE_PRECISION=fp32"
    if raw == "bf16":
        return torch.bfloat16, "COURSE_PRECISION=bf16"
    if raw not in ("", "auto"):
        raise ValueError(f"COURSE_PRECISION={raw!r} is not understood; use auto, fp32 or bf16")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16, "this GPU computes bfloat16 natively"
    if device.type == "cpu":
        return torch.float32, "float32 unless train_classifier times bfloat16 faster for the model"
    return torch.float32, f"bfloat16 autocast not used on {device.type}"


def channels_last_report(device: torch.device | None = None) -> tuple[bool, str]:
    """Whether convolutional training should use the channels-last layout on ``device``, and why.

    ``COURSE_CHANNELS_LAST`` decides: ``1``, ``0``, or ``auto`` (unset): on for CPU (oneDNN's
    convolutions prefer it: the course's recommended Fashion-MNIST CNN trained 1.67× as fast) and
    CUDA (cuDNN's tensor-core kernels do), off for Apple MPS (not measured). Anything else raises
    ``ValueError``.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"COURSE_CHANNELS_LAST": "0"}):
    ...     channels_last_report(torch.device("cpu"))
    (False, 'COURSE_CHANNELS_LAST=0')
    """
    device = get_device() if device is None else torch.device(device)
    raw = os.environ.get("COURSE_CHANNELS_LAST", "").strip().lower()
    if raw in ("", "auto"):
        if device.type in ("cpu", "cuda"):
            return True, f"{device.type} convolutions are faster in this layout"
        return False, f"not measured on {device.type}"
    return env_flag("COURSE_CHANNELS_LAST", "auto, 1 or 0"), f"COURSE_CHANNELS_LAST={raw}"


def describe(device: torch.device | None = None) -> str:
    """One line with smoke mode, device, training precision and layout: what a notebook prints
    first, so a reader knows how its numbers were made.

    >>> describe(torch.device("cpu")).startswith("smoke mode: ")
    True
    """
    device = get_device() if device is None else torch.device(device)
    dtype, _ = precision_report(device)
    layout, _ = channels_last_report(device)
    offset = seed_offset()
    if timed_per_model(device):  # train_classifier times them per model and prints its choice
        choices = "training precision: timed per model | channels_last: timed per model"
    else:
        precision = str(dtype).removeprefix("torch.")
        choices = f"training precision: {precision} | channels_last: {'on' if layout else 'off'}"
    return (f"smoke mode: {smoke_mode()} | device: {device} | {choices}"
            + (f" | COURSE_SEED: {offset}" if offset else ""))


def autocast(device: torch.device | None = None) -> contextlib.AbstractContextManager[None]:
    """A context that runs forward passes in :func:`precision_report`'s dtype (a no-op for fp32).

    Use it around the forward pass and loss of a *training* step; twin checks and numerics
    lessons stay outside it, in float32.

    >>> with autocast(torch.device("cpu")):
    ...     y = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    >>> y.dtype in (torch.float32, torch.bfloat16)
    True
    """
    device = get_device() if device is None else torch.device(device)
    dtype, _ = precision_report(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """A context in which CUDA float32 matrix products and cuDNN convolutions and RNNs compute in
    full float32 (IEEE), not TensorFloat-32; the previous settings come back afterwards.

    PyTorch lets cuDNN use TF32 (a 10-bit mantissa) for float32 work by default on recent NVIDIA
    GPUs: fine for training, too coarse for a twin check that compares a from-scratch layer with
    its library twin at ``atol=1e-5``. Wrap such checks in this context. CPUs and MPS have no TF32;
    there it changes nothing.

    >>> with full_fp32():
    ...     torch.backends.cudnn.allow_tf32
    False
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
