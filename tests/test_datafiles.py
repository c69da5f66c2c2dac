import gzip
import hashlib
import io
import os
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from course_utils import datafiles as df


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, status: int = 200):
        super().__init__(data)
        self.status = status


class FakeOpener:
    """Stands in for urllib.request.urlopen: returns queued responses or raises queued errors."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, url, timeout):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_shipped_data_is_verified(data_root):
    status = df.dataset_status(data_root)
    assert set(status) == {"fashion-mnist", "timemachine", "airfoil", "fra-eng", "cifar-10"}
    assert all(v == "verified" for v in status.values()), status


def test_sha256sums_file_matches_registry(data_root):
    listed = {}
    for line in (data_root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    for relpath, spec in df.FILES.items():
        assert listed[relpath] == spec.sha256, relpath


def test_data_root_env_and_default(monkeypatch, tmp_path, data_root):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert df.data_root() == tmp_path.resolve()
    monkeypatch.delenv("COURSE_DATA")
    assert df.data_root() == data_root


def test_ensure_file_returns_verified_path(data_root):
    path = df.ensure_file("timemachine/timemachine.txt", data_root)
    assert path == data_root / "timemachine/timemachine.txt"


def test_ensure_file_unknown_name():
    with pytest.raises(KeyError, match="known files"):
        df.ensure_file("nope/nothing.txt")


def test_checksum_mismatch_is_reported_and_file_kept(tmp_path):
    target = tmp_path / "airfoil" / "airfoil_self_noise.dat"
    target.parent.mkdir()
    target.write_bytes(b"not the airfoil data")
    with pytest.raises(df.ChecksumError, match="expected 74c75fd7"):
        df.ensure_file("airfoil/airfoil_self_noise.dat", tmp_path)
    assert target.read_bytes() == b"not the airfoil data"


def test_missing_file_without_url_names_path_and_checksum(tmp_path):
    with pytest.raises(df.MissingDataError) as info:
        df.ensure_file("cifar-10/batches.meta.txt", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10/batches.meta.txt") in message
    assert df.FILES["cifar-10/batches.meta.txt"].sha256 in message


def test_missing_file_offline_names_url(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(df.MissingDataError, match="https://.*timemachine.txt"):
        df.ensure_file("timemachine/timemachine.txt", tmp_path)
    assert not (tmp_path / "timemachine").exists() or not any((tmp_path / "timemachine").iterdir())


def test_ensure_file_downloads_when_missing(tmp_path, monkeypatch):
    payload = b"hello data"
    spec = df.DataFile("demo/file.txt", sha(payload), "https://example.org/file.txt")
    opener = FakeOpener(FakeResponse(payload))
    monkeypatch.setattr(df.urllib.request, "urlopen", opener)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    path = df.ensure_file(spec, tmp_path)
    assert path.read_bytes() == payload and opener.calls == 1


def test_ensure_file_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    spec = df.DataFile("demo/file.txt", sha(b"x"), "https://example.org/file.txt")
    monkeypatch.setattr(df.urllib.request, "urlopen",
                        FakeOpener(*[urllib.error.URLError("offline")] * 3))
    monkeypatch.setattr(df.time, "sleep", lambda s: None)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    with pytest.raises(df.MissingDataError, match="Put the file at"):
        df.ensure_file(spec, tmp_path)


def test_download_verifies_and_writes_atomically(tmp_path):
    payload = b"x" * 5000
    dest = tmp_path / "sub" / "data.bin"
    df.download("https://example.org/d", dest, sha(payload), opener=FakeOpener(FakeResponse(payload)))
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["data.bin"]
    assert dest.stat().st_mode & 0o044 == 0o044  # readable by others, like any normal file


def test_download_refuses_plain_http(tmp_path):
    with pytest.raises(df.DownloadError, match="only https"):
        df.download("http://example.org/d", tmp_path / "d", sha(b""), opener=FakeOpener())


def test_download_http_error_status_never_saves_page(tmp_path):
    dest = tmp_path / "d"
    page = FakeResponse(b"<html>404 not found</html>", status=404)
    with pytest.raises(df.DownloadError, match="HTTP status 404"):
        df.download("https://example.org/d", dest, sha(b"real"), opener=FakeOpener(page))
    assert list(tmp_path.iterdir()) == []
    err = urllib.error.HTTPError("https://example.org/d", 500, "boom", {}, None)
    opener = FakeOpener(err)
    with pytest.raises(df.DownloadError, match="500"):
        df.download("https://example.org/d", dest, sha(b"real"), opener=opener)
    assert opener.calls == 1  # HTTP errors are not retried


def test_download_checksum_mismatch_keeps_old_file(tmp_path):
    dest = tmp_path / "d"
    dest.write_bytes(b"good old file")
    with pytest.raises(df.DownloadError, match="SHA-256"):
        df.download("https://example.org/d", dest, sha(b"expected"),
                    opener=FakeOpener(FakeResponse(b"tampered")))
    assert dest.read_bytes() == b"good old file"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_download_retries_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(df.time, "sleep", lambda s: None)
    payload = b"finally"
    opener = FakeOpener(TimeoutError("slow"), urllib.error.URLError("reset"), FakeResponse(payload))
    df.download("https://example.org/d", tmp_path / "d", sha(payload), opener=opener, retries=3)
    assert opener.calls == 3 and (tmp_path / "d").read_bytes() == payload


def test_download_interrupted_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(df.time, "sleep", lambda s: None)

    class Broken(FakeResponse):
        def read(self, *args):
            raise ConnectionResetError("connection dropped mid-file")

    opener = FakeOpener(Broken(b"partial"), Broken(b"partial"))
    with pytest.raises(df.DownloadError, match="after 2 attempts"):
        df.download("https://example.org/d", tmp_path / "d", sha(b"x"), opener=opener, retries=2)
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_zero_retries(tmp_path):
    with pytest.raises(ValueError):
        df.download("https://example.org/d", tmp_path / "d", sha(b""), retries=0)


def test_verify_missing_file(tmp_path):
    with pytest.raises(df.MissingDataError):
        df.verify(tmp_path / "nothing", "00")


# --- archives -----------------------------------------------------------------------------

def make_zip(path: Path, entries: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, symlink[1])
    return path


def make_tar(path: Path, entries: dict[str, bytes], links: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for link in links:
            tf.addfile(link)
    return path


def test_safe_extract_zip_and_tar(tmp_path):
    z = make_zip(tmp_path / "a.zip", {"d/x.txt": b"1", "y.txt": b"2"})
    out = tmp_path / "out_zip"
    paths = df.safe_extract(z, out)
    assert (out / "d/x.txt").read_bytes() == b"1" and len(paths) == 2
    t = make_tar(tmp_path / "a.tgz", {"d/x.txt": b"1"})
    df.safe_extract(t, tmp_path / "out_tar")
    assert (tmp_path / "out_tar/d/x.txt").read_bytes() == b"1"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil_abs.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_safe_extract_refuses_escaping_zip_entries(tmp_path, name):
    z = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    target = tmp_path / "t" / "target"
    with pytest.raises(df.UnsafeArchiveError):
        df.safe_extract(z, target)
    assert not (target / "ok.txt").exists()  # nothing is written at all
    assert not (tmp_path / "t" / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil_abs_tar.txt"])
def test_safe_extract_refuses_escaping_tar_entries(tmp_path, name):
    t = make_tar(tmp_path / "bad.tar.gz", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(df.UnsafeArchiveError):
        df.safe_extract(t, tmp_path / "target")
    assert not (tmp_path / "target" / "ok.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_links_outside(tmp_path):
    sym = tarfile.TarInfo("link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    t = make_tar(tmp_path / "sym.tar", {}, [sym])
    with pytest.raises(df.UnsafeArchiveError, match="links to"):
        df.safe_extract(t, tmp_path / "target")
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    t2 = make_tar(tmp_path / "hard.tar", {}, [hard])
    with pytest.raises(df.UnsafeArchiveError):
        df.safe_extract(t2, tmp_path / "target2")
    z = make_zip(tmp_path / "sym.zip", {}, symlink=("link", "/etc/passwd"))
    with pytest.raises(df.UnsafeArchiveError, match="symbolic link"):
        df.safe_extract(z, tmp_path / "target3")


def test_safe_extract_allows_internal_symlink_and_refuses_devices(tmp_path):
    sym = tarfile.TarInfo("d/link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "x.txt"
    t = make_tar(tmp_path / "ok.tar", {"d/x.txt": b"1"}, [sym])
    df.safe_extract(t, tmp_path / "target")
    assert (tmp_path / "target/d/link").read_bytes() == b"1"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    t2 = make_tar(tmp_path / "dev.tar", {}, [dev])
    with pytest.raises(df.UnsafeArchiveError, match="special file"):
        df.safe_extract(t2, tmp_path / "target2")


def test_safe_extract_rejects_non_archive(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(gzip.compress(b"just gzip, no tar"))
    with pytest.raises(df.DataFileError, match="neither a zip nor a tar"):
        df.safe_extract(junk, tmp_path / "t")


def test_dataset_status_reports_missing_and_corrupt(tmp_path):
    (tmp_path / "airfoil").mkdir()
    (tmp_path / "airfoil/airfoil_self_noise.dat").write_bytes(b"broken")
    status = df.dataset_status(tmp_path)
    assert status["airfoil"].startswith("corrupt")
    assert status["timemachine"].startswith("missing")
