"""Find, verify and (for online users) download the course's data files; read them safely.

The course ships its datasets in the repository's ``data/`` folder, so nothing here needs the
network when you work from a clone. Where the data lives (:func:`data_root`):

1. ``COURSE_DATA=DIR`` if set (a missing ``DIR`` is announced with a warning and created by
   the first download; if even its parent folder is missing, that is an error);
2. else the repository's ``data/``, when this file sits in the course's ``course_utils/``
   package next to ``data/SHA256SUMS``;
3. else ``~/.cache/course_data`` (e.g. when this file was copied into another project).

Every file has a known SHA-256. :func:`ensure_file` returns the path of a verified file:

* present and the checksum matches → its path;
* present but the checksum differs → :class:`ChecksumError` (the file is left alone);
* a folder (or other non-file) where the file should be → :class:`DataFileError` saying so;
* missing and a download URL is known (and ``COURSE_OFFLINE`` is not set) → downloaded over
  HTTPS into a temporary file, verified, and only then renamed into place;
* otherwise → :class:`MissingDataError` naming the file, the checksum and where to put it.

:func:`read_data_bytes` reads a (possibly gzip-compressed) data file with a size cap, and
:func:`safe_extract` unpacks zip and tar archives member by member into a private temporary
folder, refusing anything that could write outside the target (see its docstring). The caps
are the module constants ``MAX_*``; every function takes a keyword to override its cap.

Introduced in ``notebooks/04_softmax_regression.ipynb`` (through ``fashion_mnist.py``; used
directly in ``17_optimizers.ipynb``).
Copy alone.

>>> ensure_file("timemachine/timemachine.txt").name
'timemachine.txt'
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.client
import lzma
import os
import re
import secrets
import shutil
import ssl
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

__all__ = [
    "DataFile",
    "DataFileError",
    "MissingDataError",
    "ChecksumError",
    "DownloadError",
    "ArchiveError",
    "UnsafeArchiveError",
    "ArchiveTooLargeError",
    "DataRootWarning",
    "FILES",
    "DATASETS",
    "MAX_DOWNLOAD_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_RATIO",
    "MAX_ARCHIVE_MEMBERS",
    "STALE_TEMPORARY_SECONDS",
    "data_root",
    "offline_mode",
    "sha256sum",
    "verify",
    "ensure_file",
    "download",
    "read_data_bytes",
    "safe_extract",
    "dataset_status",
]

MAX_DOWNLOAD_BYTES = 1 << 30
"""A download whose size is not known in advance is cut off beyond this (1 GiB)."""
MAX_DECOMPRESSED_BYTES = 1 << 30
""":func:`read_data_bytes` refuses a file that decompresses to more than this (1 GiB)."""
MAX_ARCHIVE_BYTES = 1 << 30
""":func:`safe_extract` refuses an archive that expands to more than this (1 GiB) ..."""
MAX_ARCHIVE_RATIO = 100
"""... or to more than this many times its own size (once past 1 MiB) ..."""
MAX_ARCHIVE_MEMBERS = 100_000
"""... or that has more members than this."""
STALE_TEMPORARY_SECONDS = 3600.0
"""A temporary download file untouched for this long belongs to a killed download."""
_RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class DataFileError(RuntimeError):
    """Base class of every data-file problem raised here."""


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file is not on disk and could not be downloaded."""


class ChecksumError(DataFileError):
    """A file's SHA-256 differs from the expected one."""


class DownloadError(DataFileError):
    """A download failed (offline, HTTP error, timeout, wrong checksum, refused redirect)."""


class ArchiveError(DataFileError):
    """An archive could not be extracted (corrupt, clashing names, ...); nothing was written."""


class UnsafeArchiveError(ArchiveError):
    """An archive member could write outside the target (path, link, device): refused."""


class ArchiveTooLargeError(ArchiveError):
    """An archive expands beyond the size, ratio or member-count cap."""


class DataRootWarning(UserWarning):
    """``COURSE_DATA`` names a folder that does not exist yet (a download will create it)."""


