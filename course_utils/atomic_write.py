"""Write a file all or nothing, and say clearly why a write failed.

Every file the course writes (checkpoints, downloaded data, the decoded CIFAR-10 cache, result
lines, plots, executed notebooks and reports, the website, benchmark results) goes through
:func:`atomic_write`:

* the data goes to a new temporary file beside the target (``.NAME.<8 hex digits>.tmp``,
  created with ``O_EXCL`` and the usual permissions, or the target's own if it exists), is
  flushed and ``fsync``-ed, then renamed over the target, and the folder is fsynced. A reader
  sees the old file or the new one, never half of one; two writers never mix (the last wins).
* when anything fails, the temporary is removed and the old file is left as it was. A failure
  of the write itself (a full disk, a read-only file system, no permission, a file-size limit)
  raises a :class:`WriteError` that names the file, the cause in words and what to do, with the
  ``OSError`` chained. Callers pass their own subclass (``error=``), e.g. a checkpoint error
  that is also a :class:`WriteError`. Anything else raised inside the ``with`` block (an
  interrupted download, a wrong checksum) propagates unchanged.
* temporaries that killed writers left behind are removed by the next write of that target,
  once untouched for :data:`STALE_TEMPORARY_SECONDS` (:func:`remove_stale_temporaries`).

Introduced in ``notebooks/04_softmax_regression.ipynb`` (through ``checkpoints.py``).
Copy alone.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with atomic_write(folder / "notes.txt", "w") as f:
...     _ = f.write("all or nothing\\n")
>>> (folder / "notes.txt").read_text()
'all or nothing\\n'
>>> try:
...     with atomic_write(folder / "notes.txt", "w") as f:
...         _ = f.write("half")
...         raise KeyboardInterrupt  # the writer stops half-way
... except KeyboardInterrupt:
...     pass
>>> (folder / "notes.txt").read_text(), sorted(p.name for p in folder.iterdir())
('all or nothing\\n', ['notes.txt'])
>>> print(WriteError.from_os_error("/course/run.pt", OSError(errno.ENOSPC, "No space left on device"),
...                                existed=True))
cannot write /course/run.pt: no space left on the device (ENOSPC). Free some space on the disk that
holds /course, or write to another folder. The previous run.pt is unchanged.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, overload

__all__ = [
    "WriteError",
    "STALE_TEMPORARY_SECONDS",
    "WRITE_ERRNOS",
    "atomic_write",
    "write_bytes",
    "write_text",
    "remove_stale_temporaries",
]

STALE_TEMPORARY_SECONDS = 3600.0
"""A temporary file untouched for this long was left by a killed writer (a live one keeps writing)."""

_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.EFBIG: "file too large for a file-size limit (`ulimit -f`) or for the file system",
}
WRITE_ERRNOS = frozenset(_CAUSES)
"""The ``errno`` values that mean "this place cannot take the file" (full, read-only, forbidden, too large)."""

_E = TypeVar("_E", bound="WriteError")


class WriteError(RuntimeError):
    """A file could not be written. ``path`` is the file; the ``OSError`` is ``__cause__``.

    Writers raise a subclass of their own (``CheckpointWriteError``, ``DataWriteError``, ...),
    so ``except WriteError`` catches every failed write of the course.
    """

    path: Path | None = None

    @classmethod
    def from_os_error(cls: type[_E], path: str | os.PathLike[str], err: OSError, *,
                      elsewhere: str | None = None, existed: bool | None = None,
                      doing: str | None = None) -> _E:
        """The error for ``err`` while writing ``path``: the path, the cause in words, what to do.

        ``elsewhere`` says how to write somewhere else (``"set COURSE_DATA to a folder on another
        disk"``; by default ``"write to another folder"``); ``existed`` whether a previous version
        of the file was there and is kept (``None``: say nothing about it); ``doing`` what the
        write was part of (``"putting the members of URL in place"``). Raise it ``from err``.
        """
        path = Path(path)
        cause = _CAUSES.get(err.errno or 0) or (err.strerror or str(err) or type(err).__name__)
        code = errno.errorcode.get(err.errno or 0)
        if code:
            cause += f" ({code})"
        elsewhere = (elsewhere or "write to another folder").rstrip(".")
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            advice = f"Free some space on the disk that holds {path.parent}, or {elsewhere}"
        elif err.errno == errno.EFBIG:
            advice = f"Raise the file-size limit (`ulimit -f unlimited`), or {elsewhere}"
        else:
            advice = elsewhere[:1].upper() + elsewhere[1:]
        kept = {True: f" The previous {path.name} is unchanged.", False: " Nothing was written.",
                None: ""}[existed]
        during = f" ({doing})" if doing else ""
        error = cls(f"cannot write {path}{during}: {cause}. {advice}.{kept}")
        error.path = path
        return error


class _RecordingFile(io.FileIO):
    """A raw file that remembers the first ``OSError`` of a write (libraries such as
    ``torch.save`` replace it with an error of their own)."""

    error: OSError | None = None

    def write(self, b: Any, /) -> int:
        try:
            return super().write(b)
        except OSError as err:
            if self.error is None:
                self.error = err
            raise


def _temporary_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


def remove_stale_temporaries(path: str | os.PathLike[str], suffix: str = ".tmp",
                             max_age: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
    """Delete the temporaries of ``path`` that killed writers left behind; return them.

    Only regular files named like :func:`atomic_write`'s temporaries for this very ``path``
    (``.<name>.<8 letters, digits or _><suffix>``, or ``.<name><suffix>`` of earlier versions)
    count, and only when unmodified for ``max_age`` seconds: a live writer keeps writing, so
    another process's temporary is never removed. Until then a stale one is harmless: nothing
    reads it. Errors (a folder that cannot be listed, a file removed meanwhile) are ignored.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}") + r"(\.[a-z0-9_]{8})?" + re.escape(suffix))
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            if (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                    and now - entry.stat(follow_symlinks=False).st_mtime > max_age):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile (another cleaner) or not ours to delete
            continue
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without folder fsync
        pass
    finally:
        os.close(fd)


