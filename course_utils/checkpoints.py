"""Training checkpoints that are safe to write, safe to load and resume exactly.

* :func:`save_checkpoint` writes to a temporary file and renames it into place, so a crash
  mid-write never leaves a half-written checkpoint where a good one was.
* :func:`load_checkpoint` uses ``torch.load(weights_only=True)``: tensors and plain data only,
  never code. A file that would need arbitrary unpickling is refused.
* :func:`training_state` / :func:`restore_training_state` bundle everything a loop needs to
  continue as if it had never stopped: model, optimizer, scheduler, the global RNGs (torch,
  CUDA, Python, NumPy), the data loader's own shuffling RNG, the epoch and the history.
* :func:`resume_if_requested` is what a loop does at its start: restore when asked to and a
  checkpoint exists, otherwise start fresh.
* :func:`load_model_state` names the mismatched keys when a checkpoint is from another model.

The training loops in :mod:`course_utils.training`, :mod:`course_utils.language_model` and
:mod:`course_utils.nmt` use this through their ``checkpoint_path=`` / ``resume=`` arguments.
Copy alone: needs torch only (NumPy's RNG is saved when NumPy is installed).

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

import os
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
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


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` to a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
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
    net.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """The global random states (torch, CUDA, Python, NumPy) as plain data and tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return state
    name, key, pos, has_gauss, cached = np.random.get_state()
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
    """Everything needed to resume training after ``epoch`` epochs, as one dict."""
    return {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
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
) -> tuple[int, dict[str, Any]]:
    """Load a :func:`training_state` checkpoint into ``net``/``optimizer``/``scheduler``, the
    RNGs and ``loader``'s RNG; return ``(epochs done, history dict)``."""
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    missing = {"model", "rng", "epoch"} - set(state)
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (no {sorted(missing)})")
    load_model_state(net, state["model"], f"checkpoint {path}")
    if optimizer is not None and state.get("optimizer") is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"the optimizer state in {path} does not fit this optimizer: {err}") from err
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if loader is not None:
        set_loader_rng_state(loader, state.get("loader_rng"))
    return int(state["epoch"]), dict(state.get("history") or {})


def resume_if_requested(
    checkpoint_path: str | os.PathLike[str] | None,
    resume: bool,
    net: nn.Module,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    loader: Any = None,
    map_location: str | torch.device | None = "cpu",
) -> tuple[int, dict[str, Any]]:
    """A training loop's start: :func:`restore_training_state` if ``resume`` is true and the
    checkpoint exists (a first run with ``resume=True`` starts fresh); otherwise ``(0, {})``.

    ``resume=True`` without a ``checkpoint_path`` raises ``ValueError``.
    """
    if not resume:
        return 0, {}
    if checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    if not Path(checkpoint_path).exists():
        return 0, {}
    return restore_training_state(checkpoint_path, net, optimizer, scheduler, loader=loader,
                                  map_location=map_location)
