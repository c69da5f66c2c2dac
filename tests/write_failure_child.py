"""Run by tests/test_write_failures.py in a process of its own: make each course writer fail for
real, then report what happened as JSON on stdout.

    python write_failure_child.py FOLDER rlimit    # RLIMIT_FSIZE: writes past 64 KiB fail (EFBIG)
    python write_failure_child.py FOLDER tmpfs     # FOLDER is a fresh tmpfs, filled up (ENOSPC)
    python write_failure_child.py FOLDER readonly  # FOLDER is a tmpfs remounted read-only (EROFS)

The last two need root and a private mount namespace (``unshare --mount``), so that nothing
mounted here outlives the process. For each writer: write a small "old" file, break the file
system, try a large write, record the error, whether the old file is intact and what else is
left in its folder, then repair the file system and check that the same writer works again in
this very process.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tools"), str(REPO / "benchmarks")]

import torch  # noqa: E402

from course_utils import cifar10_jpeg as cj  # noqa: E402
from course_utils import datafiles as df  # noqa: E402
from course_utils.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from course_utils.report import read_results, report_results  # noqa: E402

LIMIT = 64 * 1024  # bytes a write may reach while the file system is "broken"
BIG = 4 * LIMIT


class Writer:
    """``old()`` writes the small file, ``big()`` the write that must fail, ``again()`` a write
    after the repair (returns True when its result reads back correctly). ``also``: other files
    the failed write must leave intact (the error may name one of them: it failed first)."""

    name = ""
    target = Path()
    also: list[Path] = []

    def __init__(self, folder: Path) -> None:
        self.folder = folder / self.name
        self.folder.mkdir()


class Checkpoint(Writer):
    name = "checkpoint"

    def old(self):
        self.target = self.folder / "run.pt"
        save_checkpoint(self.target, {"w": torch.zeros(4)})

    def big(self):
        save_checkpoint(self.target, {"w": torch.zeros(BIG // 4)})

    def again(self):
        save_checkpoint(self.target, {"w": torch.ones(4)})
        return torch.equal(load_checkpoint(self.target)["w"], torch.ones(4))


def _opener(body: bytes):
    return lambda url, timeout: io.BytesIO(body)


class Download(Writer):
    name = "download"

    def _get(self, body: bytes):
        import hashlib
        return df.download("https://example.org/x.bin", self.target, hashlib.sha256(body).hexdigest(),
                           opener=_opener(body), retries=1)

    def old(self):
        self.target = self.folder / "x.bin"
        self._get(b"old")

    def big(self):
        self._get(os.urandom(BIG))

    def again(self):
        self._get(b"new")
        return self.target.read_bytes() == b"new"


class Report(Writer):
    name = "report"

    def old(self):
        self.target = self.folder / "results.jsonl"
        os.environ["COURSE_RESULTS_FILE"] = str(self.target)
        report_results({"a": 1})

    def big(self):
        report_results({"text": "x" * BIG})

    def again(self):
        report_results({"b": 2})
        return read_results(self.target) == {"a": 1, "b": 2}


class RunReport(Writer):
    """``make run``'s report (``tools/run_notebooks.py``), written with ``atomic_write.write_text``
    like the benchmark results and ``make mutants``' report."""

    name = "run_report"

    def _write(self, failing: str):
        import run_notebooks
        outcome = run_notebooks.Outcome("01_x", status="FAILED", failing_cell=failing)
        run_notebooks.write_reports([outcome], self.folder, smoke=True)

    def old(self):
        self.target = self.folder / "report.md"
        self._write("old")

    def big(self):
        self._write("x" * BIG)

    def again(self):
        self._write("new")
        return "| new |" in self.target.read_text()


class Cifar10Cache(Writer):
    """Not fatal: the cache cannot be rewritten, the tensors come from memory, one warning."""

    name = "cifar10_cache"

    warnings: list[str] = []
    from_memory = False

    def old(self):
        from test_cifar10_jpeg import _make
        cj._COUNTS = {"train": 2, "test": 1}  # a tiny archive, as in tests/test_cifar10_jpeg.py
        self.old_files = _make(self.folder, name="old.tar.gz")[:3]
        self.new_files = _make(self.folder, seed=1, name="new.tar.gz")[:3]
        self.target = self.folder / "cache" / "c.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cj.CacheWarning)
            cj.decoded_tensors(*self.old_files, self.target)
        self.expected = cj.decode_archive(*self.new_files)

    def big(self):  # another archive: the cache is stale and must be rewritten (≈ 95 kB)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = cj.decoded_tensors(*self.new_files, self.target)
            again = cj.decoded_tensors(*self.new_files, self.target)  # no second warning
        self.warnings = [str(w.message) for w in caught if "could not cache" in str(w.message)]
        self.from_memory = all(torch.equal(got[k], v) and torch.equal(again[k], v) for k, v in self.expected.items())

    def again(self):
        cj._load.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cj.CacheWarning)
            cj.decoded_tensors(*self.new_files, self.target)
        return torch.equal(torch.load(self.target, weights_only=True)["X_train"], self.expected["X_train"])


