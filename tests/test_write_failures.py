"""Writes that fail (issue 32): every writer of the course, on a full disk, a read-only folder or
a file-size limit, raises its own error naming the file and the cause in words, keeps the old
file, leaves no temporary and leaves the process usable.

Three ways to fail a write, because CI runs as root (root ignores file permissions, so a
``chmod`` proves nothing):

* for real, in a child process (``write_failure_child.py``): ``RLIMIT_FSIZE`` (EFBIG, anywhere
  on POSIX); a small tmpfs filled up (ENOSPC) and the same tmpfs remounted read-only (EROFS),
  both only as root where ``unshare --mount`` works (skipped otherwise);
* injected, in this process: ``OSError(ENOSPC)`` raised by the raw ``write`` call under
  ``atomic_write``'s recorder (or by the copy call of the writers that write into a staging
  folder: archive extraction and the website).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from course_utils import archives as ar
from course_utils import atomic_write as aw
from course_utils import cifar10_jpeg as cj
from course_utils import datafiles as df
from course_utils.checkpoints import CheckpointError, CheckpointWriteError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("write_failure_child.py")
WRITERS = ["checkpoint", "download", "report", "run_report", "cifar10_cache"]
OWN_ERROR = {"checkpoint": "CheckpointWriteError", "download": "DataWriteError", "report": "WriteError",
             "run_report": "WriteError"}
CAUSE = {"rlimit": (errno.EFBIG, "file too large"), "tmpfs": (errno.ENOSPC, "no space left on the device"),
         "readonly": (errno.EROFS, "the file system is read-only")}


# --- for real, in a child process -----------------------------------------------------------

def _mount_namespace_works(tmp: Path) -> str | None:
    """None when root can mount a tmpfs in a private mount namespace here, else why not."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs Linux, root and unshare"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o",
                            "size=64k", "tmpfs", str(tmp)], capture_output=True, text=True, timeout=60)
    return None if probe.returncode == 0 else f"mount in a private namespace failed: {probe.stderr.strip()}"


@pytest.fixture(scope="module", params=["rlimit", "tmpfs", "readonly"])
def real_failure(request, tmp_path_factory):
    method = request.param
    folder = tmp_path_factory.mktemp(f"writes_{method}")
    command = [sys.executable, str(CHILD), str(folder), method]
    if method != "rlimit":
        why = _mount_namespace_works(tmp_path_factory.mktemp("probe"))
        if why:
            pytest.skip(why)
        command = ["unshare", "--mount", "--propagation", "private", *command]
    env = dict(os.environ, COURSE_DATA=str(REPO / "data"), COURSE_OFFLINE="1", MPLBACKEND="Agg")
    env.pop("COURSE_RESULTS_FILE", None)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return method, json.loads(result.stdout)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_real_failed_write(real_failure, writer):
    method, report = real_failure
    entry = report[writer]
    code, words = CAUSE[method]
    if writer == "cifar10_cache":  # not fatal: one warning, the tensors from memory
        assert entry["error"] is None, entry
        assert len(entry["warnings"]) == 1 and entry["target"] in entry["warnings"][0]
        assert words in entry["warnings"][0]
        assert entry["from_memory"]
    else:
        assert entry["error"] == OWN_ERROR[writer], entry
        assert "WriteError" in entry["bases"]
        assert entry["message"].startswith(f"cannot write {entry['target']}: {words}"), entry["message"]
        assert f"The previous {Path(entry['target']).name} is unchanged." in entry["message"]
        assert entry["errno"] == code
    assert entry["old_intact"]
    assert not [name for name in entry["left"] if name.startswith(".")], entry["left"]  # no temporary
    assert entry["again"] is True, entry["again"]  # the same process writes fine once repaired


# --- injected: OSError(ENOSPC) at the write call --------------------------------------------

class _FullDisk(io.FileIO):
    """A disk that takes 16 bytes of a file, then is full."""

    def write(self, b):  # noqa: ANN001, ANN201
        if self.tell() >= 16:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(memoryview(b)[: 16 - self.tell()])


class _Injected(aw._RecordingFile, _FullDisk):
    """atomic_write's raw file, whose underlying write fails as on a full disk."""