@dataclass(frozen=True)
class DataFile:
    """One data file: where it lives under the data root, its SHA-256, source URL and size."""

    relpath: str
    sha256: str
    url: str | None = None
    note: str = ""
    size: int | None = None


_FMNIST_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
_D2L_URL = "https://d2l-data.s3-accelerate.amazonaws.com/"

FILES: dict[str, DataFile] = {
    f.relpath: f
    for f in [
        DataFile(
            "fashion-mnist/train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            _FMNIST_URL + "train-images-idx3-ubyte.gz",
            size=26421880,
        ),
        DataFile(
            "fashion-mnist/train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            _FMNIST_URL + "train-labels-idx1-ubyte.gz",
            size=29515,
        ),
        DataFile(
            "fashion-mnist/t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            _FMNIST_URL + "t10k-images-idx3-ubyte.gz",
            size=4422102,
        ),
        DataFile(
            "fashion-mnist/t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            _FMNIST_URL + "t10k-labels-idx1-ubyte.gz",
            size=5148,
        ),
        DataFile(
            "timemachine/timemachine.txt",
            "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516",
            _D2L_URL + "timemachine.txt",
            size=178979,
        ),
        DataFile(
            "airfoil/airfoil_self_noise.dat",
            "74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3",
            _D2L_URL + "airfoil_self_noise.dat",
            size=59984,
        ),
        DataFile(
            "fra-eng/fra.txt.gz",
            "3f7ce9b82d57439edff14f487e2ef9fd52ad72757a838857f153fa4668dd6066",
            None,
            "fra.txt (SHA-256 0bb85dbaa1c8…) compressed with `gzip -9 -n`; ships with the repo. "
            "The original is fra-eng/fra.txt inside " + _D2L_URL + "fra-eng.zip",
            size=3411914,
        ),
        DataFile(
            "cifar-10/data_batch_1_first2000.bin.gz",
            "863c58c2db7456dbc725e10903c95baddb6a5151db1001c6fc3ee6f940a1fec3",
            None,
            "a subset of CIFAR-10 made for this course; ships with the repo only",
            size=5662466,
        ),
        DataFile(
            "cifar-10/test_batch_first1000.bin.gz",
            "ca9ff0155579ff50ee9088a939f8d4a4549fe7839762bff24a46965fb4c5be78",
            None,
            "a subset of CIFAR-10 made for this course; ships with the repo only",
            size=2825834,
        ),
        DataFile(
            "cifar-10/batches.meta.txt",
            "2ce042b1e0b48db4bb214408e6414ba18b2731c24af244f2d6c112fddf31af00",
            None,
            "class names of CIFAR-10; ships with the repo only",
            size=60,
        ),
    ]
}

DATASETS: dict[str, list[str]] = {}
for _relpath in FILES:
    DATASETS.setdefault(_relpath.split("/")[0], []).append(_relpath)


# --- settings -------------------------------------------------------------------------------

def data_root() -> Path:
    """The folder holding the datasets (the rules are in the module docstring).

    Raises ``ValueError`` when ``COURSE_DATA`` names a file, or a folder whose parent does not
    exist either (most likely a typo); warns with :class:`DataRootWarning` when only the folder
    itself is missing.
    """
    env = os.environ.get("COURSE_DATA", "").strip()
    if env:
        root = Path(env).expanduser().resolve()
        if root.is_dir():
            return root
        if root.exists():
            raise ValueError(f"COURSE_DATA={env!r} is a file, not a folder")
        if not root.parent.is_dir():
            raise ValueError(
                f"COURSE_DATA={env!r}: neither {root} nor its parent folder exists; "
                "fix the path or create the folder"
            )
        warnings.warn(
            f"COURSE_DATA={env!r}: the folder {root} does not exist yet; it will be created "
            "when the first data file is downloaded (set COURSE_OFFLINE=1 to forbid downloads)",
            DataRootWarning,
            stacklevel=2,
        )
        return root
    package = Path(__file__).resolve().parent
    repo_data = package.parent / "data"
    if (package.name == "course_utils" and (package / "__init__.py").is_file()
            and (repo_data / "SHA256SUMS").is_file()):
        return repo_data
    return Path.home() / ".cache" / "course_data"


