"""Extract zip and tar archives safely, and fetch data files that come inside an archive.

* :func:`safe_extract` unpacks a zip or tar (optionally gz/bz2/xz-compressed) member by member
  into a private temporary folder, refusing anything that could write outside the target (see
  its docstring). The caps are the module constants ``MAX_ARCHIVE_*``; keywords override them.
* :func:`fetch_members` downloads an archive over HTTPS (with :func:`datafiles.download`),
  unpacks it with :func:`safe_extract` and puts the wanted members, each verified by its own
  SHA-256, in place; :func:`ensure_from_archive` is :func:`datafiles.ensure_file` for a file of
  the registry that comes inside an archive (:attr:`datafiles.DataFile.member`).

Every error is an :class:`ArchiveError` (or another :class:`datafiles.DataFileError`, such as
:class:`datafiles.DataWriteError` for a disk that cannot take the files), so one
``except DataFileError`` catches every data problem.

Introduced in ``notebooks/21_collaborative_filtering.ipynb`` (through ``movielens.py``).
Copy with: ``datafiles.py``, ``atomic_write.py``, ``settings.py``.

>>> import tempfile, zipfile
>>> scratch = tempfile.TemporaryDirectory()
>>> folder = Path(scratch.name).resolve()
>>> with zipfile.ZipFile(folder / "a.zip", "w") as zf:
...     zf.writestr("d/x.txt", "hello")
>>> [p.relative_to(folder).as_posix() for p in safe_extract(folder / "a.zip", folder / "out")]
['out/d/x.txt']
>>> with zipfile.ZipFile(folder / "evil.zip", "w") as zf:
...     zf.writestr("../x.txt", "outside")
>>> try:
...     safe_extract(folder / "evil.zip", folder / "out2")
... except UnsafeArchiveError as err:
...     print(str(err).split(": ", 1)[1], (folder / "out2").exists())
member '../x.txt' contains '..'; nothing was extracted False
>>> scratch.cleanup()
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import (
        _ELSEWHERE,
        FILES,
        Archive,
        ChecksumError,
        DataFile,
        DataFileError,
        DataWriteError,
        DownloadError,
        MissingDataError,
        data_root,
        download,
        ensure_file,
        offline_mode,
        sha256sum,
    )
else:  # copied flat next to its siblings
    from datafiles import (
        _ELSEWHERE,
        FILES,
        Archive,
        ChecksumError,
        DataFile,
        DataFileError,
        DataWriteError,
        DownloadError,
        MissingDataError,
        data_root,
        download,
        ensure_file,
        offline_mode,
        sha256sum,
    )

__all__ = [
    "ArchiveError",
    "UnsafeArchiveError",
    "ArchiveTooLargeError",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_RATIO",
    "MAX_ARCHIVE_MEMBERS",
    "safe_extract",
    "fetch_members",
    "ensure_from_archive",
]

_WRITE_ONLY_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""Errors that only a write gives (a permission error could come from reading the archive)."""

MAX_ARCHIVE_BYTES = 1 << 30
""":func:`safe_extract` refuses an archive that expands to more than this (1 GiB) ..."""
MAX_ARCHIVE_RATIO = 100
"""... or to more than this many times its own size (once past 1 MiB) ..."""
MAX_ARCHIVE_MEMBERS = 100_000
"""... or that has more members than this."""
_RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20


class ArchiveError(DataFileError):
    """An archive could not be extracted (corrupt, clashing names, ...); nothing was written."""


class UnsafeArchiveError(ArchiveError):
    """An archive member could write outside the target (path, link, device): refused."""


class ArchiveTooLargeError(ArchiveError):
    """An archive expands beyond the size, ratio or member-count cap."""



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
    budget = (_Budget(max_bytes, "max_bytes, archives.MAX_ARCHIVE_BYTES")
              if max_bytes <= ratio_limit else
              _Budget(ratio_limit, f"max_ratio={max_ratio:g} times the archive's size"))
    try:
        target_path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target_path.name}.", suffix=".extracting",
                                        dir=target_path.parent))
    except OSError as err:
        raise DataWriteError.from_os_error(target_path, err, existed=False,
                                           doing=f"extracting {archive}") from err
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
    except OSError as err:
        if err.errno not in _WRITE_ONLY_ERRNOS:  # reading the archive failed
            raise ArchiveError(f"cannot extract {archive}: {where} is corrupt or unreadable "
                               f"({type(err).__name__}: {err}); nothing was extracted") from err
        raise DataWriteError.from_os_error(target_path, err, existed=False,
                                           doing=f"extracting {archive}") from err
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError,
            NotImplementedError, RuntimeError, ValueError) as err:
        raise ArchiveError(f"cannot extract {archive}: {where} is corrupt or unreadable "
                           f"({type(err).__name__}: {err}); nothing was extracted") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [target_path / p for p in dict.fromkeys(extractor.done)]


# --- data files that come inside an archive -------------------------------------------------

def _member_path(unpacked: Path, member: str) -> Path:
    parts = PurePosixPath(member).parts
    if not parts or member.startswith("/") or ".." in parts:
        raise ValueError(f"{member!r} is not a relative member path")
    return unpacked.joinpath(*parts)