@pytest.fixture
def full_disk(monkeypatch):
    """``fill()`` breaks every atomic write (the raw write call), ``repair()`` mends them."""

    class Disk:
        def fill(self) -> None:
            monkeypatch.setattr(aw, "_RecordingFile", _Injected)

        def repair(self) -> None:
            monkeypatch.setattr(aw, "_RecordingFile", original)

    original = aw._RecordingFile
    return Disk()


def _assert_failed_cleanly(err, target: Path, before: bytes, error_type: type) -> None:
    assert isinstance(err, error_type) and isinstance(err, aw.WriteError), repr(err)
    message = str(err)
    assert message.startswith(f"cannot write {target}: no space left on the device (ENOSPC). Free some space"), message
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []  # no temporary


def test_atomic_write_keeps_other_exceptions_and_cleans_up(tmp_path):
    target = tmp_path / "f.txt"
    aw.write_text(target, "old")
    with pytest.raises(ValueError, match="not a write problem"):
        with aw.atomic_write(target, "w") as handle:
            handle.write("half")
            raise ValueError("not a write problem")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_recovers_the_os_error_a_library_replaced(tmp_path, full_disk):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    full_disk.fill()
    with pytest.raises(aw.WriteError) as info:
        with aw.atomic_write(target) as handle:
            try:
                handle.write(b"x" * 100)
                handle.flush()
            except OSError:
                raise RuntimeError("unexpected pos 4992 vs 4886") from None  # what torch.save raises
    _assert_failed_cleanly(info.value, target, b"old", aw.WriteError)


def test_checkpoint(tmp_path, full_disk):
    target = tmp_path / "run.pt"
    save_checkpoint(target, {"w": torch.zeros(3)})
    before = target.read_bytes()
    full_disk.fill()
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(target, {"w": torch.ones(1000)})
    _assert_failed_cleanly(info.value, target, before, CheckpointWriteError)
    assert "pass a checkpoint_path on another disk" in str(info.value)
    full_disk.repair()
    save_checkpoint(target, {"w": torch.ones(3)})
    assert torch.equal(load_checkpoint(target)["w"], torch.ones(3))


def test_download_is_not_retried_as_a_network_error(tmp_path, full_disk):
    import hashlib
    target, calls = tmp_path / "x.bin", []
    target.write_bytes(b"old")
    body = b"y" * 1000

    def opener(url, timeout):
        calls.append(url)
        return io.BytesIO(body)

    full_disk.fill()
    with pytest.raises(df.DataFileError) as info:
        df.download("https://example.org/x.bin", target, hashlib.sha256(body).hexdigest(), opener=opener,
                    backoff=0)
    _assert_failed_cleanly(info.value, target, b"old", df.DataWriteError)
    assert "set COURSE_DATA to a folder on another disk" in str(info.value)
    assert len(calls) == 1  # a full disk is not a flaky network
    full_disk.repair()
    df.download("https://example.org/x.bin", target, hashlib.sha256(body).hexdigest(), opener=opener)
    assert target.read_bytes() == body


def test_archive_extraction_on_a_full_disk_is_not_called_corrupt(tmp_path, monkeypatch):
    import zipfile
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("d/x.txt", "hello")

    def full(source, out, length=0):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ar.shutil, "copyfileobj", full)
    with pytest.raises(df.DataWriteError, match=r"cannot write .*out \(extracting .*a\.zip\): no space left"):
        ar.safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # no staging folder left
    monkeypatch.undo()
    assert [p.name for p in ar.safe_extract(archive, tmp_path / "out")] == ["x.txt"]


def test_report_results(tmp_path, monkeypatch, full_disk, capsys):
    from course_utils.report import read_results, report_results
    target = tmp_path / "results.jsonl"
    monkeypatch.setenv("COURSE_RESULTS_FILE", str(target))
    report_results({"a": 1})
    full_disk.fill()
    with pytest.raises(aw.WriteError) as info:
        report_results({"b": 2})
    _assert_failed_cleanly(info.value, target, b'{"a": 1}\n', aw.WriteError)
    full_disk.repair()
    report_results({"b": 2})
    assert read_results(target) == {"a": 1, "b": 2}