def offline_mode() -> bool:
    """True when ``COURSE_OFFLINE`` forbids downloads (``1``/``true``/``yes``/``on``).

    An unknown value such as ``maybe`` or ``ture`` raises ``ValueError`` instead of being read
    as "online".
    """
    raw = os.environ.get("COURSE_OFFLINE", "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"COURSE_OFFLINE={raw!r} is not understood; use 1/true/yes/on (never download) or "
        "0/false/no/off (downloads allowed)"
    )


# --- checking files -------------------------------------------------------------------------

def sha256sum(path: str | os.PathLike[str], chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` exists but is not a regular file (``None`` if it is one or is missing)."""
    if path.is_dir():
        return f"{path} is a folder, but it should be a data file: remove or rename the folder"
    if path.exists() and not path.is_file():
        return f"{path} is not a regular file (a device, socket or FIFO): remove it"
    return None


def verify(path: str | os.PathLike[str], expected_sha256: str) -> Path:
    """Return ``path`` if its SHA-256 equals ``expected_sha256``, else raise ChecksumError."""
    path = Path(path)
    problem = _not_a_file(path)
    if problem:
        raise DataFileError(problem)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist (expected SHA-256 {expected_sha256})")
    actual = sha256sum(path)
    if actual != expected_sha256.lower():
        raise ChecksumError(
            f"{path} has SHA-256 {actual}, expected {expected_sha256}. The file is corrupt, "
            "truncated or a different version: delete it and restore it from the repository "
            "(git checkout -- data) or download it again."
        )
    return path


def _lookup(name: str | DataFile) -> DataFile:
    if isinstance(name, DataFile):
        return name
    try:
        return FILES[name]
    except KeyError:
        known = ", ".join(sorted(FILES))
        raise KeyError(f"unknown data file {name!r}; known files: {known}") from None


def ensure_file(
    name: str | DataFile,
    root: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = True,
) -> Path:
    """Return the verified path of a course data file, downloading it if needed and possible.

    ``name`` is a key of :data:`FILES` (e.g. ``"timemachine/timemachine.txt"``) or a
    :class:`DataFile`. ``root`` defaults to :func:`data_root`.
    """
    spec = _lookup(name)
    root_path = Path(root) if root is not None else data_root()
    path = root_path / spec.relpath
    if path.exists():
        return verify(path, spec.sha256)
    where = (
        f"Put the file at {path} (SHA-256 {spec.sha256}), or point COURSE_DATA at a folder "
        "that holds it."
    )
    if spec.url is None:
        raise MissingDataError(
            f"data file {spec.relpath} is missing from {root_path}. It ships with the course "
            f"repository and has no download URL ({spec.note}). {where}"
        )
    if not allow_download or offline_mode():
        raise MissingDataError(
            f"data file {spec.relpath} is missing from {root_path} and downloads are off. "
            f"Download {spec.url} by hand. {where}"
        )
    try:
        return download(spec.url, path, spec.sha256, size=spec.size)
    except DownloadError as err:
        raise MissingDataError(f"{err} Or point COURSE_DATA at a folder that holds it.") from err


def dataset_status(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Map each dataset name to ``"verified"`` or its problems (``missing: …``,
    ``corrupt: …``, ``not a file: …``)."""
    root_path = Path(root) if root is not None else data_root()
    status: dict[str, str] = {}
    for dataset, relpaths in DATASETS.items():
        problems = []
        for relpath in relpaths:
            path = root_path / relpath
            if path.is_dir():
                problems.append(f"not a file: {relpath} is a folder")
            elif path.exists() and not path.is_file():
                problems.append(f"not a file: {relpath} is not a regular file")
            elif not path.exists():
                problems.append(f"missing: {relpath}")
            elif sha256sum(path) != FILES[relpath].sha256:
                problems.append(f"corrupt: {relpath}")
        status[dataset] = "; ".join(problems) if problems else "verified"
    return status


# --- temporary files ------------------------------------------------------------------------

def _create_temporary(dest: Path, suffix: str) -> tuple[int, Path]:
    """A new file ``.<dest name>.<8 hex digits><suffix>`` beside ``dest``, opened for writing.

    Created with ``O_EXCL`` (never an existing file or link) and mode 0o666 less the umask, like
    any file the user creates.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 1 in 4 billion
            continue


def _remove_stale_temporaries(dest: Path, suffix: str, max_age: float) -> list[Path]:
    """Delete temporaries of ``dest`` that a killed writer left behind; return them.

    Only regular files named like this module's temporaries for this very ``dest``
    (``.<name>.<8 letters/digits><suffix>``) count, and only when unmodified for ``max_age``
    seconds: a live writer keeps writing to its file, so a concurrent download's temporary is
    never removed. Until then a stale temporary is harmless: nothing reads it.
    """
    pattern = re.compile(re.escape(f".{dest.name}.") + r"[a-z0-9_]{8}" + re.escape(suffix))
    removed: list[Path] = []
    try:
        entries = list(os.scandir(dest.parent))
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


# --- downloads ------------------------------------------------------------------------------

class _HTTPSOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to https:// URLs only; a redirect to http:// (or ftp://) is refused."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() != "https":
            fp.close()
            raise DownloadError(
                f"refusing the redirect from {req.full_url} to {newurl}: only https:// is allowed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _https_opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """A urllib opener that verifies certificates and never follows a redirect off HTTPS."""
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                       _HTTPSOnlyRedirects())


def _open_https(url: str, timeout: float) -> Any:
    return _https_opener().open(url, timeout=timeout)


class _ShortBody(Exception):
    """The server closed the connection before sending the expected number of bytes."""


_NETWORK_ERRORS = (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException,
                   _ShortBody)


def _copy_body(response: Any, out: IO[bytes], limit: int, url: str) -> int:
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    if length is not None and length.isdigit() and int(length) > limit:
        raise DownloadError(f"{url} announces {int(length)} bytes, more than the {limit} allowed")
    received = 0
    while chunk := response.read(_CHUNK):
        received += len(chunk)
        if received > limit:
            raise DownloadError(
                f"{url} sent more than the {limit} bytes allowed (the expected size, or "
                "datafiles.MAX_DOWNLOAD_BYTES); the file was not saved"
            )
        out.write(chunk)
    return received


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    opener: Callable[..., Any] | None = None,
    size: int | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download ``url`` to ``dest`` over HTTPS, verify its SHA-256, then move it into place.

    The body goes to a temporary file beside ``dest`` (``.NAME.<random>.part``); ``dest`` is only
    created (atomically, with :func:`os.replace`) once the checksum matches, so an interrupted
    or corrupt download never replaces or masquerades as a good file. A redirect to a non-HTTPS
    URL is refused. The body may not exceed ``size`` (the expected size, when known) or else
    ``max_bytes``; a shorter body than ``size`` counts as an interrupted transfer. HTTP error
    statuses raise at once; network errors and truncated bodies are retried ``retries`` times;
    a checksum mismatch is not retried. Temporaries of killed downloads of ``dest`` older than
    :data:`STALE_TEMPORARY_SECONDS` are removed. ``opener(url, timeout=...)`` replaces the
    HTTPS opener (tests pass a fake).
    """
    if not url.lower().startswith("https://"):
        raise DownloadError(f"refusing to download {url}: only https:// URLs are allowed")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(dest, ".part", STALE_TEMPORARY_SECONDS)
    open_url = opener or _open_https
    limit = size if size is not None else max_bytes
    by_hand = f"Download it by hand and put it at {dest} (SHA-256 {sha256})."
    last_error: BaseException | None = None
    for attempt in range(1, retries + 1):
        fd, tmp = _create_temporary(dest, ".part")
        try:
            with os.fdopen(fd, "wb") as out, open_url(url, timeout=timeout) as response:
                status = getattr(response, "status", 200)
                if status != 200:
                    raise urllib.error.HTTPError(url, status, "bad status", None, None)  # type: ignore[arg-type]
                received = _copy_body(response, out, limit, url)
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename makes it the data file
            if size is not None and received < size:
                raise _ShortBody(f"the body ended after {received} of {size} bytes")
            actual = sha256sum(tmp)
            if actual != sha256.lower():
                raise DownloadError(
                    f"downloaded {url} but its SHA-256 is {actual}, expected {sha256}; "
                    "the file was not saved"
                )
            os.replace(tmp, dest)
            return dest
        except DownloadError as err:  # refused redirect, oversized body, wrong checksum
            raise DownloadError(f"{err}. {by_hand}") from err
        except urllib.error.HTTPError as err:
            raise DownloadError(
                f"download of {url} failed with HTTP status {err.code}. {by_hand}") from err
        except _NETWORK_ERRORS as err:
            last_error = err
            if attempt < retries:
                time.sleep(backoff * attempt)
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {url} after {retries} attempts (last error: "
        f"{type(last_error).__name__}: {last_error}); are you offline? {by_hand}"
    )


# --- reading compressed data files ----------------------------------------------------------

def read_data_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """The bytes of a data file, gunzipped when it starts with the gzip magic number.

    Decompression is streamed and stops beyond ``max_bytes``; a missing, truncated, corrupt or
    oversized file raises :class:`DataFileError` naming the file.

    >>> len(read_data_bytes(ensure_file("cifar-10/batches.meta.txt")))
    60
    """
    path = Path(path)
    problem = _not_a_file(path)
    if problem:
        raise DataFileError(problem)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw) as stream:
                    data = stream.read(max_bytes + 1)
            else:
                data = raw.read(max_bytes + 1)
    except FileNotFoundError as err:
        raise MissingDataError(f"{path} does not exist") from err
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(
            f"{path} is not a valid gzip file (corrupt or truncated): {type(err).__name__}: {err}"
        ) from err
    if len(data) > max_bytes:
        raise DataFileError(
            f"{path} {'decompresses' if compressed else 'amounts'} to more than {max_bytes} bytes "
            "(datafiles.MAX_DECOMPRESSED_BYTES); pass max_bytes= to allow more"
        )
    return data


# --- archives -------------------------------------------------------------------------------

class _Refused(Exception):
    """Internal: one member cannot be extracted; becomes ``kind(message)`` at the top."""

    def __init__(self, kind: type[ArchiveError], message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.member = kind, member


class _Budget:
    """Counts the bytes an archive expands to and refuses them past the cap."""

    def __init__(self, limit: int, why: str) -> None:
        self.limit, self.why, self.used = limit, why, 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise _Refused(ArchiveTooLargeError, f"expands to more than {self.limit} bytes ({self.why})")


class _CappedReader:
    """A read-only stream that charges every byte it returns to a :class:`_Budget`."""

    def __init__(self, stream: IO[bytes], budget: _Budget) -> None:
        self.stream, self.budget = stream, budget

    def __enter__(self) -> _CappedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def read(self, n: int = -1) -> bytes:
        # never read more than the budget allows plus one byte, even when asked for "all"
        room = self.budget.limit - self.budget.used + 1
        data = self.stream.read(room if n is None or n < 0 else min(n, room))
        self.budget.take(len(data))
        return data


@dataclass
class _Member:
    name: str
    kind: str  # file | dir | symlink | hardlink | special
    link: str
    open: Callable[[], IO[bytes]]


def _member_parts(name: str) -> list[str]:
    text = name.replace("\\", "/")
    if "\x00" in text:
        raise _Refused(UnsafeArchiveError, "has a NUL character in its name")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise _Refused(UnsafeArchiveError, "has an absolute path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(UnsafeArchiveError, "contains '..'")
    if os.name == "nt" and any(":" in p for p in parts):  # pragma: no cover - Windows streams
        raise _Refused(UnsafeArchiveError, "has ':' in its name (an NTFS stream)")
    return parts


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


class _Extractor:
    """Writes members into a fresh private folder, never following a link on the way."""

    def __init__(self, root: Path, allow_links: bool) -> None:
        self.root, self.allow_links = root, allow_links
        self.done: list[PurePosixPath] = []
        self.links: list[tuple[str, Path]] = []

    def _folder(self, parts: list[str], create: bool) -> Path:
        """The real folder ``root/parts``: every step must be a real directory, not a link."""
        folder = self.root
        for i, part in enumerate(parts):
            folder = folder / part
            info = _lstat(folder)
            shown = "/".join(parts[: i + 1])
            if info is None and create:
                folder.mkdir()
            elif info is None:
                raise _Refused(ArchiveError, f"needs {shown!r}, which no earlier member created")
            elif stat.S_ISLNK(info.st_mode):
                raise _Refused(UnsafeArchiveError,
                               f"passes through the link {shown!r}; links are never followed")
            elif not stat.S_ISDIR(info.st_mode):
                raise _Refused(ArchiveError, f"needs {shown!r} to be a folder, but an earlier "
                               "member is a file of that name")
        return folder

    def add(self, member: _Member) -> None:
        parts = _member_parts(member.name)
        if member.kind == "special":
            raise _Refused(UnsafeArchiveError, "is a special file (device, FIFO, ...)")
        if member.kind in ("symlink", "hardlink") and not self.allow_links:
            raise _Refused(UnsafeArchiveError, f"is a {member.kind} to {member.link!r}; links "
                           "are refused (pass allow_links=True for links that stay inside)")
        if not parts:
            if member.kind == "dir":
                return  # the archive's root folder, "." or "./"
            raise _Refused(UnsafeArchiveError, "has an empty name")
        dest = self._folder(parts[:-1], create=True) / parts[-1]
        existing = _lstat(dest)
        if member.kind == "dir":
            if existing is None:
                dest.mkdir()
            elif not stat.S_ISDIR(existing.st_mode):
                raise _Refused(ArchiveError, "is a folder, but an earlier member is a file or "
                               "link of that name")
        else:
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise _Refused(ArchiveError, "is a file, but an earlier member is a directory "
                               "of that name")
            if existing is not None and stat.S_ISLNK(existing.st_mode):
                raise _Refused(UnsafeArchiveError, "would replace a link made by an earlier member")
            if existing is not None:
                dest.unlink()  # a repeated file: the later copy wins, written as a new file
            getattr(self, "_" + member.kind)(dest, parts, member)
        self.done.append(PurePosixPath(*parts))

    def _file(self, dest: Path, parts: list[str], member: _Member) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with member.open() as source, os.fdopen(os.open(dest, flags, 0o666), "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    def _symlink(self, dest: Path, parts: list[str], member: _Member) -> None:
        link = member.link.replace("\\", "/")
        if not link or link.startswith("/") or re.match(r"[A-Za-z]:", link):
            raise _Refused(UnsafeArchiveError, f"links to {member.link!r}, an absolute path")
        lexical = os.path.normpath(os.path.join(*parts[:-1], link) if parts[:-1] else link)
        if lexical == ".." or lexical.startswith("../"):
            raise _Refused(UnsafeArchiveError, f"links to {member.link!r}, outside the target")
        os.symlink(link, dest)
        self.links.append((member.name, dest))
        self._check_link(member.name, dest, strict=False)

    def _hardlink(self, dest: Path, parts: list[str], member: _Member) -> None:
        try:
            source_parts = _member_parts(member.link)
        except _Refused as err:
            raise _Refused(UnsafeArchiveError, f"links to {member.link!r}, which {err}") from None
        if not source_parts:
            raise _Refused(UnsafeArchiveError, "is a hardlink with an empty target")
        source = self._folder(source_parts[:-1], create=False) / source_parts[-1]
        info = _lstat(source)
        if info is None or not stat.S_ISREG(info.st_mode):
            raise _Refused(UnsafeArchiveError, f"is a hardlink to {member.link!r}, which is not a "
                           "regular file extracted earlier")
        os.link(source, dest)

    def _check_link(self, name: str, link: Path, strict: bool) -> None:
        try:
            real = os.path.realpath(link, strict=strict)
        except OSError as err:
            raise _Refused(UnsafeArchiveError, f"links to {os.readlink(link)!r}, which does not "
                           f"resolve to a member ({err.strerror or err})", name) from None
        root = os.path.realpath(self.root)
        if os.path.commonpath([real, root]) != root:
            raise _Refused(UnsafeArchiveError, f"links to {os.readlink(link)!r}, outside the "
                           "target", name)

    def check_links(self) -> None:
        """Every link must resolve, now that all members exist, to something inside."""
        for name, link in self.links:
            self._check_link(name, link, strict=True)


def _zip_link(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> str:
    """The target of a zip symlink member (stored as its data)."""
    try:
        with zf.open(info) as handle:
            target = handle.read(4097)
        budget.take(len(target))
    except _Refused as err:
        err.member = info.filename
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError) as err:
        raise _Refused(ArchiveError, f"is corrupt or unreadable ({type(err).__name__}: {err})",
                       info.filename) from None
    if len(target) > 4096:
        raise _Refused(UnsafeArchiveError, "is a symlink with a target over 4096 bytes",
                       info.filename)
    return target.decode("utf-8", "surrogateescape")


def _zip_members(zf: zipfile.ZipFile, budget: _Budget) -> Iterator[_Member]:
    for info in zf.infolist():
        kind_bits = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir():
            kind = "dir"
        elif kind_bits == stat.S_IFLNK:
            kind = "symlink"
        elif kind_bits in (0, stat.S_IFREG):
            kind = "file"
        else:
            kind = "special"
        link = _zip_link(zf, info, budget) if kind == "symlink" else ""

        def opener(info: zipfile.ZipInfo = info) -> IO[bytes]:
            return _CappedReader(zf.open(info), budget)  # type: ignore[return-value]

        yield _Member(info.filename, kind, link, opener)


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:
        if info.isreg():
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            kind = "special"

        def opener(info: tarfile.TarInfo = info) -> IO[bytes]:
            stream = tf.extractfile(info)
            if stream is None:  # pragma: no cover - tarfile gives every regular member data
                raise _Refused(ArchiveError, "has no data")
            return stream

        yield _Member(info.name, kind, info.linkname, opener)


@contextmanager
def _members(archive: Path, budget: _Budget) -> Iterator[Iterator[_Member]]:
    """The archive's members in order, every decompressed byte charged to ``budget``.

    The format is told by magic numbers; ``tarfile.is_tarfile`` is not used, as it would read
    the first header (which may be a huge GNU long name) without the cap.
    """
    with open(archive, "rb") as raw:
        head = raw.read(512)
    compressed = head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"
    if not (compressed or head[257:262] == b"ustar") and zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            declared = sum(info.file_size for info in zf.infolist())
            if declared > budget.limit:
                raise _Refused(ArchiveTooLargeError, f"declares {declared} bytes, more than "
                               f"{budget.limit} ({budget.why})")
            yield _zip_members(zf, budget)
        return
    with open(archive, "rb") as raw:
        stream: Any = raw
        if head[:2] == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=raw)
        elif head[:3] == b"BZh":
            stream = bz2.BZ2File(raw)
        elif head[:6] == b"\xfd7zXZ\x00":
            stream = lzma.LZMAFile(raw)
        # stream mode ("r|"): headers and data are read once, in order, through the cap
        capped: Any = _CappedReader(stream, budget)
        try:
            tf = tarfile.open(fileobj=capped, mode="r|")
        except (tarfile.ReadError, EOFError, OSError, zlib.error, lzma.LZMAError) as err:
            raise _Refused(ArchiveError, "is neither a zip nor a tar archive (or it is corrupt: "
                           f"{type(err).__name__}: {err})") from None
        with tf:
            yield _tar_members(tf)


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished staging folder to ``target``, or move its entries into an existing
    ``target`` (refusing to overwrite anything there)."""
    probe = staging / ".mode"  # a folder made with mode 0o777 gets the user's umask applied
    probe.mkdir(0o777)
    staging.chmod(stat.S_IMODE(probe.stat().st_mode))
    probe.rmdir()
    if not target.exists() and not target.is_symlink():
        os.rename(staging, target)
        return
    if not target.is_dir():
        raise _Refused(ArchiveError, f"cannot go into {target}: it exists and is not a folder")
    names = sorted(os.listdir(staging))
    clashes = [n for n in names if os.path.lexists(target / n)]
    if clashes:
        raise _Refused(ArchiveError, f"would overwrite {', '.join(clashes[:5])} in {target}; "
                       "remove them first or extract elsewhere")
    moved: list[str] = []
    try:
        for name in names:
            os.rename(staging / name, target / name)
            moved.append(name)
    except OSError:
        for name in moved:  # put back what was moved, so that nothing is half-extracted
            os.rename(target / name, staging / name)
        raise


def safe_extract(
    archive: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    allow_links: bool = False,
    max_bytes: int = MAX_ARCHIVE_BYTES,
    max_ratio: float = MAX_ARCHIVE_RATIO,
    max_members: int = MAX_ARCHIVE_MEMBERS,
) -> list[Path]:
    """Extract a zip or tar (optionally gz/bz2/xz) archive into ``target``; return the paths.

    Safe on every Python this course supports, without relying on ``tarfile``'s filters:

    * members go one by one into a fresh private folder beside ``target``; every folder on the
      way must be a real folder created by the archive, never a link, so nothing is written
      through a link; files are created new (``O_EXCL``);
    * refused: absolute paths, ``..``, devices and FIFOs, a file and a folder of the same name,
      and links (symbolic and hard) unless ``allow_links=True``; then a symlink must be
      relative and resolve, once every member exists, to something inside, and a hardlink must
      point to a regular file extracted earlier;
    * refused as too large, counted while decompressing: more than ``max_bytes`` in all, more
      than ``max_ratio`` times the archive's size (past 1 MiB), more than ``max_members``;
    * only when the whole archive succeeded is the folder renamed to ``target`` (or, if
      ``target`` exists, its entries moved in; overwriting an existing entry is refused).

    Any problem raises an :class:`ArchiveError` naming the archive and the member, and leaves
    nothing behind. Permissions, owners and times stored in the archive are not applied.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"cannot extract {archive}: it does not exist or is not a file")
    target_path = Path(os.path.realpath(target))
    ratio_limit = max(int(max_ratio * archive.stat().st_size), _RATIO_FLOOR)
    budget = (_Budget(max_bytes, "max_bytes, datafiles.MAX_ARCHIVE_BYTES")
              if max_bytes <= ratio_limit else
              _Budget(ratio_limit, f"max_ratio={max_ratio:g} times the archive's size"))
    target_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_path.name}.", suffix=".extracting",
                                    dir=target_path.parent))
    extractor = _Extractor(staging, allow_links)
    where = "the archive"
    try:
        with _members(archive, budget) as members:
            count, previous = 0, None
            while True:
                # reading the next header can fail too: say where in the archive that was
                where = f"the member after {previous!r}" if count else "the first member"
                member = next(members, None)
                if member is None:
                    break
                count, previous, where = count + 1, member.name, f"member {member.name!r}"
                if count > max_members:
                    raise _Refused(ArchiveTooLargeError, f"is beyond max_members={max_members}")
                extractor.add(member)
        where = "the archive"
        extractor.check_links()
        _move_into_place(staging, target_path)
    except _Refused as err:
        where = f"member {err.member!r}" if err.member else where
        raise err.kind(f"cannot extract {archive}: {where} {err}; nothing was extracted") from None
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
            NotImplementedError, RuntimeError, ValueError) as err:
        raise ArchiveError(f"cannot extract {archive}: {where} is corrupt or unreadable "
                           f"({type(err).__name__}: {err}); nothing was extracted") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [target_path / p for p in dict.fromkeys(extractor.done)]
