"""Training checkpoints that are safe to write, safe to load and resume exactly.

* :func:`save_checkpoint` writes to a new temporary file of its own, flushes it to disk and
  renames it into place (``atomic_write.py``), so a crash mid-write never leaves a
  half-written checkpoint where a good one was, and two processes saving to one path never
  mix: the last one wins, and a reader always loads one whole checkpoint. A failed write
  (full disk, ...) raises :class:`CheckpointWriteError` and keeps the previous checkpoint.
  :func:`check_checkpoint_path` refuses a path that cannot be written (a folder, a path below
  a file) before any training starts.
* :func:`load_checkpoint` uses ``torch.load(weights_only=True)``: tensors and plain data only,
  never code. A file that would need arbitrary unpickling is refused.
* :func:`training_state` / :func:`restore_training_state` bundle everything a loop needs to
  continue as if it had never stopped: model, optimizer, scheduler, the global RNGs (torch,
  CUDA, Python, NumPy), the data loader's own shuffling RNG, the epoch and the history.
* :func:`resume_if_requested` is what a loop does at its start: check the path, restore when
  asked to and a checkpoint exists, otherwise start fresh. A checkpoint of another model,
  optimizer class, parameter-group layout or scheduler class is refused, naming both sides,
  before anything is changed.
* :func:`load_model_state` names the mismatched keys when a checkpoint is from another model.

The training loop in :mod:`course_utils.training` uses this through its ``checkpoint_path=`` /
``resume=`` arguments; it needs torch only (NumPy's RNG is saved when NumPy is installed).

Introduced in ``notebooks/04_softmax_regression.ipynb`` (through ``training.py``; why
``weights_only=True`` matters: ``09_layers_params_io_devices.ipynb``).
Copy with: ``atomic_write.py``.

>>> import tempfile, torch
>>> from torch import nn
>>> net = nn.Linear(2, 1); opt = torch.optim.SGD(net.parameters(), lr=0.1)
>>> path = tempfile.mkdtemp() + "/run.pt"
>>> _ = save_checkpoint(path, training_state(net, opt, epoch=3, history={"loss": [1.0, 0.5, 0.4]}))
>>> epoch, history = restore_training_state(path, nn.Linear(2, 1), opt)
>>> epoch, history["loss"]
(3, [1.0, 0.5, 0.4])
"""

from __future__ import annotations

import copy
import errno
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

if __package__:  # part of course_utils (or of your own package)
    from .atomic_write import STALE_TEMPORARY_SECONDS, WriteError, atomic_write
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from atomic_write import STALE_TEMPORARY_SECONDS, WriteError, atomic_write

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "STALE_TEMPORARY_SECONDS",
    "check_checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "rng_state",
    "set_rng_state",
    "loader_rng_state",
    "set_loader_rng_state",
    "training_state",
    "restore_training_state",
    "resume_if_requested",
]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unsafe to load, or does not fit the model it is loaded into."""


class CheckpointWriteError(CheckpointError, WriteError):
    """A checkpoint could not be written (no space, read-only, no permission, too large)."""


_ELSEWHERE = "pass a checkpoint_path on another disk"


def check_checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """Refuse, with :class:`CheckpointError`, a checkpoint path that cannot be written: an
    existing folder or other non-file, a path below a file, or (:class:`CheckpointWriteError`)
    a folder without write permission or on a read-only file system. Training loops call it
    before the first epoch."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint_path {path} is a folder; name a file in it, such as "
                              f"{path / 'checkpoint.pt'}")
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint_path {path} exists and is not a regular file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint_path {path} lies below {folder}, which is a file, "
                              "not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):  # root too is refused on a read-only file system
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY) if hasattr(os, "statvfs") else False
        code = errno.EROFS if read_only else errno.EACCES
        err = OSError(code, os.strerror(code), str(folder))
        raise CheckpointWriteError.from_os_error(path, err, elsewhere=_ELSEWHERE, existed=path.is_file()) from err
    return path


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (:func:`atomic_write.atomic_write`): to a
    new temporary file beside ``path`` (a unique name per save), flushed and fsynced, then
    renamed over ``path`` and the folder fsynced. Concurrent saves to one path never collide
    (the last rename wins); a reader never sees a partial file. Temporaries of killed saves are
    removed once an hour old. A failed write (full disk, read-only folder, file-size limit)
    raises :class:`CheckpointWriteError` naming the file and the cause; the previous checkpoint
    is kept and no temporary is left."""
    path = check_checkpoint_path(path)
    with atomic_write(path, error=CheckpointWriteError, elsewhere=_ELSEWHERE) as handle:
        torch.save(state, handle)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain data, never code.

    A file that would need arbitrary unpickling (e.g. one that runs code when loaded) is
    refused with :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError/RuntimeError variants
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain-data checkpoint "
            f"({err.__class__.__name__}: {first_line}). Only load files you trust."
        ) from err


def load_model_state(net: nn.Module, state: dict[str, torch.Tensor], source: Any = "checkpoint") -> None:
    """``net.load_state_dict(state)``, with an error naming missing, unexpected and
    wrongly-shaped keys when ``state`` belongs to a different model."""
    _check_model_state(net, state, source)
    net.load_state_dict(state)


def _check_model_state(net: nn.Module, state: dict[str, torch.Tensor], source: Any) -> None:
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if mismatched:
            parts.append("shape mismatch for " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched))
        raise CheckpointError(f"{source} is for a different model: " + "; ".join(parts))


def rng_state() -> dict[str, Any]:
    """The global random states (torch, CUDA, Python, NumPy) as plain data and tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return state
    legacy: tuple[str, Any, int, int, float] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    name, key, pos, has_gauss, cached = legacy
    # plain types and tensors only, so that weights_only=True can load it
    state["numpy"] = [name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        name, key, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))


