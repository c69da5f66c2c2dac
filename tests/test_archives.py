"""``archives.safe_extract`` on ordinary archives (the hostile ones are in
test_hostile_archives.py) and ``fetch_members`` / ``ensure_from_archive`` with a fake HTTPS
opener serving zips crafted here (no network)."""

import gzip
import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from course_utils import archives as ar
from course_utils import datafiles as df


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_safe_extract_tar_in_every_compression(tmp_path, mode):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, mode) as tf:
        for name, data in {"d/x.txt": b"1", "y.txt": b"22"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    paths = ar.safe_extract(archive, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == ["d/x.txt", "y.txt"]
    assert (tmp_path / "out/d/x.txt").read_bytes() == b"1"
    assert oct((tmp_path / "out").stat().st_mode & 0o777) != oct(0o700)  # not left private


def test_safe_extract_zip(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/", b"")
        zf.writestr("d/x.txt", b"1" * 1000)
    ar.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/d/x.txt").read_bytes() == b"1" * 1000


def test_safe_extract_rejects_non_archive(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(gzip.compress(b"just gzip, no tar"))
    with pytest.raises(df.DataFileError, match="neither a zip nor a tar"):
        ar.safe_extract(junk, tmp_path / "t")
    assert [p.name for p in tmp_path.iterdir()] == ["junk.bin"]


def test_archive_errors_are_data_file_errors():
    assert issubclass(ar.UnsafeArchiveError, ar.ArchiveError)
    assert issubclass(ar.ArchiveTooLargeError, ar.ArchiveError)
    assert issubclass(ar.ArchiveError, df.DataFileError)


# --- fetching members -----------------------------------------------------------------------

URL = "https://example.org/data/pack.zip"
A, B = b"alpha\n" * 100, b"beta\n" * 50


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class Server:
    """A fake HTTPS opener that serves one body and counts the requests."""

    def __init__(self, body: bytes):
        self.body, self.calls = body, 0

    def __call__(self, url, timeout):
        assert url == URL
        self.calls += 1
        response = io.BytesIO(self.body)
        response.status = 200
        return response


def specs(archive_sha: str | None) -> list[df.DataFile]:
    pack = df.Archive(URL, archive_sha)
    return [df.DataFile("pack/a.txt", sha(A), archive=pack, member="inner/a.txt"),
            df.DataFile("pack/b.txt", sha(B), archive=pack, member="inner/b.txt")]


def listing(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("with_checksum", [True, False])
def test_fetch_puts_only_the_missing_verified_members_in_place(tmp_path, with_checksum):
    body = make_zip({"inner/a.txt": A, "inner/b.txt": B, "inner/extra.txt": b"x"})
    wanted = specs(sha(body) if with_checksum else None)
    (tmp_path / "pack").mkdir()
    kept = tmp_path / "pack" / "b.txt"
    kept.write_bytes(B)
    inode = kept.stat().st_ino
    server = Server(body)
    moved = ar.fetch_members(wanted[0].archive, wanted, tmp_path, opener=server)
    assert moved == [tmp_path / "pack" / "a.txt"] and server.calls == 1
    assert (tmp_path / "pack" / "a.txt").read_bytes() == A and kept.stat().st_ino == inode
    assert listing(tmp_path) == ["pack", "pack/a.txt", "pack/b.txt"]  # no archive, no temporary
    assert ar.fetch_members(wanted[0].archive, wanted, tmp_path, opener=server) == []
    assert server.calls == 1  # nothing missing: no download


def fails_cleanly(tmp_path, body, wanted, error, *words):
    with pytest.raises(error) as info:
        ar.fetch_members(wanted[0].archive, wanted, tmp_path, opener=Server(body))
    for word in (URL, *words):
        assert word in str(info.value)
    assert listing(tmp_path) == ["pack"]  # nothing moved in, nothing left behind
    return info.value


def test_a_corrupt_member_is_refused_and_nothing_is_saved(tmp_path):
    body = make_zip({"inner/a.txt": A, "inner/b.txt": B[:-1]})
    fails_cleanly(tmp_path, body, specs(None), df.ChecksumError, "inner/b.txt", sha(B))


def test_a_missing_member_is_an_error_naming_it(tmp_path):
    body = make_zip({"inner/a.txt": A})
    fails_cleanly(tmp_path, body, specs(None), ar.ArchiveError, "has no member inner/b.txt")


def test_a_wrong_archive_checksum_is_refused_before_unpacking(tmp_path):
    body = make_zip({"inner/a.txt": A, "inner/b.txt": B})
    fails_cleanly(tmp_path, body, specs("0" * 64), df.DownloadError, "SHA-256")


def test_an_unsafe_archive_is_refused(tmp_path):
    body = make_zip({"inner/a.txt": A, "inner/../../b.txt": B})
    fails_cleanly(tmp_path, body, specs(None), ar.UnsafeArchiveError, "contains '..'")


def test_a_failed_move_puts_everything_back(tmp_path, monkeypatch):
    body = make_zip({"inner/a.txt": A, "inner/b.txt": B})
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the download's rename, the first member, then the second fails
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    err = fails_cleanly(tmp_path, body, specs(None), df.DataWriteError, "pack/b.txt", "no space left on the device",
                        "COURSE_DATA")
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == 28


def test_ensure_from_archive_fetches_the_whole_archive_once(tmp_path, monkeypatch):
    body = make_zip({"inner/a.txt": A, "inner/b.txt": B})
    for spec in specs(sha(body)):
        monkeypatch.setitem(df.FILES, spec.relpath, spec)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    server = Server(body)
    assert ar.ensure_from_archive("pack/b.txt", tmp_path, opener=server).read_bytes() == B
    assert ar.ensure_from_archive("pack/a.txt", tmp_path, opener=server).read_bytes() == A
    assert server.calls == 1


def test_ensure_from_archive_offline_names_the_archive(tmp_path, monkeypatch):
    for spec in specs(None):
        monkeypatch.setitem(df.FILES, spec.relpath, spec)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    server = Server(b"")
    with pytest.raises(df.MissingDataError, match="member inner/a.txt of the archive " + URL):
        ar.ensure_from_archive("pack/a.txt", tmp_path, opener=server)
    assert server.calls == 0 and listing(tmp_path) == []


def test_a_file_comes_from_a_url_or_an_archive():
    pack = df.Archive(URL, None)
    with pytest.raises(ValueError, match="both archive and member"):
        df.DataFile("x", "0" * 64, archive=pack)
    with pytest.raises(ValueError, match="not both"):
        df.DataFile("x", "0" * 64, url=URL, archive=pack, member="x")
