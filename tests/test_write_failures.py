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
WRITERS = ["checkpoint", "download", "report", "run_report", "cifar10_cache", "learner", "fast_settings",
           "bench_results", "mutant_report"]
OWN_ERROR = {"checkpoint": "CheckpointWriteError", "download": "DataWriteError", "report": "WriteError",
             "run_report": "WriteError", "learner": "ExerciseWriteError", "bench_results": "WriteError",
             "mutant_report": "MutantWriteError"}
NOT_FATAL = {"cifar10_cache", "fast_settings"}  # one warning; the data or the choice from memory
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
    if writer in NOT_FATAL:  # not fatal: one warning, the tensors or the measured choice from memory
        assert entry["error"] is None, entry
        assert len(entry["warnings"]) == 1 and entry["target"] in entry["warnings"][0], entry["warnings"]
        assert words in entry["warnings"][0]
        assert entry["from_memory"]
    else:
        assert entry["error"] == OWN_ERROR[writer], entry
        assert "WriteError" in entry["bases"]
        named = entry["named"]  # the file itself, or one written with it that failed first
        assert named in [entry["target"], *entry["also"]], entry
        assert entry["message"].startswith(f"cannot write {named}: {words}"), entry["message"]
        assert f"The previous {Path(named).name} is unchanged." in entry["message"]
        assert entry["errno"] == code
    assert entry["old_intact"]  # the file and those written with it
    temporaries = [n for n in entry["left"] if Path(n).name.startswith(".") and not n.endswith(".generated.json")]
    assert not temporaries, entry["left"]
    assert entry["again"] is True, entry["again"]  # the same process writes fine once repaired


# --- injected: OSError(ENOSPC) at the write call --------------------------------------------

class _FullDisk(io.FileIO):
    """A disk that takes 16 bytes of a file, then is full (unless ``broken`` is False)."""

    broken = True

    def write(self, b):  # noqa: ANN001, ANN201
        if not self.broken:
            return super().write(b)
        if self.tell() >= 16:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(memoryview(b)[: 16 - self.tell()])


@pytest.fixture
def full_disk(monkeypatch):
    """``fill()`` breaks every atomic write (the raw write call under atomic_write's recorder),
    ``fill(only=NAME, spare=N)`` only the writes of files named NAME after N of them worked;
    ``repair()`` mends them."""
    original = aw._RecordingFile

    class Disk:
        def fill(self, only: str | None = None, spare: int = 0) -> None:
            left = [spare]

            class Injected(original, _FullDisk):  # type: ignore[misc, valid-type]
                def __init__(self, name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
                    super().__init__(name, *args, **kwargs)
                    self.broken = only is None or Path(name).name.startswith(f".{only}.")
                    if self.broken and left[0] > 0:
                        left[0] -= 1
                        self.broken = False

            monkeypatch.setattr(aw, "_RecordingFile", Injected)

        def repair(self) -> None:
            monkeypatch.setattr(aw, "_RecordingFile", original)

    return Disk()


def _assert_failed_cleanly(err, target: Path, before: bytes, error_type: type, dotfiles: tuple[str, ...] = ()) -> None:
    assert isinstance(err, error_type) and isinstance(err, aw.WriteError), repr(err)
    message = str(err)
    assert message.startswith(f"cannot write {target}: no space left on the device (ENOSPC). Free some space"), message
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert target.read_bytes() == before
    left = [p.name for p in target.parent.iterdir() if p.name.startswith(".") and p.name not in dotfiles]
    assert left == []  # no temporary


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


# --- the writers added since: learner copies, cached settings, benchmark and mutant results ----

def _tool(name: str, path: Path):
    """A tool script as a module (the one already loaded under ``name``, if any)."""
    import importlib.util
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _exercises():
    return _tool("exercises_tool", REPO / "tools" / "exercises.py")


def _tiny(title: str) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": [f"# 05 · {title}"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["### Exercise 5.1 · implement · Double"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"]}]}


def _learner_project(tmp_path: Path):
    """Two chapters and their learner copies, then the chapters revised (so both copies are due)."""
    tool = _exercises()
    src, out = tmp_path / "notebooks", tmp_path / "workbook"
    src.mkdir()
    for name in ("05_a.ipynb", "05_b.ipynb"):
        (src / name).write_text(json.dumps(_tiny("old")), encoding="utf-8")
    assert tool.write_learner_copies(out, src) == (["05_a.ipynb", "05_b.ipynb"], [])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for name in ("05_a.ipynb", "05_b.ipynb"):
        (src / name).write_text(json.dumps(_tiny("new")), encoding="utf-8")
    return tool, src, out, before


def test_learner_copy_that_cannot_be_written(tmp_path, full_disk):
    tool, src, out, before = _learner_project(tmp_path)
    full_disk.fill(only="05_b.ipynb")
    with pytest.raises(tool.ExerciseWriteError) as info:
        tool.write_learner_copies(out, src)
    _assert_failed_cleanly(info.value, out / "05_b.ipynb", before["05_b.ipynb"], tool.ExerciseWriteError,
                           dotfiles=(tool.MANIFEST,))
    assert "pass --out a folder on another disk" in str(info.value)
    assert "new" in (out / "05_a.ipynb").read_text()  # written before the disk filled up
    recorded = json.loads((out / tool.MANIFEST).read_text())  # set back to what was written
    assert recorded == {"05_a.ipynb": tool.sha256((out / "05_a.ipynb").read_text()),
                        "05_b.ipynb": tool.sha256(before["05_b.ipynb"].decode())}
    full_disk.repair()  # neither copy is taken for the learner's work: both are brought up to date
    assert tool.write_learner_copies(out, src) == (["05_b.ipynb"], [])
    assert tool.write_learner_copies(out, src) == ([], [])
    assert all(isinstance(v, str) for v in json.loads((out / tool.MANIFEST).read_text()).values())


def test_learner_copies_written_but_their_manifest_not(tmp_path, full_disk):
    """The final manifest update fails: the copies are new, the manifest accepts old and new."""
    tool, src, out, before = _learner_project(tmp_path)
    full_disk.fill(only=tool.MANIFEST, spare=1)  # the update before the copies works, the one after not
    with pytest.raises(tool.ExerciseWriteError, match=r"\.generated\.json: no space left on the device"):
        tool.write_learner_copies(out, src)
    assert all("new" in (out / n).read_text() for n in ("05_a.ipynb", "05_b.ipynb"))
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != tool.MANIFEST] == []
    full_disk.repair()
    mine = (out / "05_b.ipynb").read_text().replace("raise NotImplementedError", "return 2 * x  #")
    (out / "05_b.ipynb").write_text(mine)  # the learner works on one copy meanwhile
    (src / "05_a.ipynb").write_text(json.dumps(_tiny("newer")), encoding="utf-8")
    assert tool.write_learner_copies(out, src) == (["05_a.ipynb"], ["05_b.ipynb"])  # recognised; work kept
    assert (out / "05_b.ipynb").read_text() == mine