@overload
def atomic_write(path: str | os.PathLike[str], mode: Literal["wb"] = "wb", *, encoding: None = None,
                 suffix: str = ".tmp", error: type[WriteError] = WriteError, elsewhere: str | None = None
                 ) -> AbstractContextManager[IO[bytes]]: ...
@overload
def atomic_write(path: str | os.PathLike[str], mode: Literal["w"], *, encoding: str | None = "utf-8",
                 suffix: str = ".tmp", error: type[WriteError] = WriteError, elsewhere: str | None = None
                 ) -> AbstractContextManager[IO[str]]: ...
def atomic_write(path: str | os.PathLike[str], mode: Literal["wb", "w"] = "wb", *,
                 encoding: str | None = None, suffix: str = ".tmp", error: type[WriteError] = WriteError,
                 elsewhere: str | None = None) -> AbstractContextManager[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"wb"`` or ``"w"``, text in
    ``encoding``, UTF-8 by default); when the ``with`` block ends normally, flush and fsync it
    and rename it over ``path``.

    On any exception the temporary is removed and ``path`` is left as it was. An ``OSError``
    of the file system (creating the folder or the temporary, writing, fsync, rename; also one
    that a library such as ``torch.save`` turned into an error of its own) becomes ``error``
    (a :class:`WriteError` subclass) naming ``path``, the cause and what to do (free space, or
    ``elsewhere``: how to write to another place), with the ``OSError`` chained. Other
    exceptions propagate unchanged. Stale temporaries of ``path`` (same ``suffix``) are removed first.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    if not issubclass(error, WriteError):
        raise TypeError(f"error must be a subclass of WriteError, got {error!r}")
    return _atomic_write(Path(path), mode == "w", encoding or "utf-8", suffix, error, elsewhere)


@contextmanager
def _atomic_write(path: Path, text: bool, encoding: str, suffix: str, error: type[WriteError],
                  elsewhere: str | None) -> Iterator[IO[Any]]:
    existed = path.is_file()

    def failed(err: OSError) -> WriteError:
        return error.from_os_error(path, err, elsewhere=elsewhere, existed=existed)

    remove_stale_temporaries(path, suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = _temporary_name(path, suffix)
            try:
                raw = _RecordingFile(tmp, "xb")  # O_CREAT | O_EXCL, mode 0o666 less the umask
                break
            except FileExistsError:  # pragma: no cover - 1 in 4 billion
                continue
    except OSError as err:
        raise failed(err) from err
    handle: IO[Any] = io.BufferedWriter(raw)
    if text:
        handle = io.TextIOWrapper(handle, encoding=encoding, newline="")
    try:
        try:
            yield handle
        except BaseException as exc:
            try:
                handle.close()
            except OSError:  # flushing the rest failed too: the first error is the one to report
                pass
            if raw.error is not None:  # the write itself failed, whatever the writer made of it
                raise failed(raw.error) from raw.error
            raise exc
        try:
            handle.flush()
            os.fsync(raw.fileno())
            handle.close()
            if existed:
                try:
                    os.chmod(tmp, path.stat().st_mode & 0o7777)
                except OSError:  # the old file went away meanwhile: keep the usual mode
                    pass
            os.replace(tmp, path)
        except OSError as err:
            cause = raw.error or err
            raise failed(cause) from cause
        _fsync_folder(path.parent)
    finally:
        if not handle.closed:
            try:
                handle.close()
            except OSError:
                pass
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, error: type[WriteError] = WriteError,
                elsewhere: str | None = None) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; return ``path``."""
    with atomic_write(path, "wb", error=error, elsewhere=elsewhere) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
               error: type[WriteError] = WriteError, elsewhere: str | None = None) -> Path:
    """Write ``text`` to ``path`` with :func:`atomic_write` (no newline translation); return ``path``."""
    with atomic_write(path, "w", encoding=encoding, error=error, elsewhere=elsewhere) as handle:
        handle.write(text)
    return Path(path)
