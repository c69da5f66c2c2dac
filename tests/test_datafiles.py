import gzip
import hashlib
import http.client
import http.server
import io
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
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
    """Stands in for the HTTPS opener: returns queued responses or raises queued errors."""

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
    assert set(status) == {"fashion-mnist", "timemachine", "airfoil", "fra-eng", "cifar-10",
                           "movielens-small", "bike-sharing", "cifar-10-jpeg", "nietzsche",
                           "tinyshakespeare", "diamonds"}
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
    monkeypatch.setattr(df, "_open_https", opener)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    path = df.ensure_file(spec, tmp_path)
    assert path.read_bytes() == payload and opener.calls == 1


def test_ensure_file_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    spec = df.DataFile("demo/file.txt", sha(b"x"), "https://example.org/file.txt")
    monkeypatch.setattr(df, "_open_https", FakeOpener(*[urllib.error.URLError("offline")] * 3))
    monkeypatch.setattr(df.time, "sleep", lambda s: None)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    with pytest.raises(df.MissingDataError, match="put it at .*demo/file.txt") as info:
        df.ensure_file(spec, tmp_path)
    assert spec.sha256 in str(info.value) and "COURSE_DATA" in str(info.value)


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


def test_dataset_status_reports_missing_and_corrupt(tmp_path):
    (tmp_path / "airfoil").mkdir()
    (tmp_path / "airfoil/airfoil_self_noise.dat").write_bytes(b"broken")
    status = df.dataset_status(tmp_path)
    assert status["airfoil"].startswith("corrupt")
    assert status["timemachine"].startswith("missing")


def test_registry_sizes_match_the_shipped_files(data_root):
    for relpath, spec in df.FILES.items():
        assert spec.size == (data_root / relpath).stat().st_size, relpath


# --- a folder where a data file should be (issue 14, item 6) ------------------------------

def test_folder_where_a_data_file_should_be_is_named_as_such(tmp_path):
    (tmp_path / "airfoil" / "airfoil_self_noise.dat").mkdir(parents=True)
    with pytest.raises(df.DataFileError, match="is a folder, but it should be a data file") as info:
        df.ensure_file("airfoil/airfoil_self_noise.dat", tmp_path)
    assert "does not exist" not in str(info.value)
    with pytest.raises(df.DataFileError, match="is a folder"):
        df.verify(tmp_path / "airfoil" / "airfoil_self_noise.dat", "00")
    status = df.dataset_status(tmp_path)  # used to crash with IsADirectoryError
    assert status["airfoil"] == "not a file: airfoil/airfoil_self_noise.dat is a folder"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_where_a_data_file_should_be_is_refused_without_reading_it(tmp_path):
    # reading a FIFO would wait forever for a writer
    (tmp_path / "airfoil").mkdir()
    os.mkfifo(tmp_path / "airfoil" / "airfoil_self_noise.dat")
    with pytest.raises(df.DataFileError, match="is not a regular file"):
        df.ensure_file("airfoil/airfoil_self_noise.dat", tmp_path)
    assert df.dataset_status(tmp_path)["airfoil"].startswith("not a file:")


# --- settings: COURSE_OFFLINE and COURSE_DATA (issue 14, item 4; issue 16) -----------------

@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), (" ON ", True), ("", False),
                                             ("0", False), ("off", False)])
def test_offline_mode_reads_the_usual_values(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_OFFLINE", value)
    assert df.offline_mode() is expected


@pytest.mark.parametrize("value", ["maybe", "ture", "y", "2"])
def test_offline_typos_are_an_error_before_any_network(tmp_path, monkeypatch, value):
    monkeypatch.setenv("COURSE_OFFLINE", value)
    opener = FakeOpener(FakeResponse(b"never asked for"))
    monkeypatch.setattr(df, "_open_https", opener)
    with pytest.raises(ValueError, match=rf"COURSE_OFFLINE='{value}' is not understood.*1/true.*0/false"):
        df.ensure_file("timemachine/timemachine.txt", tmp_path)
    assert opener.calls == 0


def test_course_data_whose_parent_is_missing_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "no" / "such" / "data"))
    with pytest.raises(ValueError, match="neither .* nor its parent folder exists"):
        df.data_root()
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "a_file"))
    with pytest.raises(ValueError, match="is a file, not a folder"):
        df.data_root()


