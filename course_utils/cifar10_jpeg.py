"""All 60,000 CIFAR-10 images from ``data/cifar-10-jpeg``, decoded once into a cached tensor file.

The archive holds every image as a small JPEG (a lossy re-encoding, see the folder's README);
decoding 60,000 of them takes a while, so :func:`load_cifar10_jpeg` does it once and keeps the
result as one uint8 tensor file (≈ 184 MB, by default ``~/.cache/course_utils/``). The file
records the archive's SHA-256 and its own pixels' SHA-256: when either no longer matches (a new
archive, a damaged cache) it is rebuilt, with a warning that says why. It is written to a
temporary name and renamed into place (``atomic_write.py``), so an interrupted build leaves
nothing half-written. A cache folder that cannot take the file (read-only, full) is not fatal:
the decoded tensors are used from memory, with one :class:`CacheWarning` naming the folder. A
corrupt or missing JPEG raises :class:`~course_utils.datafiles.DataFileError` naming the member.
Training images come in CIFAR-10's original order (``train_original_order.csv``); the test set
starts with its first 1,000 images in their original order, then the rest by class and rank.
Online users who want the original bytes: ``torchvision.datasets.CIFAR10(download=True)``.

Introduced in ``notebooks/24_cifar10_ladder.ipynb``.
Copy with: ``atomic_write.py``, ``datafiles.py``, ``loaders.py``, ``image_batches.py``,
``cores.py``, ``settings.py``.

>>> parse_member_name("CIFAR-10-images/train/cat/0007.jpg")
('train', 3, 7)
>>> parse_member_name("CIFAR-10-images/README.md") is None
True
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tarfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

if __package__:  # part of course_utils (or of your own package)
    from .atomic_write import WriteError, atomic_write
    from .datafiles import DataFileError, ensure_file, sha256sum
    from .image_batches import ImageBatchTransform
    from .loaders import tensor_loader
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from atomic_write import WriteError, atomic_write
    from datafiles import DataFileError, ensure_file, sha256sum
    from image_batches import ImageBatchTransform
    from loaders import tensor_loader

__all__ = ["CIFAR10_JPEG_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "ARCHIVE", "TRAIN_ORDER", "TEST_ORDER",
           "CacheWarning", "CacheWriteError",
           "parse_member_name", "decode_archive", "default_cache_path", "build_cache", "decoded_tensors",
           "load_cifar10_jpeg", "cifar10_jpeg_loaders"]

CIFAR10_JPEG_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                         "frog", "horse", "ship", "truck")
CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)  # per channel, of the training images in [0, 1]
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
ARCHIVE = "cifar-10-jpeg/cifar-10-images-jpeg.tar.gz"
TRAIN_ORDER = "cifar-10-jpeg/train_original_order.csv"
TEST_ORDER = "cifar-10-jpeg/test_first1000_order.csv"
_COUNTS = {"train": 5000, "test": 1000}  # images per class
_MEMBER = re.compile(r"CIFAR-10-images/(train|test)/([a-z]+)/(\d{4})\.jpg")
_MAX_MEMBER_BYTES = 1 << 20
_FORMAT = 1
Key = tuple[str, int, int]  # (split, label, rank within the class)


class CacheWarning(UserWarning):
    """The decoded-image cache was missing, stale or unreadable and is being rebuilt, or it
    could not be written (the images are then used from memory)."""


class CacheWriteError(DataFileError, WriteError):
    """The decoded-image cache could not be written (no space, read-only, too large)."""


def parse_member_name(name: str) -> Key | None:
    """``(split, label, rank)`` of an image member of the archive, or ``None`` for other names."""
    match = _MEMBER.fullmatch(name)
    if match is None or match[2] not in CIFAR10_JPEG_CLASSES:
        return None
    return match[1], CIFAR10_JPEG_CLASSES.index(match[2]), int(match[3])


def _read_order(path: Path) -> list[Key]:
    keys = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            key = parse_member_name(row.get("jpeg_path") or "")
            if key is None or int(row["index"]) != i or int(row["label"]) != key[1]:
                raise DataFileError(f"{path}: row {i} is not 'index,label,class,jpeg_path' of an image: {row}")
            keys.append(key)
    return keys


def _read_members(archive: Path) -> dict[Key, bytes]:
    """Every image member's bytes, read in memory one by one (no extraction to disk)."""
    found: dict[Key, bytes] = {}
    try:
        with tarfile.open(archive, "r|gz") as tf:
            for info in tf:
                key = parse_member_name(info.name)
                if key is None:
                    continue
                if not info.isreg():
                    raise DataFileError(f"{archive}: member {info.name} is not a regular file")
                if info.size > _MAX_MEMBER_BYTES:
                    raise DataFileError(f"{archive}: member {info.name} has {info.size} bytes, "
                                        f"more than a 32x32 JPEG can ({_MAX_MEMBER_BYTES})")
                if key in found:
                    raise DataFileError(f"{archive}: member {info.name} occurs twice")
                f = tf.extractfile(info)
                assert f is not None  # a regular file
                found[key] = f.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataFileError(f"{archive} is not a readable .tar.gz archive: {err}") from err
    return found


