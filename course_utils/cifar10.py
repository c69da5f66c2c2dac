"""The CIFAR-10 subset shipped in ``data/cifar-10`` (2,000 train + 1,000 test images).

The files use the original *binary version* record layout (1 label byte, then 1,024 red,
1,024 green and 1,024 blue bytes per image), gzip-compressed. This is a subset: see
``data/cifar-10/README.md`` for exactly which images and why.

Introduced in ``notebooks/13_resnet_densenet.ipynb``.
Copy with: ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``image_batches.py``,
``cores.py``, ``settings.py``.

>>> train_iter, test_iter = cifar10_loaders(128, augment=True)
>>> X, y = next(iter(train_iter))
>>> X.shape
torch.Size([128, 3, 32, 32])
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
from torch.utils.data import DataLoader

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import MAX_DECOMPRESSED_BYTES, DataFileError, ensure_file, read_data_bytes
    from .image_batches import ImageBatchTransform
    from .loaders import tensor_loader
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from datafiles import MAX_DECOMPRESSED_BYTES, DataFileError, ensure_file, read_data_bytes
    from image_batches import ImageBatchTransform
    from loaders import tensor_loader

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "read_cifar_records",
           "load_cifar10", "cifar10_loaders"]

CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                    "frog", "horse", "ship", "truck")
# Per-channel statistics of the full CIFAR-10 training set (the usual normalisation constants).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_RECORD = 1 + 3 * 32 * 32


def read_cifar_records(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_DECOMPRESSED_BYTES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse a (gzip-compressed) CIFAR-10 binary batch into uint8 images and int64 labels.

    Reading (with the ``max_bytes`` cap on the decompressed size) is
    :func:`~course_utils.datafiles.read_data_bytes`; a bad file raises ``DataFileError``.
    """
    raw = read_data_bytes(path, max_bytes=max_bytes)
    if not raw or len(raw) % _RECORD:
        raise DataFileError(
            f"{path} has {len(raw)} bytes, not a whole number of {_RECORD}-byte CIFAR-10 records"
        )
    records = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].long()
    if int(labels.max()) > 9:
        raise DataFileError(f"{path} holds a label above 9: not CIFAR-10 records")
    return records[:, 1:].reshape(-1, 3, 32, 32).clone(), labels


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> tuple[torch.Tensor, torch.Tensor]:
    return read_cifar_records(path)


def load_cifar10(
    train: bool = True, root: str | os.PathLike[str] | None = None, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 ``(N, 3, 32, 32)``) and labels of the shipped subset (checksum-verified)."""
    name = "data_batch_1_first2000.bin.gz" if train else "test_batch_first1000.bin.gz"
    path = ensure_file(f"cifar-10/{name}", root)
    X, y = _cached(str(path), path.stat().st_mtime)
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        X, y = X[:limit], y[:limit]
    return X, y


def cifar10_loaders(
    batch_size: int,
    *,
    augment: bool = True,
    normalize: bool = True,
    resize: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    root: str | os.PathLike[str] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Train/test loaders; ``augment`` adds random crops (padding 4) and flips to training only."""
    X_train, y_train = load_cifar10(True, root, n_train)
    X_test, y_test = load_cifar10(False, root, n_test)
    stats = (CIFAR10_MEAN, CIFAR10_STD) if normalize else (None, None)
    train_t = ImageBatchTransform(resize, *stats, crop_padding=4 if augment else 0, hflip=augment,
                                  generator=generator)
    test_t = ImageBatchTransform(resize, *stats)
    train = tensor_loader(X_train, y_train, batch_size=batch_size, shuffle=True,
                          transform=train_t, generator=generator)
    test = tensor_loader(X_test, y_test, batch_size=batch_size, transform=test_t)
    return train, test