def test_course_data_missing_folder_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "new_data"))
    with pytest.warns(df.DataRootWarning, match="does not exist yet; it will be created"):
        assert df.data_root() == tmp_path / "new_data"
    (tmp_path / "new_data").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert df.data_root() == tmp_path / "new_data"


@pytest.mark.parametrize("layout", ["flat", "other_package"])
def test_datafiles_copied_elsewhere_uses_the_cache_folder(tmp_path, layout):
    # <copy>/../data exists in both layouts; it is not the course's data folder
    (tmp_path / "data").mkdir()
    folder = tmp_path / ("their_project" if layout == "other_package" else "flat")
    folder.mkdir()
    for name in ("datafiles.py", "atomic_write.py", "settings.py"):  # its docstring's "Copy with:" list
        shutil.copy(Path(df.__file__).with_name(name), folder / name)
    module = "datafiles"
    if layout == "other_package":
        (folder / "__init__.py").write_text("")
        module = "their_project.datafiles"
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DATA"}
    # the network guard stays on the path; the repository (and so course_utils) does not
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(Path(__file__).parent / "netguard"))
    code = f"import {module} as d; print(d.data_root())"
    cwd = folder if layout == "flat" else tmp_path
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "home" / ".cache" / "course_data")


# --- downloads: truncated bodies, caps, redirects, stale temporaries (items 2, 3, 5) -------

def test_incomplete_read_is_retried_and_ends_in_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(df.time, "sleep", lambda s: None)

    class Truncated(FakeResponse):
        def read(self, *args):
            raise http.client.IncompleteRead(b"partial", 100)

    payload = b"whole file"
    opener = FakeOpener(Truncated(b""), FakeResponse(payload))
    df.download("https://example.org/d", tmp_path / "d", sha(payload), opener=opener)
    assert opener.calls == 2 and (tmp_path / "d").read_bytes() == payload

    opener = FakeOpener(*[Truncated(b"") for _ in range(3)])
    dest = tmp_path / "sub" / "e.bin"
    with pytest.raises(df.DownloadError) as info:
        df.download("https://example.org/e.bin", dest, sha(payload), opener=opener)
    message = str(info.value)
    assert opener.calls == 3 and "IncompleteRead" in message
    assert f"put it at {dest}" in message and sha(payload) in message
    assert list(dest.parent.iterdir()) == []


def test_short_body_of_known_size_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr(df.time, "sleep", lambda s: None)
    payload = b"0123456789"
    opener = FakeOpener(FakeResponse(payload[:4]), FakeResponse(payload))
    df.download("https://example.org/d", tmp_path / "d", sha(payload), opener=opener, size=10)
    assert opener.calls == 2 and (tmp_path / "d").read_bytes() == payload


def test_download_body_is_capped(tmp_path):
    payload = b"x" * 100
    # more than the expected size: refused at once, not retried, nothing saved
    opener = FakeOpener(FakeResponse(payload + b"extra"))
    with pytest.raises(df.DownloadError, match="more than the 100 bytes allowed"):
        df.download("https://example.org/d", tmp_path / "d", sha(payload), opener=opener, size=100)
    assert opener.calls == 1 and list(tmp_path.iterdir()) == []
    # size unknown: the generous max_bytes applies (lowered here)
    with pytest.raises(df.DownloadError, match="more than the 50 bytes"):
        df.download("https://example.org/d", tmp_path / "d", sha(payload),
                    opener=FakeOpener(FakeResponse(payload)), max_bytes=50)
    announced = FakeResponse(payload)
    announced.headers = {"Content-Length": str(10**12)}
    with pytest.raises(df.DownloadError, match="announces 1000000000000 bytes"):
        df.download("https://example.org/d", tmp_path / "d", sha(payload), opener=FakeOpener(announced))
    assert list(tmp_path.iterdir()) == []


