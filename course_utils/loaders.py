"""Fast minibatches from in-memory tensors, the standard PyTorch way.

:func:`tensor_loader` returns a real :class:`torch.utils.data.DataLoader`, but instead of
fetching one example at a time and collating (slow Python per example), it hands the dataset
a whole list of indices per batch: ``TensorDataset.__getitem__`` then does a single indexing
operation per tensor. A ``transform`` runs once per batch (e.g. uint8 → float, resize).

Introduced in ``notebooks/03_linear_regression.ipynb``.
Copy with: ``cores.py``.

>>> X, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
>>> [xb.shape[0] for xb, yb in load_array((X, y), batch_size=2, is_train=False)]
[2, 2, 1]
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

if __package__:  # part of course_utils (or of your own package)
    from .cores import usable_cores
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from cores import usable_cores

__all__ = ["tensor_loader", "load_array", "safe_num_workers"]

BatchTransform = Callable[[tuple[torch.Tensor, ...]], Any]


def _as_tuple(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(batch)


def safe_num_workers(requested: int | None = None) -> int:
    """A worker count for DataLoader that cannot hurt.

    ``0`` inside Jupyter/IPython and on Windows (worker processes there need picklable,
    importable code and often hang or crash in notebooks); otherwise ``requested`` capped at the
    number of CPU cores this process may use (``cores.usable_cores``: affinity and container quota;
    ``requested=None`` means 0: in-memory tensors rarely need workers).
    """
    if requested is not None and requested < 0:
        raise ValueError(f"num_workers must be >= 0, got {requested}")
    if "ipykernel" in sys.modules or sys.platform.startswith("win"):
        return 0
    return min(requested or 0, usable_cores())


def tensor_loader(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    transform: BatchTransform | None = None,
    generator: torch.Generator | None = None,
    sampler: Sampler[int] | None = None,
    num_workers: int | None = None,
) -> DataLoader:
    """A DataLoader that yields batches of ``tensors`` by indexing, one transform per batch.

    ``sampler`` (e.g. a ``DistributedSampler``) replaces the default sequential/random order.
    """
    if not tensors:
        raise ValueError("tensor_loader needs at least one tensor")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = tensors[0].shape[0] if tensors[0].dim() else 0
    if n == 0:
        raise ValueError("tensor_loader got an empty dataset (first dimension is 0)")
    for i, t in enumerate(tensors):
        if t.dim() == 0 or t.shape[0] != n:
            raise ValueError(
                f"all tensors need the same first dimension; tensor 0 has {n} rows, "
                f"tensor {i} has shape {tuple(t.shape)}"
            )
    dataset = TensorDataset(*tensors)
    if sampler is None:
        sampler = (
            RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        )
    batches = BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    collate: Callable[[Any], Any] = transform or _as_tuple  # gets what dataset[indices] returns
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        collate_fn=collate,
        num_workers=safe_num_workers(num_workers),
    )


def load_array(
    data_arrays: Sequence[torch.Tensor],
    batch_size: int,
    is_train: bool = True,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """d2l's ``load_array``: minibatches of ``data_arrays``, shuffled when ``is_train``."""
    return tensor_loader(*data_arrays, batch_size=batch_size, shuffle=is_train, generator=generator)