def test_learner_manifest_that_cannot_be_updated_first_writes_nothing(tmp_path, full_disk):
    tool, src, out, before = _learner_project(tmp_path)
    full_disk.fill(only=tool.MANIFEST)
    with pytest.raises(tool.ExerciseWriteError) as info:
        tool.write_learner_copies(out, src)
    _assert_failed_cleanly(info.value, out / tool.MANIFEST, before[tool.MANIFEST], tool.ExerciseWriteError,
                           dotfiles=(tool.MANIFEST,))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_make_exercises_ends_with_one_line_and_status_2(tmp_path, full_disk, capsys, monkeypatch):
    tool = _exercises()
    full_disk.fill()
    assert tool.main(["learner", "--out", str(tmp_path / "workbook")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path / 'workbook' / tool.MANIFEST}: no space left"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert [p.name for p in (tmp_path / "workbook").iterdir()] == []
    report = tmp_path / "exercises.json"  # verify --report: the same
    report.write_text("old report")
    row = {"notebook": "02_autograd", "key": "2.1/solution", "bug": "the solution", "expect": "passes", "ok": True,
           "status": "PASSED", "message": "", "seconds": 0.1}
    monkeypatch.setattr(tool, "verify", lambda stems: [row])
    assert tool.main(["verify", "--report", str(report), "02_autograd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {report}: no space left") and "Traceback" not in err
    assert report.read_text() == "old report" and sorted(p.name for p in tmp_path.iterdir()) == [
        "exercises.json", "workbook"]
    full_disk.repair()
    assert tool.main(["verify", "--report", str(report), "02_autograd"]) == 0
    assert json.loads(report.read_text()) == [row]


def test_cached_settings_that_cannot_be_written_warn_once_and_train_on(tmp_path, full_disk, monkeypatch):
    from torch import nn

    from course_utils import fast_settings as fs
    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    monkeypatch.delenv("COURSE_CHANNELS_LAST", raising=False)
    timed: list[int] = []

    def measure(model, X, y, loss_fn, variants):
        timed.append(len(X))
        return {fs._name(b, c): 1.0 / (1 + 2 * b + c) for b, c in variants}  # bf16+cl fastest

    def choose(n: int):
        net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
        return fs.choose(net, torch.zeros(n, 1, 4, 4), torch.zeros(n, dtype=torch.long),
                         nn.functional.cross_entropy, cache_path=cache, measure=measure)

    cache = tmp_path / "cache" / "fast_settings.json"
    choose(1)
    before = cache.read_bytes()
    full_disk.fill()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, again, other = choose(2), choose(2), choose(3)
    messages = [str(w.message) for w in caught if "could not be cached" in str(w.message)]
    assert len(messages) == 1, messages
    assert f"cannot write {cache}: no space left on the device (ENOSPC)" in messages[0]
    assert "set XDG_CACHE_HOME to a folder on another disk" in messages[0]
    assert first.name == again.name == other.name == "bf16+cl" and timed == [1, 2, 3]  # 2 not timed twice
    assert "timed earlier in this process" in again.how
    assert cache.read_bytes() == before and [p.name for p in cache.parent.iterdir()] == [cache.name]
    full_disk.repair()
    choose(4)  # the next write that works keeps what this process measured meanwhile
    assert len(json.loads(cache.read_text())["entries"]) == 4 and cache not in fs._NOT_CACHED


def _run_all():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return run_all


@pytest.mark.parametrize("fails", ["run.json", "run.md"])
def test_benchmark_results_stay_a_pair(tmp_path, full_disk, fails):
    run_all = _run_all()
    run_all.write_results("run", {"old": 1}, "old table\n", tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    full_disk.fill(only=fails)
    with pytest.raises(aw.WriteError) as info:
        run_all.write_results("run", {"new": "x" * 100}, "new table " * 10, tmp_path)
    _assert_failed_cleanly(info.value, tmp_path / fails, before[fails], aw.WriteError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the .json put back too
    full_disk.repair()
    run_all.write_results("run", {"new": 2}, "new table\n", tmp_path)
    assert json.loads((tmp_path / "run.json").read_text()) == {"new": 2}


def test_make_bench_prints_the_table_then_one_line(tmp_path, full_disk, monkeypatch, capsys):
    run_all = _run_all()
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--skip-speed", "--skip-suite", "--name", "t"])
    full_disk.fill()
    with pytest.raises(SystemExit) as info:
        run_all.main()
    assert str(info.value.code).startswith(f"error: cannot write {tmp_path / 't.json'}: no space left")
    assert "Measured " in capsys.readouterr().out and list(tmp_path.iterdir()) == []


def test_a_benchmark_out_file(tmp_path, full_disk, monkeypatch, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_time_to_accuracy as bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    monkeypatch.setattr(bench, "train_fast", lambda seed, **recipe: {"test_acc": 0.9, "seconds": 1.0})
    out = tmp_path / "r.json"
    out.write_text("old")
    monkeypatch.setattr(sys, "argv", ["bench", "--out", str(out), "--seeds", "1", "--budgets", "quick"])
    full_disk.fill()
    with pytest.raises(SystemExit) as info:
        bench.main()
    assert str(info.value.code).startswith(f"error: cannot write {out}: no space left on the device")
    assert "pass --out a file on another disk" in str(info.value.code)
    assert '"runs_meeting_goal"' in capsys.readouterr().out  # the measurement is printed all the same
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def _mutants():
    return _tool("mutants_tool", REPO / "tools" / "mutants.py")


def _mutant_project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "mutants").mkdir()
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["def double(x):\n    return 2 * x\n"]}]}
    (root / "notebooks" / "01_toy.ipynb").write_text(json.dumps(nb))
    (root / "mutants" / "01_toy.toml").write_text('[[mutant]]\nid = "plus"\nbug = "adds"\n'
                                                 'find = "return 2 * x"\nreplace = "return 2 + x"\n')
    return root


@pytest.mark.parametrize("fails, cold", [("01_toy.ipynb", True), ("kernel.json", False)])
def test_make_mutants_stops_with_one_line(tmp_path, full_disk, capsys, fails, cold):
    """A mutant's notebook copy (or the warm kernel's spec) that cannot be written: no run, no
    report, one line; never a cut-short copy that pytest would fail on (a false kill)."""
    mutants, root = _mutants(), _mutant_project(tmp_path)
    full_disk.fill(only=fails)
    assert mutants.main(["--root", str(root), *(["--cold"] if cold else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write ") and f"{fails}: no space left on the device" in err, err
    assert "Traceback" not in err and not (root / "build" / "mutants.md").exists()
    assert [p for p in (root / "build").rglob(".*")] == []  # no temporary


def test_mutant_report(tmp_path, full_disk):
    mutants = _mutants()
    outcome = mutants.Outcome("01_toy", "plus", "adds", "KILLED", "Cell 1", "AssertionError", 1.0, 1.0)
    mutants.write_reports([outcome], tmp_path, 1.0)
    before = (tmp_path / "mutants.md").read_bytes()
    full_disk.fill(only="mutants.md")
    with pytest.raises(mutants.MutantWriteError) as info:
        mutants.write_reports([outcome], tmp_path, 2.0)
    _assert_failed_cleanly(info.value, tmp_path / "mutants.md", before, mutants.MutantWriteError)
    full_disk.repair()
    assert "Wall time 2.0 s" in mutants.write_reports([outcome], tmp_path, 2.0)


def test_mutant_log_and_a_run_stopped_by_a_failed_write(tmp_path):
    mutants = _mutants()
    (tmp_path / "file").write_text("")
    with pytest.raises(mutants.MutantWriteError, match=r"cannot write .*pytest\.log: "):
        mutants.run_pytest([], tmp_path, {}, tmp_path / "file" / "pytest.log", 1, None, "x")
    log = tmp_path / "pytest.log"
    log.write_text("E   OSError: [Errno 28] No space left on device\n")
    assert mutants._a_write_failed("", log)  # not a kill: the disk stopped the run
    assert mutants._a_write_failed("cannot write /d/x.pt: the file system is read-only (EROFS)", tmp_path / "none")
    log.write_text("E   AssertionError: 5 != 6\n")
    assert not mutants._a_write_failed("AssertionError", log)