def test_stale_partial_downloads_are_removed_fresh_ones_kept(tmp_path):
    dest = tmp_path / "d"
    stale = tmp_path / ".d.ab12cd34.part"
    fresh = tmp_path / ".d.ef56ab78.part"  # a download running right now in another process
    other = tmp_path / ".e.ab12cd34.part"  # another file's temporary
    legacy = tmp_path / ".d.k_9x2q1z.part"  # named by tempfile.mkstemp (earlier versions)
    for p in (stale, fresh, other, legacy):
        p.write_bytes(b"partial")
    old = time.time() - 2 * df.STALE_TEMPORARY_SECONDS
    for p in (stale, other, legacy):
        os.utime(p, (old, old))
    payload = b"data"
    df.download("https://example.org/d", dest, sha(payload), opener=FakeOpener(FakeResponse(payload)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".d.ef56ab78.part", ".e.ab12cd34.part", "d"])


def test_redirect_handler_refuses_leaving_https():
    handler = df._HTTPSOnlyRedirects()
    request = urllib.request.Request("https://example.org/file")
    with pytest.raises(df.DownloadError, match="refusing the redirect .* to http://example.org/x"):
        handler.redirect_request(request, io.BytesIO(), 302, "Found", {}, "http://example.org/x")
    follow = handler.redirect_request(request, io.BytesIO(), 302, "Found", {}, "https://example.org/y")
    assert follow is not None and follow.full_url == "https://example.org/y"


class Redirecting(http.server.BaseHTTPRequestHandler):
    """/file serves b"payload"; /to-http and /to-https redirect there over http:// or https://."""

    def do_GET(self):  # noqa: N802 - the http.server API
        port = self.server.server_address[1]
        if self.path == "/file":
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"payload")
            return
        scheme = "http" if self.path == "/to-http" else "https"
        self.send_response(302)
        self.send_header("Location", f"{scheme}://127.0.0.1:{port}/file")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate (made with the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ssl.create_default_context(cafile=str(cert))
    server.shutdown()
    server.server_close()


def test_https_to_http_redirect_is_refused_end_to_end(tmp_path, local_server):
    base, client_context = local_server
    opener = df._https_opener(client_context).open
    payload_sha = sha(b"payload")
    assert df.download(f"{base}/to-https", tmp_path / "ok", payload_sha, opener=opener).read_bytes() == b"payload"
    with pytest.raises(df.DownloadError, match="refusing the redirect .* to http://127.0.0.1") as info:
        df.download(f"{base}/to-http", tmp_path / "bad", payload_sha, opener=opener, retries=3)
    assert f"put it at {tmp_path / 'bad'}" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem", "ok"]


# --- reading gzip data files with a cap (item 2; issue 16's shared reader) ----------------

def test_read_data_bytes_plain_gzip_and_caps(tmp_path):
    (tmp_path / "plain.bin").write_bytes(b"abc")
    (tmp_path / "packed.gz").write_bytes(gzip.compress(b"abc" * 1000))
    assert df.read_data_bytes(tmp_path / "plain.bin") == b"abc"
    assert df.read_data_bytes(tmp_path / "packed.gz") == b"abc" * 1000
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(bytes(20 << 20)))
    with pytest.raises(df.DataFileError, match="decompresses to more than 1048576 bytes"):
        df.read_data_bytes(tmp_path / "bomb.gz", max_bytes=1 << 20)
    with pytest.raises(df.DataFileError, match="amounts to more than 2 bytes"):
        df.read_data_bytes(tmp_path / "plain.bin", max_bytes=2)


def test_read_data_bytes_errors_name_the_file(tmp_path):
    good = gzip.compress(b"some data " * 100)
    (tmp_path / "trunc.gz").write_bytes(good[:-12])
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # the stored CRC-32
    (tmp_path / "crc.gz").write_bytes(bytes(bad_crc))
    (tmp_path / "dir.gz").mkdir()
    for name, words in [("trunc.gz", "corrupt or truncated"), ("crc.gz", "corrupt or truncated"),
                        ("dir.gz", "is a folder"), ("none.gz", "does not exist")]:
        with pytest.raises(df.DataFileError, match=words) as info:
            df.read_data_bytes(tmp_path / name)
        assert name in str(info.value)