def _loader_rng(loader: Any) -> torch.Generator | random.Random | None:
    """The RNG that shuffles ``loader``: its own ``rng``/``generator`` or its sampler's."""
    for name in ("rng", "generator"):
        own = getattr(loader, name, None)
        if isinstance(own, (torch.Generator, random.Random)):
            return own
    sampler = getattr(loader, "batch_sampler", None) or getattr(loader, "sampler", None)
    for _ in range(3):
        if sampler is None:
            return None
        gen = getattr(sampler, "generator", None)
        if isinstance(gen, torch.Generator):
            return gen
        sampler = getattr(sampler, "sampler", None)
    return None


def loader_rng_state(loader: Any) -> Any:
    """The state of the RNG that shuffles ``loader`` (``None`` if it uses the global one)."""
    rng = _loader_rng(loader)
    if isinstance(rng, torch.Generator):
        return rng.get_state()
    if isinstance(rng, random.Random):
        return rng.getstate()
    return None


def set_loader_rng_state(loader: Any, state: Any) -> None:
    """Restore what :func:`loader_rng_state` returned."""
    if state is None:
        return
    rng = _loader_rng(loader)
    if isinstance(rng, torch.Generator) and isinstance(state, torch.Tensor):
        rng.set_state(state)
    elif isinstance(rng, random.Random) and isinstance(state, tuple):
        rng.setstate(state)
    else:
        raise CheckpointError(
            f"the checkpoint has a {type(state).__name__} loader RNG state, but the loader's RNG "
            f"is {type(rng).__name__}: resume with the same kind of data loader")


def training_state(
    net: nn.Module,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    epoch: int,
    history: dict[str, Any] | None = None,
    loader: Any = None,
) -> dict[str, Any]:
    """Everything needed to resume training after ``epoch`` epochs, as one dict (with the
    optimizer's and scheduler's class names, so that a resume into another kind is refused)."""
    return {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "rng": rng_state(),
        "loader_rng": loader_rng_state(loader) if loader is not None else None,
        "epoch": int(epoch),
        "history": dict(history or {}),
    }