def test_live_plot_png(tmp_path, full_disk):
    from course_utils.plotting import LivePlot
    target = tmp_path / "curve.png"
    target.write_bytes(b"old png")
    plot = LivePlot(legend=["loss"], save_path=target, show=False)
    plot.add(1, {"loss": 1.0})
    full_disk.fill()
    with pytest.raises(aw.WriteError) as info:
        plot.finish()
    _assert_failed_cleanly(info.value, target, b"old png", aw.WriteError)
    full_disk.repair()
    plot.finish()
    assert target.read_bytes().startswith(b"\x89PNG")


def test_make_outputs_keeps_the_notebook(tmp_path, full_disk):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import notebook_outputs
    finally:
        sys.path.remove(str(REPO / "tools"))
    target = tmp_path / "01_x.ipynb"
    shutil.copyfile(REPO / "notebooks" / "01_tensors.ipynb", target)
    before = target.read_bytes()
    full_disk.fill()
    with pytest.raises(aw.WriteError) as info:
        notebook_outputs.main(["strip", str(target)])
    _assert_failed_cleanly(info.value, target, before, aw.WriteError)
    full_disk.repair()
    assert notebook_outputs.main(["strip", str(target)]) == 0


def test_make_run_ends_with_one_line_naming_the_file(tmp_path, full_disk, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import run_notebooks
    finally:
        sys.path.remove(str(REPO / "tools"))
    target = tmp_path / "report.md"
    target.write_text("old report")
    full_disk.fill()
    with pytest.raises(aw.WriteError) as info:
        run_notebooks.write_reports([run_notebooks.Outcome("01_x")], tmp_path, smoke=True)
    _assert_failed_cleanly(info.value, target, b"old report", aw.WriteError)
    assert "pass --out a folder on another disk" in str(info.value)


def test_make_site_keeps_the_old_site(tmp_path, monkeypatch):
    from tools.website import build
    src, out = tmp_path / "build", tmp_path / "site"
    src.mkdir()
    shutil.copyfile(REPO / "notebooks" / "01_tensors.ipynb", src / "01_tensors.ipynb")
    out.mkdir()
    (out / "index.html").write_text("old site")
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if self.name == "index.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(build.SiteError) as info:
        build.build_site(src, out, REPO / "README.md", quiet=True)
    assert isinstance(info.value, aw.WriteError)
    assert "no space left on the device (ENOSPC)" in str(info.value) and "index.html" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "site"]  # no half-built site.tmp
    assert (out / "index.html").read_text() == "old site" and len(list(out.iterdir())) == 1
    monkeypatch.undo()
    build.build_site(src, out, REPO / "README.md", quiet=True)
    assert "old site" not in (out / "index.html").read_text()


def test_cifar10_cache_that_cannot_be_written_warns_once_and_loads_from_memory(tmp_path, monkeypatch, full_disk):
    from test_cifar10_jpeg import _make
    monkeypatch.setattr(cj, "_COUNTS", {"train": 2, "test": 1})
    cj._load.cache_clear()
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    cache = tmp_path / "cache" / "c.pt"
    try:
        full_disk.fill()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = cj.decoded_tensors(archive, train_csv, test_csv, cache)
            second = cj.decoded_tensors(archive, train_csv, test_csv, cache)
        messages = [str(w.message) for w in caught if "could not cache" in str(w.message)]
        assert len(messages) == 1, messages
        assert f"cannot write {cache}: no space left on the device" in messages[0]
        expected = cj.decode_archive(archive, train_csv, test_csv)
        for name, tensor in expected.items():
            assert torch.equal(first[name], tensor) and torch.equal(second[name], tensor)
        assert list(cache.parent.iterdir()) == []  # no temporary, no half cache
        with pytest.raises(cj.CacheWriteError):  # build_cache itself still says so
            cj.build_cache(archive, train_csv, test_csv, cache)
        full_disk.repair()
        cj._load.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cj.CacheWarning)
            cj.decoded_tensors(archive, train_csv, test_csv, cache)
        assert cache.is_file()
    finally:
        cj._load.cache_clear()


def test_read_only_checkpoint_folder_is_named_as_such(tmp_path, monkeypatch):
    """The check before training: a folder root cannot write either (a read-only mount) is
    named read-only, not 'no permission'."""
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(os, "statvfs", lambda p: os.statvfs_result((0,) * 8 + (os.ST_RDONLY, 255)))
    with pytest.raises(CheckpointWriteError, match="the file system is read-only .EROFS."):
        save_checkpoint(tmp_path / "run.pt", {})
