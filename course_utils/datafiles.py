"""Find, verify and (for online users) download the course's data files.

The course ships its datasets in the repository's ``data/`` folder, so nothing here needs the
network when you work from a clone. ``COURSE_DATA=DIR`` points the course at another folder.

Every file has a known SHA-256. :func:`ensure_file` returns the path of a verified file:

* present and the checksum matches → its path;
* present but the checksum differs → :class:`ChecksumError` (the file is left alone);
* missing and a download URL is known (and ``COURSE_OFFLINE`` is not set) → downloaded over
  HTTPS into a temporary file, verified, and only then renamed into place;
* otherwise → :class:`MissingDataError` naming the file, the checksum and where to put it.

:func:`safe_extract` unpacks zip and tar archives, refusing entries that would land outside
the target folder. Standard library only, so this module can be copied alone.

>>> from course_utils.datafiles import ensure_file
>>> ensure_file("timemachine/timemachine.txt").name
'timemachine.txt'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

__all__ = [
    "DataFile",
    "DataFileError",
    "MissingDataError",
    "ChecksumError",
    "DownloadError",
    "UnsafeArchiveError",
    "FILES",
    "DATASETS",
    "data_root",
    "sha256sum",
    "verify",
    "ensure_file",
    "download",
    "safe_extract",
    "dataset_status",
]


class DataFileError(RuntimeError):
    """Base class of every data-file problem raised here."""


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file is not on disk and could not be downloaded."""


class ChecksumError(DataFileError):
    """A file's SHA-256 differs from the expected one."""


class DownloadError(DataFileError):
    """A download failed (offline, HTTP error, timeout, wrong checksum)."""


class UnsafeArchiveError(DataFileError):
    """An archive holds an entry that would be written outside the target folder."""


@dataclass(frozen=True)
class DataFile:
    """One data file: where it lives under the data root, its SHA-256, and its source URL."""

    relpath: str
    sha256: str
    url: str | None = None
    note: str = ""


_FMNIST_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
_D2L_URL = "https://d2l-data.s3-accelerate.amazonaws.com/"

FILES: dict[str, DataFile] = {
    f.relpath: f
    for f in [
        DataFile(
            "fashion-mnist/train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            _FMNIST_URL + "train-images-idx3-ubyte.gz",
        ),
        DataFile(
            "fashion-mnist/train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            _FMNIST_URL + "train-labels-idx1-ubyte.gz",
        ),
        DataFile(
            "fashion-mnist/t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            _FMNIST_URL + "t10k-images-idx3-ubyte.gz",
        ),
        DataFile(
            "fashion-mnist/t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            _FMNIST_URL + "t10k-labels-idx1-ubyte.gz",
        ),
        DataFile(
            "timemachine/timemachine.txt",
            "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516",
            _D2L_URL + "timemachine.txt",
        ),
        DataFile(
            "airfoil/airfoil_self_noise.dat",
            "74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3",
            _D2L_URL + "airfoil_self_noise.dat",
        ),
        DataFile(
            "fra-eng/fra.txt.gz",
            "3f7ce9b82d57439edff14f487e2ef9fd52ad72757a838857f153fa4668dd6066",
            None,
            "fra.txt (SHA-256 0bb85dbaa1c8…) compressed with `gzip -9 -n`; ships with the repo. "
            "The original is fra-eng/fra.txt inside " + _D2L_URL + "fra-eng.zip",
        ),
        DataFile(
            "cifar-10/data_batch_1_first2000.bin.gz",
            "863c58c2db7456dbc725e10903c95baddb6a5151db1001c6fc3ee6f940a1fec3",
            None,
            "a subset of CIFAR-10 made for this course; ships with the repo only",
        ),
        DataFile(
            "cifar-10/test_batch_first1000.bin.gz",
            "ca9ff0155579ff50ee9088a939f8d4a4549fe7839762bff24a46965fb4c5be78",
            None,
            "a subset of CIFAR-10 made for this course; ships with the repo only",
        ),
        DataFile(
            "cifar-10/batches.meta.txt",
            "2ce042b1e0b48db4bb214408e6414ba18b2731c24af244f2d6c112fddf31af00",
            None,
            "class names of CIFAR-10; ships with the repo only",
        ),
    ]
}

DATASETS: dict[str, list[str]] = {}
for _relpath in FILES:
    DATASETS.setdefault(_relpath.split("/")[0], []).append(_relpath)