def _tiny_chapter(body: str) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["### Exercise 5.1 · implement · Double"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": [body + "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"]}]})


class Learner(Writer):
    """``make exercises``: a learner copy (and its manifest, updated before and after it)."""

    name = "learner"

    def old(self):
        import exercises
        self.tool = exercises
        self.src = {}  # the chapter as it is now, then grown, then revised (written while writes work)
        for version, body in [("old", ""), ("big", "# " + "x" * BIG + "\n"), ("new", "# new\n")]:
            self.src[version] = self.folder / f"notebooks_{version}"
            self.src[version].mkdir()
            (self.src[version] / "05_tiny.ipynb").write_text(_tiny_chapter(body))
        out = self.folder / "workbook"
        self.target, self.also = out / "05_tiny.ipynb", [out / exercises.MANIFEST]
        self.tool.write_learner_copies(out, self.src["old"])

    def big(self):  # the chapter grew: its copy is rewritten
        self.tool.write_learner_copies(self.target.parent, self.src["big"])

    def again(self):  # the copy is still known as the command's own, not taken for the learner's
        return (self.tool.write_learner_copies(self.target.parent, self.src["new"]) == (["05_tiny.ipynb"], [])
                and "# new" in self.target.read_text())


class FastSettingsCache(Writer):
    """Not fatal: the measured choice is used (and remembered in this process), one warning."""

    name = "fast_settings"
    warnings: list[str] = []
    from_memory = False

    def _choose(self, n: int):
        from torch import nn

        from course_utils import fast_settings as fs

        def measure(model, X, y, loss_fn, variants):
            self.timed += 1
            return {fs._name(b, c): 1.0 / (1 + 2 * b + c) for b, c in variants}  # bf16+cl fastest

        net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
        return fs.choose(net, torch.zeros(n, 1, 4, 4), torch.zeros(n, dtype=torch.long),
                         nn.functional.cross_entropy, cache_path=self.target, measure=measure)

    def old(self):
        os.environ.pop("COURSE_PRECISION", None)
        os.environ.pop("COURSE_CHANNELS_LAST", None)
        self.timed = 0
        self.target = self.folder / "cache" / "fast_settings.json"
        filler = {f"another machine {i}": {"pick": "fp32", "seconds": {"fp32": 1.0}} for i in range(BIG // 60)}
        self.target.parent.mkdir()  # a cache of other machines' entries, more than LIMIT bytes with them
        self.target.write_text(json.dumps({"version": 1, "entries": filler}))
        self._choose(1)

    def big(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            timed = self.timed
            first, second = self._choose(2), self._choose(2)  # the second: remembered, no warning
        self.warnings = [str(w.message) for w in caught if "could not be cached" in str(w.message)]
        self.from_memory = first.name == second.name == "bf16+cl" and self.timed == timed + 1

    def again(self):
        self._choose(3)
        entries = json.loads(self.target.read_text())["entries"]
        return len(entries) == BIG // 60 + 3


class BenchResults(Writer):
    """``make bench``: ``benchmarks/results/NAME.json`` and ``.md``, as a pair."""

    name = "bench_results"

    def old(self):
        import run_all
        self.write = lambda text: run_all.write_results("latest", {"text": text}, f"| {text} |\n", self.folder)
        self.target, self.also = self.folder / "latest.json", [self.folder / "latest.md"]
        self.write("old")

    def big(self):
        self.write("x" * BIG)

    def again(self):
        self.write("new")
        return json.loads(self.target.read_text()) == {"text": "new"} and "new" in self.also[0].read_text()


class MutantReport(Writer):
    """``make mutants``' report (``build/mutants.md``, ``.json``)."""

    name = "mutant_report"

    def _write(self, bug: str):
        import mutants
        self.tool = mutants
        outcome = mutants.Outcome("01_toy", "plus", bug, "KILLED", "Cell 1", "AssertionError", 1.0, 1.0)
        return mutants.write_reports([outcome], self.folder, 1.0)

    def old(self):
        self.target, self.also = self.folder / "mutants.md", [self.folder / "mutants.json"]
        self._write("old")

    def big(self):
        self._write("x" * BIG)

    def again(self):
        return "| new |" in self._write("new") and "| new |" in self.target.read_text()


WRITERS = [Checkpoint, Download, Report, RunReport, Cifar10Cache, Learner, FastSettingsCache, BenchResults,
           MutantReport]


def main() -> None:
    real_stdout = sys.stdout
    sys.stdout = io.StringIO()  # report_results prints; only the JSON goes out
    folder, method = Path(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us at the limit
    if method != "rlimit":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
    writers = [cls(folder) for cls in WRITERS]
    for w in writers:
        w.old()
    before = {str(p): p.read_bytes() for w in writers for p in [w.target, *w.also]}
    filler = folder / "filler"
    if method == "rlimit":
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
    elif method == "tmpfs":
        with open(filler, "wb") as f:  # leave LIMIT bytes free
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            f.write(b"\0" * max(0, free - LIMIT))
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    report = {}
    for w in writers:
        entry: dict = {}
        try:
            w.big()
            entry["error"] = None
        except Exception as err:  # noqa: BLE001 - recorded for the test to judge
            cause = err.__cause__
            entry.update(error=type(err).__name__, bases=[c.__name__ for c in type(err).__mro__],
                         message=str(err), errno=getattr(cause, "errno", None), named=str(getattr(err, "path", "")),
                         traceback=traceback.format_exc()[-2000:])
        if isinstance(w, (Cifar10Cache, FastSettingsCache)):
            entry.update(warnings=w.warnings, from_memory=w.from_memory)
        entry["old_intact"] = all(p.read_bytes() == before[str(p)] for p in [w.target, *w.also])
        entry["target"] = str(w.target)
        entry["also"] = [str(p) for p in w.also]
        entry["left"] = sorted(str(p.relative_to(w.folder)) for p in w.folder.rglob("*"))
        report[w.name] = entry
    if method == "rlimit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    elif method == "tmpfs":
        filler.unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
    for w in writers:
        try:
            report[w.name]["again"] = bool(w.again())
        except Exception as err:  # noqa: BLE001
            report[w.name]["again"] = f"{type(err).__name__}: {err}"
    print(json.dumps(report), file=real_stdout)


if __name__ == "__main__":
    main()