def fetch_members(
    archive: Archive,
    wanted: Iterable[DataFile],
    root: str | os.PathLike[str] | None = None,
    *,
    opener: Callable[..., Any] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> list[Path]:
    """Put the ``wanted`` files that are missing under ``root`` in place, from ``archive``.

    Each wanted :class:`DataFile` names its ``member`` (its path inside the archive). Steps:
    download ``archive.url`` over HTTPS (:func:`datafiles.download`: size cap, retries, no
    redirect off HTTPS) into a private temporary folder beside the data, check the archive's
    SHA-256 when one is known, :func:`safe_extract` it there, check every wanted member
    against its own SHA-256 (without an archive checksum, these are the only guarantee), and
    only then rename the missing files into place (files already there are left alone). The
    temporary folder, with the archive, is removed on success and on error; an error names the
    archive and the member and leaves no wanted file half-written or unverified. Returns the
    paths put in place. ``opener`` replaces the HTTPS opener (tests pass a fake).
    """
    root_path = Path(root) if root is not None else data_root()
    specs = list(wanted)
    for spec in specs:
        if spec.member is None:
            raise ValueError(f"{spec.relpath} names no archive member")
        _member_path(Path("."), spec.member)
    missing = [s for s in specs if not os.path.lexists(root_path / s.relpath)]
    if not missing:
        return []
    base = Path(os.path.commonpath([(root_path / s.relpath).parent for s in missing]))
    name = PurePosixPath(archive.url.split("?")[0]).name or "archive"
    try:
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".fetching", dir=base))
    except OSError as err:
        raise DataWriteError.from_os_error(base / name, err, existed=False, elsewhere=_ELSEWHERE,
                                           doing=f"fetching {archive.url}") from err
    moved: list[tuple[Path, Path]] = []
    moving: DataFile | None = None
    try:
        by_hand = ", ".join(f"{s.member} as {root_path / s.relpath}" for s in missing)
        path = download(archive.url, work / name, archive.sha256, size=archive.size,
                        opener=opener, timeout=timeout, retries=retries, backoff=backoff,
                        advice=f"Download it by hand and unpack {by_hand}.")
        try:
            safe_extract(path, work / "unpacked")
        except ArchiveError as err:
            raise type(err)(f"{err} (downloaded from {archive.url})") from err
        path.unlink()
        for spec in missing:
            assert spec.member is not None
            source = _member_path(work / "unpacked", spec.member)
            if not source.is_file():
                raise ArchiveError(f"{archive.url} has no member {spec.member} (wanted for "
                                   f"{spec.relpath}); nothing was saved")
            actual = sha256sum(source)
            if actual != spec.sha256.lower():
                raise ChecksumError(
                    f"member {spec.member} of {archive.url} has SHA-256 {actual}, expected "
                    f"{spec.sha256} (for {spec.relpath}): the archive is corrupt or another "
                    "version; nothing was saved")
        for spec in missing:
            assert spec.member is not None
            moving = spec
            dest = root_path / spec.relpath
            if os.path.lexists(dest):  # put there meanwhile (another process): left alone
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = _member_path(work / "unpacked", spec.member)
            os.replace(source, dest)
            moved.append((dest, source))
    except BaseException as err:
        for dest, source in reversed(moved):  # all or nothing
            os.replace(dest, source)
        if isinstance(err, OSError) and not isinstance(err, DataFileError):
            where = root_path / (moving.relpath if moving else "")
            raise DataWriteError.from_os_error(where, err, existed=False, elsewhere=_ELSEWHERE,
                                               doing=f"putting the members of {archive.url} in place") from err
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [dest for dest, _ in moved]


def ensure_from_archive(
    name: str | DataFile,
    root: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = True,
    opener: Callable[..., Any] | None = None,
) -> Path:
    """:func:`datafiles.ensure_file`, but a missing file that comes inside an archive is fetched.

    ``name`` is a key of :data:`datafiles.FILES` or a :class:`DataFile`. When the file is
    missing and downloads are allowed, every registered file of the same archive that is
    missing is fetched at once (:func:`fetch_members`), so the archive is downloaded only once.
    """
    spec = FILES[name] if isinstance(name, str) else name
    root_path = Path(root) if root is not None else data_root()
    if spec.archive is None or os.path.lexists(root_path / spec.relpath):
        return ensure_file(spec, root_path, allow_download=allow_download)
    try:
        return ensure_file(spec, root_path, allow_download=False)
    except MissingDataError as missing:
        if not allow_download or offline_mode():
            raise MissingDataError(f"{missing} Downloads are off, so it was not fetched.") from None
        url = spec.archive.url
        siblings = [s for s in FILES.values() if s.archive is not None and s.archive.url == url
                    and s.relpath != spec.relpath]
        try:
            fetch_members(spec.archive, [spec, *siblings], root_path, opener=opener)
        except DownloadError as err:
            raise MissingDataError(f"{missing} Fetching it failed: {err}") from err
    return ensure_file(spec, root_path, allow_download=False)