def data_root() -> Path:
    """The folder holding the datasets: ``COURSE_DATA`` if set, else the repository's ``data/``.

    When this module is copied out of the repository and ``COURSE_DATA`` is unset, the
    fallback is ``~/.cache/course_data``.
    """
    env = os.environ.get("COURSE_DATA", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    repo_data = Path(__file__).resolve().parent.parent / "data"
    if repo_data.is_dir():
        return repo_data
    return Path.home() / ".cache" / "course_data"


def sha256sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike[str], expected_sha256: str) -> Path:
    """Return ``path`` if its SHA-256 equals ``expected_sha256``, else raise ChecksumError."""
    path = Path(path)
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


def _offline() -> bool:
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


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
    if not allow_download or _offline():
        raise MissingDataError(
            f"data file {spec.relpath} is missing from {root_path} and downloads are off. "
            f"Download {spec.url} by hand. {where}"
        )
    try:
        return download(spec.url, path, spec.sha256)
    except DownloadError as err:
        raise MissingDataError(f"{err} {where}") from err


Opener = Callable[..., object]


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    opener: Opener | None = None,
) -> Path:
    """Download ``url`` to ``dest`` over HTTPS, verify its SHA-256, then move it into place.

    The body goes to a temporary file beside ``dest``; ``dest`` is only created (atomically,
    with :func:`os.replace`) once the checksum matches, so an interrupted or corrupt download
    never replaces or masquerades as a good file. HTTP error statuses raise, network errors are
    retried ``retries`` times, a checksum mismatch is not retried. ``opener`` defaults to
    :func:`urllib.request.urlopen` (tests pass a fake).
    """
    if not url.lower().startswith("https://"):
        raise DownloadError(f"refusing to download {url}: only https:// URLs are allowed")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_url = opener or urllib.request.urlopen
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                with open_url(url, timeout=timeout) as response:  # type: ignore[operator]
                    status = getattr(response, "status", 200)
                    if status != 200:
                        raise urllib.error.HTTPError(url, status, "bad status", {}, None)  # type: ignore[arg-type]
                    shutil.copyfileobj(response, out, 1 << 20)
            actual = sha256sum(tmp)
            if actual != sha256.lower():
                raise DownloadError(
                    f"downloaded {url} but its SHA-256 is {actual}, expected {sha256}; "
                    "the file was not saved"
                )
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
            os.replace(tmp, dest)
            return dest
        except urllib.error.HTTPError as err:
            raise DownloadError(f"download of {url} failed with HTTP status {err.code}") from err
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            last_error = err
            if attempt < retries:
                time.sleep(backoff * attempt)
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {url} after {retries} attempts ({last_error}); are you offline?"
    )


def _check_member_path(name: str, target: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"archive entry {name!r} has an absolute path; refusing it")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"archive entry {name!r} contains '..'; refusing it")
    resolved = (target / pure).resolve()
    if not resolved.is_relative_to(target):
        raise UnsafeArchiveError(f"archive entry {name!r} would land outside {target}")
    return resolved


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract a zip or tar archive into ``target``, refusing unsafe entries.

    Every entry is checked before anything is written: absolute paths, ``..`` components,
    symbolic or hard links pointing outside ``target``, and device files raise
    :class:`UnsafeArchiveError`. Returns the extracted paths.
    """
    archive = Path(archive)
    target_path = Path(target).resolve()
    target_path.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member_path(info.filename, target_path)
                mode = info.external_attr >> 16
                if (mode & 0o170000) == 0o120000:
                    raise UnsafeArchiveError(f"zip entry {info.filename!r} is a symbolic link")
            zf.extractall(target_path)
            return [target_path / m.filename for m in members]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tar_members = tf.getmembers()
            for member in tar_members:
                dest = _check_member_path(member.name, target_path)
                if member.issym() or member.islnk():
                    link = PurePosixPath(member.linkname)
                    base = dest.parent if member.issym() else target_path
                    if link.is_absolute() or not (base / link).resolve().is_relative_to(
                        target_path
                    ):
                        raise UnsafeArchiveError(
                            f"tar entry {member.name!r} links to {member.linkname!r}, "
                            "outside the target folder"
                        )
                elif not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(f"tar entry {member.name!r} is a special file")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(target_path, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tf.extractall(target_path)
            return [target_path / m.name for m in tar_members]
    raise DataFileError(f"{archive} is neither a zip nor a tar archive (or it is corrupt)")


def dataset_status(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Map each dataset name to ``"verified"``, ``"missing: …"`` or ``"corrupt: …"``."""
    root_path = Path(root) if root is not None else data_root()
    status: dict[str, str] = {}
    for dataset, relpaths in DATASETS.items():
        problems = []
        for relpath in relpaths:
            path = root_path / relpath
            if not path.exists():
                problems.append(f"missing: {relpath}")
            elif sha256sum(path) != FILES[relpath].sha256:
                problems.append(f"corrupt: {relpath}")
        status[dataset] = "; ".join(problems) if problems else "verified"
    return status