def _member(key: Key) -> str:
    split, label, rank = key
    return f"CIFAR-10-images/{split}/{CIFAR10_JPEG_CLASSES[label]}/{rank:04d}.jpg"


def _decode(data: bytes, archive: Path, key: Key) -> torch.Tensor:
    import matplotlib.image  # decodes JPEG through Pillow, a matplotlib dependency

    try:
        image = matplotlib.image.imread(io.BytesIO(data), format="jpg")
    except Exception as err:  # Pillow raises several types for a bad file
        raise DataFileError(f"{archive}: member {_member(key)} is not a readable JPEG: {err}") from err
    if image.shape != (32, 32, 3) or image.dtype.name != "uint8":
        raise DataFileError(f"{archive}: member {_member(key)} decodes to {image.dtype.name} "
                            f"{image.shape}, not a 32x32 RGB image")
    return torch.from_numpy(image.copy()).permute(2, 0, 1)


def decode_archive(archive: str | os.PathLike[str], train_order: str | os.PathLike[str],
                   test_order: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Decode every image of the archive: ``X_train`` (50000, 3, 32, 32) uint8, ``y_train``,
    ``X_test`` (10000, 3, 32, 32), ``y_test`` (int64), in the orders described above.

    A missing, duplicated, oversized or undecodable member raises ``DataFileError`` naming it.
    """
    archive = Path(archive)
    members = _read_members(archive)
    train_keys = _read_order(Path(train_order))
    first_test = _read_order(Path(test_order))
    expected = {(split, label, rank) for split, n in _COUNTS.items()
                for label in range(10) for rank in range(n)}
    missing = sorted(expected - members.keys())
    if missing:
        raise DataFileError(f"{archive} lacks {len(missing)} image(s), e.g. member {_member(missing[0])}")
    if len(set(train_keys)) != len(train_keys) or set(train_keys) != {k for k in expected if k[0] == "train"}:
        raise DataFileError(f"{train_order} does not list each of the 50,000 training images once")
    first = set(first_test)
    test_keys = first_test + sorted(k for k in expected if k[0] == "test" and k not in first)
    out = {}
    for split, keys in (("train", train_keys), ("test", test_keys)):
        out[f"X_{split}"] = torch.stack([_decode(members[k], archive, k) for k in keys])
        out[f"y_{split}"] = torch.tensor([k[1] for k in keys], dtype=torch.int64)
    return out


def _content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in ("X_train", "y_train", "X_test", "y_test"):
        h.update(name.encode())
        h.update(tensors[name].contiguous().numpy().data)
    return h.hexdigest()


def default_cache_path() -> Path:
    """Where the decoded images are cached: ``~/.cache/course_utils/cifar10_jpeg_uint8.pt``."""
    return Path.home() / ".cache" / "course_utils" / "cifar10_jpeg_uint8.pt"


def build_cache(archive: str | os.PathLike[str], train_order: str | os.PathLike[str],
                test_order: str | os.PathLike[str], cache_path: str | os.PathLike[str]) -> Path:
    """Decode the archive and write the cache file atomically (temporary file, then rename).

    A cache file that cannot be written raises :class:`CacheWriteError` (the previous file, if
    any, is kept); :func:`decoded_tensors` turns that into a warning."""
    return _write_cache(_payload(archive, train_order, test_order), Path(cache_path))


def _payload(archive: str | os.PathLike[str], train_order: str | os.PathLike[str],
             test_order: str | os.PathLike[str]) -> dict[str, Any]:
    tensors = decode_archive(archive, train_order, test_order)
    return {"format": _FORMAT, "archive_sha256": sha256sum(archive),
            "content_sha256": _content_sha256(tensors), **tensors}


def _write_cache(payload: dict[str, Any], cache_path: Path) -> Path:
    with atomic_write(cache_path, error=CacheWriteError,
                      elsewhere="pass cache_path= a file on another disk") as handle:
        torch.save(payload, handle)
    return cache_path


def _read_cache(cache_path: Path, archive_sha256: str) -> dict[str, torch.Tensor] | str:
    """The cached tensors, or the reason they cannot be used."""
    if not cache_path.is_file():
        return "it does not exist yet"
    try:
        payload = torch.load(cache_path, weights_only=True)
    except Exception as err:  # a truncated or foreign file
        return f"it is unreadable ({type(err).__name__}: {err})"
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        return "it has an unknown format"
    if payload.get("archive_sha256") != archive_sha256:
        return "it was built from a different archive (stale)"
    n_train, n_test = 10 * _COUNTS["train"], 10 * _COUNTS["test"]
    shapes = {"X_train": (n_train, 3, 32, 32), "y_train": (n_train,), "X_test": (n_test, 3, 32, 32),
              "y_test": (n_test,)}
    for name, shape in shapes.items():
        t = payload.get(name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            return f"its {name} is missing or has the wrong shape"
    if payload.get("content_sha256") != _content_sha256(payload):
        return "its pixels do not match their recorded SHA-256 (damaged)"
    return {name: payload[name] for name in shapes}


def decoded_tensors(archive: str | os.PathLike[str], train_order: str | os.PathLike[str],
                    test_order: str | os.PathLike[str], cache_path: str | os.PathLike[str]
                    ) -> dict[str, torch.Tensor]:
    """The tensors of :func:`decode_archive`, from the cache file, which is (re)built first when
    missing, stale (another archive) or damaged, with a :class:`CacheWarning` saying why.
    Within a process the result is kept in memory until the cache file changes."""
    cache = Path(cache_path)
    stat = cache.stat() if cache.is_file() else None
    stamp = (stat.st_mtime, stat.st_size) if stat else (0.0, -1)
    return _load(str(archive), str(train_order), str(test_order), str(cache), stamp)


@lru_cache(maxsize=2)
def _load(archive: str, train_order: str, test_order: str, cache_path: str,
          stamp: tuple[float, int]) -> dict[str, torch.Tensor]:
    archive_sha = sha256sum(archive)
    cached = _read_cache(Path(cache_path), archive_sha)
    if isinstance(cached, str):
        warnings.warn(f"decoding the CIFAR-10 JPEG archive into {cache_path}, because {cached}; "
                      "this takes a minute once", CacheWarning, stacklevel=4)
        payload = _payload(archive, train_order, test_order)
        names = ("X_train", "y_train", "X_test", "y_test")
        try:
            _write_cache(payload, Path(cache_path))
        except CacheWriteError as err:  # not fatal: use the tensors in memory (kept by lru_cache)
            warnings.warn(f"could not cache the decoded CIFAR-10 images: {err} Using them from "
                          "memory; they will be decoded again in the next process.",
                          CacheWarning, stacklevel=4)
            return {name: payload[name] for name in names}
        cached = _read_cache(Path(cache_path), archive_sha)
        if isinstance(cached, str):  # pragma: no cover - only if the disk lies
            raise DataFileError(f"the cache {cache_path} was just written but {cached}")
    return cached


def load_cifar10_jpeg(
    train: bool = True,
    *,
    root: str | os.PathLike[str] | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 ``(N, 3, 32, 32)``) and int64 labels of the full CIFAR-10 (JPEG) set.

    The archive and order files are checksum-verified (``datafiles.ensure_file``); the decoded
    tensors come from ``cache_path`` (default :func:`default_cache_path`), built when missing,
    stale or damaged. ``limit`` keeps the first ``limit`` images.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    archive = ensure_file(ARCHIVE, root)
    train_order, test_order = ensure_file(TRAIN_ORDER, root), ensure_file(TEST_ORDER, root)
    cache = Path(cache_path) if cache_path is not None else default_cache_path()
    tensors = decoded_tensors(archive, train_order, test_order, cache)
    split = "train" if train else "test"
    X, y = tensors[f"X_{split}"], tensors[f"y_{split}"]
    return (X, y) if limit is None else (X[:limit], y[:limit])


def cifar10_jpeg_loaders(
    batch_size: int,
    *,
    augment: bool = True,
    crop_padding: int = 4,
    n_train: int | None = None,
    n_test: int | None = None,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
    root: str | os.PathLike[str] | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Train/test loaders over the tensors in memory, normalized with ``mean``/``std``.

    ``augment``: random translations (crops of the image zero-padded by ``crop_padding``) and
    left-right flips, done on whole batches (``image_batches``), for training only."""
    X_train, y_train = load_cifar10_jpeg(True, root=root, cache_path=cache_path, limit=n_train)
    X_test, y_test = load_cifar10_jpeg(False, root=root, cache_path=cache_path, limit=n_test)
    train_t = ImageBatchTransform(None, mean, std, crop_padding=crop_padding if augment else 0,
                                  hflip=augment, generator=generator)
    test_t = ImageBatchTransform(None, mean, std)
    train = tensor_loader(X_train, y_train, batch_size=batch_size, shuffle=True, transform=train_t,
                          generator=generator)
    test = tensor_loader(X_test, y_test, batch_size=batch_size, transform=test_t)
    return train, test
