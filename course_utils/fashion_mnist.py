"""Fashion-MNIST from the original IDX files in ``data/fashion-mnist`` (no network needed).

* :func:`load_fashion_mnist` → ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``.
* :func:`fashion_mnist_loaders` → train/test DataLoaders of float batches ``(B, 1, H, W)`` in
  [0, 1], converted (and optionally resized and normalized) once per batch, not per image.

Introduced in ``notebooks/04_softmax_regression.ipynb``.
Copy with: ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``image_batches.py``,
``cores.py``, ``settings.py``.

>>> train_iter, test_iter = fashion_mnist_loaders(256, n_train=512, n_test=256)
>>> X, y = next(iter(train_iter))
>>> X.shape, X.dtype, text_labels(y[:2].tolist()) is not None
(torch.Size([256, 1, 28, 28]), torch.float32, True)
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import torch
from torch.utils.data import DataLoader, Sampler

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import MAX_DECOMPRESSED_BYTES, DataFileError, ensure_file, read_data_bytes
    from .image_batches import ImageBatchTransform
    from .loaders import tensor_loader
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from datafiles import MAX_DECOMPRESSED_BYTES, DataFileError, ensure_file, read_data_bytes
    from image_batches import ImageBatchTransform
    from loaders import tensor_loader

__all__ = [
    "FASHION_MNIST_CLASSES",
    "text_labels",
    "read_idx",
    "load_fashion_mnist",
    "fashion_mnist_loaders",
]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

_IDX_DTYPES = {0x08: (torch.uint8, 1), 0x09: (torch.int8, 1), 0x0B: (torch.int16, 2),
               0x0C: (torch.int32, 4), 0x0D: (torch.float32, 4), 0x0E: (torch.float64, 8)}


def text_labels(labels: Iterable[int] | torch.Tensor) -> list[str]:
    """Class names for numeric labels, e.g. ``text_labels([0, 9]) == ['t-shirt', 'ankle boot']``."""
    if isinstance(labels, torch.Tensor):
        labels = labels.reshape(-1).tolist()
    names = []
    for label in labels:
        index = int(label)
        if not 0 <= index < len(FASHION_MNIST_CLASSES):
            raise ValueError(f"Fashion-MNIST labels are 0-9, got {label!r}")
        names.append(FASHION_MNIST_CLASSES[index])
    return names


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> torch.Tensor:
    """Parse an IDX file (optionally gzip-compressed) into a tensor.

    Raises :class:`~course_utils.datafiles.DataFileError` naming the file when it is missing,
    not valid gzip, truncated, larger than ``max_bytes`` once decompressed, or has a bad IDX
    header (reading is :func:`~course_utils.datafiles.read_data_bytes`).
    """
    path = Path(path)
    raw = read_data_bytes(path, max_bytes=max_bytes)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFileError(f"{path} does not start with an IDX magic number")
    dtype, itemsize = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: IDX header is truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for d in dims:
        count *= d
    expected = header + count * itemsize
    if len(raw) != expected:
        raise DataFileError(
            f"{path}: IDX header promises {dims} ({expected} bytes) but the file has "
            f"{len(raw)} bytes (truncated or corrupt)"
        )
    data = torch.frombuffer(bytearray(raw[header:]), dtype=dtype)
    if itemsize > 1:  # IDX is big-endian
        data = data.view(torch.uint8).reshape(-1, itemsize).flip(1).reshape(-1).view(dtype)
    return data.reshape(dims)


@lru_cache(maxsize=8)
def _load_cached(images: str, labels: str, mtimes: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    X = read_idx(images)
    y = read_idx(labels)
    if X.dim() != 3 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise DataFileError(
            f"{images} and {labels} do not fit together: images {tuple(X.shape)}, "
            f"labels {tuple(y.shape)}"
        )
    if y.numel() and int(y.max()) >= len(FASHION_MNIST_CLASSES):
        raise DataFileError(f"{labels} holds a label above 9")
    return X, y.long()


def load_fashion_mnist(
    train: bool = True,
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8, ``(N, 28, 28)``) and labels (int64, ``(N,)``) of one split.

    Files are checksum-verified on every call (≈0.1 s); parsing is cached per process.
    ``limit`` keeps the first ``limit`` examples (the files are in shuffled order).
    """
    prefix = "train" if train else "t10k"
    images = ensure_file(f"fashion-mnist/{prefix}-images-idx3-ubyte.gz", root)
    labels = ensure_file(f"fashion-mnist/{prefix}-labels-idx1-ubyte.gz", root)
    X, y = _load_cached(str(images), str(labels), (images.stat().st_mtime, labels.stat().st_mtime))
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        X, y = X[:limit], y[:limit]
    return X, y


def fashion_mnist_loaders(
    batch_size: int,
    *,
    resize: int | tuple[int, int] | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    normalize: bool = False,
    root: str | os.PathLike[str] | None = None,
    generator: torch.Generator | None = None,
    train_sampler: Sampler[int] | None = None,
    num_workers: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled) and test DataLoaders of Fashion-MNIST, batched by indexing.

    ``n_train``/``n_test`` keep the first examples of each split (smoke mode uses this).
    ``normalize`` standardizes with the training mean/std (0.2860, 0.3530).
    """
    X_train, y_train = load_fashion_mnist(True, root, n_train)
    X_test, y_test = load_fashion_mnist(False, root, n_test)
    transform = ImageBatchTransform(
        resize, *(((0.2860,), (0.3530,)) if normalize else (None, None))
    )
    train = tensor_loader(
        X_train, y_train, batch_size=batch_size, shuffle=True, transform=transform,
        generator=generator, sampler=train_sampler, num_workers=num_workers,
    )
    test = tensor_loader(
        X_test, y_test, batch_size=batch_size, shuffle=False, transform=transform,
        num_workers=num_workers,
    )
    return train, test