def restore_training_state(
    path: str | os.PathLike[str],
    net: nn.Module,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    loader: Any = None,
    map_location: str | torch.device | None = "cpu",
    check_state: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Load a :func:`training_state` checkpoint into ``net``/``optimizer``/``scheduler``, the
    RNGs and ``loader``'s RNG; return ``(epochs done, history dict)``.

    Everything is checked before anything is changed: the model's keys and shapes, the
    optimizer's class and parameter groups, the scheduler's class, and whatever
    ``check_state(checkpoint dict)`` checks (e.g. a loop's history; it raises to refuse).
    """
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    missing = {"model", "rng", "epoch"} - set(state)
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (no {sorted(missing)})")
    # check everything before changing anything
    if check_state is not None:
        check_state(state)
    _check_model_state(net, state["model"], f"checkpoint {path}")
    saved_optimizer = state.get("optimizer") if optimizer is not None else None
    if saved_optimizer is not None:
        _check_optimizer(optimizer, saved_optimizer, state.get("optimizer_class"), path)
    saved_scheduler = state.get("scheduler") if scheduler is not None else None
    _check_class("scheduler", scheduler, state.get("scheduler_class") if saved_scheduler else None, path)
    if saved_optimizer is not None:
        _load_optimizer(optimizer, saved_optimizer, path)
    net.load_state_dict(state["model"])
    if saved_scheduler is not None:
        scheduler.load_state_dict(saved_scheduler)
    set_rng_state(state["rng"])
    if loader is not None:
        set_loader_rng_state(loader, state.get("loader_rng"))
    return int(state["epoch"]), dict(state.get("history") or {})


def _check_class(what: str, obj: Any, saved_class: str | None, path: Path) -> None:
    own = type(obj).__name__
    if saved_class is not None and saved_class != own:
        raise CheckpointError(
            f"{path} holds the state of the {what} {saved_class}, but this run's {what} is {own}: "
            f"resume with {saved_class}, or start afresh (resume=False or another checkpoint_path)")


def _check_optimizer(optimizer: Any, saved: dict[str, Any], saved_class: str | None, path: Path) -> None:
    _check_class("optimizer", optimizer, saved_class, path)
    if not hasattr(optimizer, "param_groups"):  # not a torch.optim optimizer
        return
    saved_groups = [len(group["params"]) for group in saved.get("param_groups", [])]
    own_groups = [len(group["params"]) for group in optimizer.param_groups]
    if saved_groups != own_groups:
        raise CheckpointError(
            f"the optimizer in {path} has {len(saved_groups)} parameter group(s) of "
            f"{saved_groups} tensors, this run's {type(optimizer).__name__} has "
            f"{len(own_groups)} of {own_groups}: build the optimizer with the same parameter groups")


def _load_optimizer(optimizer: Any, saved: dict[str, Any], path: Path) -> None:
    """Load, then make sure every hyperparameter the optimizer needs is there (a checkpoint
    without the class name could be of another optimizer); undo the load if not."""
    before = copy.deepcopy(optimizer.state_dict())
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError) as err:
        optimizer.load_state_dict(before)
        raise CheckpointError(f"the optimizer state in {path} does not fit this optimizer: {err}") from err
    lacking = sorted({key for group in getattr(optimizer, "param_groups", [])
                      for key in getattr(optimizer, "defaults", {}) if key not in group})
    if lacking:
        optimizer.load_state_dict(before)
        raise CheckpointError(
            f"the optimizer state in {path} lacks {lacking}, which this run's "
            f"{type(optimizer).__name__} needs: the checkpoint is of another kind of optimizer")


def resume_if_requested(
    checkpoint_path: str | os.PathLike[str] | None,
    resume: bool,
    net: nn.Module,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    loader: Any = None,
    map_location: str | torch.device | None = "cpu",
    check_state: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """A training loop's start: :func:`check_checkpoint_path` (so that an unwritable path fails
    now, not after the first epoch), then :func:`restore_training_state` if ``resume`` is true
    and the checkpoint exists (a first run with ``resume=True`` starts fresh); otherwise
    ``(0, {})``.

    ``resume=True`` without a ``checkpoint_path`` raises ``ValueError``.
    """
    if checkpoint_path is not None:
        check_checkpoint_path(checkpoint_path)
    if not resume:
        return 0, {}
    if checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    if not Path(checkpoint_path).exists():
        return 0, {}
    return restore_training_state(checkpoint_path, net, optimizer, scheduler, loader=loader,
                                  map_location=map_location, check_state=check_state)
