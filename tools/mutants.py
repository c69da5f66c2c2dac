"""Mutation testing of the notebooks (``make mutants``): does each notebook catch a planted bug?

A catalogue ``mutants/<notebook stem>.toml`` lists mutants (``[[mutant]]`` tables with ``id``,
``bug``, ``find``, ``replace``; see CONTRIBUTING.md). For every mutant the harness copies the
notebook to ``build/mutants/<stem>__<id>/``, replaces the one occurrence of ``find`` in its code
cells by ``replace`` and runs the copy the way ``make test`` runs notebooks: ``COURSE_SMOKE=1``,
``pytest --nbval-lax --nbval-current-env -x`` (so ``# NBVAL_CHECK_OUTPUT`` outputs are compared
too), stopping at the first failing cell. A mutant is KILLED if some cell fails (or the run
exceeds ``--timeout``), SURVIVED if the notebook passes. Results: ``build/mutants.md`` and
``build/mutants.json``; exit status 1 if a mutant survived, a baseline failed or a catalogue is
invalid. Every catalogue is validated before anything runs (a ``find`` that is missing or not
unique, a duplicate id, an unknown key, ``find == replace``, a catalogue without its notebook).

A write that fails (a full disk, a read-only ``build/``, a file-size limit) stops the run with
one line naming the file and the cause, exit status 2, and no report: the scratch files (each
mutant's notebook copy, the warm-start kernel spec) and the reports are written whole or not at
all (``course_utils/atomic_write.py``); ``pytest.log`` is a stream, read by no later run (each
run starts from an empty folder). A mutant whose run failed because a write failed (its failing
cell or its log says so) was not killed by the notebook: it counts as ``FAILED (a write failed)``.

    python tools/mutants.py [NOTEBOOK ...] [--jobs N] [--timeout 240] [-k TEXT] [--baseline]
    python tools/mutants.py --baseline -k ::baseline  # only the unmutated notebooks (a control)
    python tools/mutants.py --check          # only validate the catalogues (fast)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from course_utils.atomic_write import WriteError, write_text  # noqa: E402  (standard library only: no torch)
from tools import warm_start  # noqa: E402
from tools.cpu_count import usable_cores  # noqa: E402  (course_utils.cores: affinity capped by the cgroup quota)

KEYS = {"id", "bug", "find", "replace"}
# `python -m pytest`, minus ~3 CPU-seconds of start-up per run that the notebook tests never use:
# jsonschema's optional IRI checker (rfc3987_syntax builds a grammar on import; nbval imports
# nbformat -> jsonschema) and the hypothesis plugin (-p no:hypothesispytest below).
PYTEST = "import sys; sys.modules['rfc3987_syntax'] = None; import pytest; sys.exit(pytest.main())"
ID_RE = re.compile(r"^[A-Za-z0-9-]+$")
ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")  # colour codes in nbval's reports (escaped in junit XML)
RUNNING: set[subprocess.Popen] = set()  # pytest processes to kill on Ctrl-C (they run in their own sessions)


class CatalogueError(ValueError):
    """A catalogue entry that cannot be applied: the message names file, mutant and problem."""


class MutantWriteError(WriteError):
    """A file of ``make mutants`` (a notebook copy, the kernel spec, a log, a report) could not be written."""


ELSEWHERE = "free space under build/ (`make clean` removes it)"
# what a write failing inside a run prints (the OS's words, or a course writer's WriteError)
WRITE_FAILED = re.compile(r"No space left on device|Read-only file system|File too large|Disk quota exceeded|"
                          r"cannot write .*: (no space left|the file system is read-only|file too large|"
                          r"the disk quota)")


@dataclass
class Mutant:
    notebook: str  # stem, e.g. "05_mlp"
    id: str
    bug: str
    find: str
    replace: str


@dataclass
class Outcome:
    notebook: str
    id: str
    bug: str
    status: str  # KILLED, KILLED (timeout), SURVIVED; for a baseline PASSED or FAILED; FAILED (a write failed)
    cell: str  # the catching cell as nbval numbers it (code cells only): "Cell 12: first line"
    message: str  # first line of the failure
    seconds: float
    cpu_seconds: float  # pytest + kernel CPU time; on a busy machine a fairer cost than seconds


def code_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def load_catalogue(path: Path, notebook_dir: Path) -> list[Mutant]:
    """Read and validate one catalogue; raise CatalogueError naming every problem found."""
    nb_path = notebook_dir / f"{path.stem}.ipynb"
    if not nb_path.exists():
        raise CatalogueError(f"{path}: no notebook {nb_path} for this catalogue")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise CatalogueError(f"{path}: not valid TOML: {err}") from None
    problems = [f"unknown top-level key {k!r} (only [[mutant]] tables)" for k in data if k != "mutant"]
    sources = code_sources(json.loads(nb_path.read_text(encoding="utf-8")))
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for n, entry in enumerate(data.get("mutant", []), start=1):
        name = f"mutant #{n} ({entry.get('id', 'no id')})"
        if set(entry) != KEYS:
            problems.append(f"{name}: keys must be {sorted(KEYS)}, got {sorted(entry)}")
            continue
        if not all(isinstance(entry[k], str) for k in KEYS):
            problems.append(f"{name}: every value must be a string")
            continue
        if not ID_RE.match(entry["id"]) or entry["id"] in seen | {"baseline"}:
            problems.append(f"{name}: id must be unique, not 'baseline', and use only letters, digits and '-'")
        seen.add(entry["id"])
        if not entry["bug"].strip() or "\n" in entry["bug"].strip():
            problems.append(f"{name}: bug must be one non-empty line")
        if entry["find"] == entry["replace"]:
            problems.append(f"{name}: find == replace (nothing is mutated)")
        count = sum(src.count(entry["find"]) for src in sources) if entry["find"] else 0
        if count != 1:
            problems.append(f"{name}: find occurs {count} times in the code cells of {nb_path.name} "
                            f"(must be exactly once): {entry['find'][:80]!r}")
        mutants.append(Mutant(path.stem, **entry))
    if not mutants and not problems:
        problems.append("no [[mutant]] tables")
    if problems:
        raise CatalogueError(f"{path}:\n  " + "\n  ".join(problems))
    return mutants


def load_all(root: Path, notebooks: list[str]) -> list[Mutant]:
    """Validate every catalogue (all of them: a rotten one fails even a restricted run)."""
    errors, mutants = [], []
    for path in sorted((root / "mutants").glob("*.toml")):
        try:
            mutants += load_catalogue(path, root / "notebooks")
        except CatalogueError as err:
            errors.append(str(err))
    if errors:
        raise CatalogueError("\n".join(errors))
    if notebooks:
        stems = {Path(n).stem for n in notebooks}
        missing = stems - {m.notebook for m in mutants}
        if missing:
            raise CatalogueError(f"no catalogue mutants/<stem>.toml for {sorted(missing)}")
        mutants = [m for m in mutants if m.notebook in stems]
    return mutants


def mutate(nb: dict, mutant: Mutant) -> dict:
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and mutant.find in src:
            cell["source"] = src.replace(mutant.find, mutant.replace)
    return nb


def first_failure(junit: Path, nb: dict) -> tuple[str, str]:
    """The first failing nbval item as ("cell N: first source line", failure message)."""
    if not junit.exists():
        return "", ""
    for case in ET.parse(junit).iter("testcase"):
        bad = next((e for e in (case.find("failure"), case.find("error")) if e is not None), None)
        if bad is None:
            continue
        match = re.search(r"Cell (\d+)", case.get("name", ""))
        text = ANSI.sub("", bad.text or "")
        message = ANSI.sub("", bad.get("message") or "").strip().splitlines()
        if not match:
            return case.get("name", "?"), message[0][:200] if message else ""
        index = int(match.group(1))  # nbval numbers the code cells only
        lines = [ln for ln in code_sources(nb)[index].splitlines() if ln.strip() and not ln.startswith("# NBVAL")]
        detail = [ln.strip() for ln in text.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b", ln.strip())
                  or "outputs differ" in ln]  # an NBVAL_CHECK_OUTPUT cell printed something else
        return f"Cell {index}: {lines[0].strip()[:60] if lines else ''}", (detail or message or [""])[-1][:200]
    return "", ""


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill pytest and its kernel (jupyter starts kernels in their own session)."""
    try:
        import psutil
        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing or pytest already gone: the kernel polls its parent and exits
        children = []
    for p in children:
        try:
            p.kill()
        except Exception:
            pass
    os.killpg(proc.pid, signal.SIGKILL)


def wait_with_cpu(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Wait for ``proc``; return its exit code (None after ``timeout`` s) and the CPU seconds it and
    the children it waited for (pytest's kernel) used: a measure that a busy machine does not inflate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        time.sleep(0.1)
    return None, 0.0


def run_env(root: Path, threads: int) -> dict[str, str]:
    """The environment of every run: smoke mode and torch threads (cores // jobs unless the caller
    set OMP_NUM_THREADS; MKL (matmul) follows OMP: MKL at 2 threads while OMP is at 1 made a busy
    2-core machine ~6x slower)."""
    omp = os.environ.get("OMP_NUM_THREADS") or str(threads)
    env = dict(os.environ, COURSE_SMOKE="1", OMP_NUM_THREADS=omp,
               MKL_NUM_THREADS=os.environ.get("MKL_NUM_THREADS", omp))
    # what the repository's conftest.py gives the kernels that pytest starts (network guard via
    # sitecustomize, Agg backend), set here already so that the warm-start server imports under it
    guard = [str(root / "tests" / "netguard"), str(root)] if (root / "conftest.py").exists() else []
    if guard:
        inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env.update(COURSE_NETWORK_GUARD="1", PYTHONPATH=os.pathsep.join(guard + inherited))
        env.setdefault("MPLBACKEND", "Agg")
    return env


class WarmServer:
    """tools/warm_start.py serving this run: pytest and kernels forked from one warm process."""

    def __init__(self, root: Path, out: Path, env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="course-warm-"))  # short: AF_UNIX paths are <= 107 bytes
        self.socket = str(self.folder / "socket")
        spec = out / "mutants" / "_jupyter" / "kernels" / warm_start.KERNEL_NAME
        write_text(spec / "kernel.json", json.dumps({  # whole or not at all: jupyter reads it
            "argv": [sys.executable, "-S", str(Path(warm_start.__file__).resolve()), "kernel",
                     "-f", "{connection_file}"],
            "display_name": "Python 3 (warm start for make mutants)", "language": "python",
            "interrupt_mode": "signal"}), error=MutantWriteError, elsewhere=ELSEWHERE)
        self.env = dict(env, JUPYTER_PATH=os.pathsep.join([str(spec.parent.parent), env.get("JUPYTER_PATH", "")]),
                        **{warm_start.SOCKET_ENV: self.socket})
        self.proc = subprocess.Popen([sys.executable, warm_start.__file__, "serve", self.socket], cwd=root, env=env,
                                     stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline() if self.proc.stdout else ""
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError("the warm-start server did not start (run with --cold to bypass it)")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)


def run_pytest(cmd: list[str], root: Path, env: dict[str, str], log: Path, timeout: float,
               warm: WarmServer | None, tag: str) -> tuple[int | None, float]:
    """Run pytest; return its exit code (None after ``timeout`` s) and the CPU seconds of pytest and
    its kernel (on a busy machine a fairer cost than wall seconds)."""
    try:
        out = open(log, "w")  # noqa: SIM115  (a stream for pytest's output; no later run reads it)
    except OSError as err:
        raise MutantWriteError.from_os_error(log, err, elsewhere=ELSEWHERE) from err
    with out:
        if warm is None:
            proc = subprocess.Popen([sys.executable, "-c", PYTEST, *cmd], cwd=root, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            RUNNING.add(proc)
            code, cpu = wait_with_cpu(proc, timeout)
            if code is None:
                kill_tree(proc)
                proc.wait()
            RUNNING.discard(proc)
            return code, cpu
        request = {"kind": "pytest", "argv": cmd, "cwd": str(root),
                   "env": dict(env, **warm.env, **{warm_start.TAG_ENV: tag})}
        with warm_start.connect(warm.socket) as sock, open(os.devnull) as devnull:
            warm_start.send_request(sock, request, [devnull.fileno(), out.fileno(), out.fileno()])
            buffer = bytearray()
            warm_start.read_reply(sock, buffer, 60)  # the pid
            reply = warm_start.read_reply(sock, buffer, timeout)
        # leaving the block closes the connection: after a timeout the server kills the run
        return (None, 0.0) if reply is None else (int(reply["exit"]), float(reply["cpu"]))


def run_one(root: Path, out: Path, mutant: Mutant | None, stem: str, timeout: float, threads: int,
            warm: WarmServer | None = None) -> Outcome:
    """Run one mutant (or, with mutant None, the unmutated notebook as a baseline)."""
    work = out / "mutants" / f"{stem}__{mutant.id if mutant else 'baseline'}"
    shutil.rmtree(work, ignore_errors=True)
    nb = json.loads((root / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    if mutant:
        nb = mutate(nb, mutant)
    copy = work / f"{stem}.ipynb"  # whole or not at all: a cut-short copy would "kill" the mutant
    write_text(copy, json.dumps(nb, indent=1), error=MutantWriteError, elsewhere=ELSEWHERE)
    kernel = ["--nbval-current-env"] if warm is None else ["--nbval-kernel-name", warm_start.KERNEL_NAME]
    cmd = [str(copy), "--nbval-lax", *kernel, "-x", "-q", "-p", "no:xdist", "-p", "no:cov",
           "-p", "no:hypothesispytest", "-p", "no:cacheprovider", f"--junitxml={work / 'junit.xml'}"]
    tic = time.perf_counter()
    code, cpu = run_pytest(cmd, root, run_env(root, threads), work / "pytest.log", timeout, warm, work.name)
    seconds = time.perf_counter() - tic
    cell, message = first_failure(work / "junit.xml", nb)
    if code is None:
        status, message = "KILLED (timeout)" if mutant else "FAILED (timeout)", f"no result after {timeout:.0f} s"
    elif mutant:
        status = "SURVIVED" if code == 0 else "KILLED"
    else:
        status = "PASSED" if code == 0 else "FAILED"
    if code not in (0, None) and not cell:
        cell, message = f"(pytest exit {code}, no failing cell)", f"see {work / 'pytest.log'}"
    if code not in (0, None) and _a_write_failed(message, work / "pytest.log"):
        status = "FAILED (a write failed)"  # the disk, not the notebook, stopped the run
    return Outcome(stem, mutant.id if mutant else "baseline", mutant.bug if mutant else "unmutated notebook",
                   status, cell, message, round(seconds, 1), round(cpu, 1))


def _a_write_failed(message: str, log: Path) -> bool:
    """Whether the failure message or the end of the log says that a write failed."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 20_000))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        tail = ""
    return bool(WRITE_FAILED.search(message) or WRITE_FAILED.search(tail))


def write_reports(outcomes: list[Outcome], out: Path, wall: float) -> str:
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["# Mutation testing (smoke mode)", "",
             "| notebook | id | bug | result | caught by | seconds | CPU s |",
             "| --- | --- | --- | --- | --- | ---: | ---: |"]
    lines += [f"| {o.notebook} | {o.id} | {esc(o.bug)} | {o.status} | {esc(o.cell)} | {o.seconds:.1f} | "
              f"{o.cpu_seconds:.1f} |" for o in outcomes]
    lines += ["", "| notebook | mutants | killed | seconds | CPU s |", "| --- | ---: | ---: | ---: | ---: |"]
    mutants = [o for o in outcomes if o.id != "baseline"]
    for stem in sorted({o.notebook for o in mutants}):
        mine = [o for o in mutants if o.notebook == stem]
        lines.append(f"| {stem} | {len(mine)} | {sum(o.status.startswith('KILLED') for o in mine)} | "
                     f"{sum(o.seconds for o in mine):.1f} | {sum(o.cpu_seconds for o in mine):.1f} |")
    killed = sum(o.status.startswith("KILLED") for o in mutants)
    lines.append(f"| **total** | {len(mutants)} | {killed} | {sum(o.seconds for o in mutants):.1f} | "
                 f"{sum(o.cpu_seconds for o in mutants):.1f} |")
    lines += ["", f"Wall time {wall:.1f} s."]
    baseline_failed = [o.notebook for o in outcomes if o.id == "baseline" and o.status.startswith("FAILED")]
    if baseline_failed:
        lines.append(f"Baseline FAILED (the unmutated notebook fails): {', '.join(baseline_failed)}.")
    write_failed = [f"{o.notebook}::{o.id}" for o in mutants if o.status.startswith("FAILED")]
    if write_failed:
        lines.append(f"A failed write stopped (free space and run again): {', '.join(write_failed)}.")
    markdown = "\n".join(lines) + "\n"
    # each whole or not at all; a failed write raises MutantWriteError
    write_text(out / "mutants.md", markdown, error=MutantWriteError, elsewhere=ELSEWHERE)
    write_text(out / "mutants.json", json.dumps([asdict(o) for o in outcomes], indent=1), error=MutantWriteError,
               elsewhere=ELSEWHERE)
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="restrict to these notebooks (default: every catalogue)")
    cores = usable_cores()
    parser.add_argument("--jobs", type=int, default=cores, help="mutants run at the same time (default: cores)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per mutant; longer counts as KILLED")
    parser.add_argument("-k", dest="select", default="",
                        help="only runs whose 'stem::id' contains TEXT ('::baseline': only the baselines)")
    parser.add_argument("--baseline", action="store_true", help="also run each unmutated notebook (must pass)")
    parser.add_argument("--check", action="store_true", help="only validate the catalogues")
    parser.add_argument("--cold", action="store_true",
                        help="start every pytest and kernel from scratch "
                             "(default: fork them warm, tools/warm_start.py)")
    parser.add_argument("--root", default=str(REPO), help=argparse.SUPPRESS)  # for the harness's own tests
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    root = Path(args.root).resolve()
    try:
        mutants = load_all(root, args.notebooks)
    except CatalogueError as err:
        print(f"invalid mutant catalogue:\n{err}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{len(mutants)} mutants in {len({m.notebook for m in mutants})} catalogues: all valid")
        return 0
    stems = sorted({m.notebook for m in mutants})
    jobs: list[tuple[Mutant | None, str]] = [(None, s) for s in stems if args.baseline]
    jobs += [(m, m.notebook) for m in mutants]
    jobs = [(m, s) for m, s in jobs if args.select in f"{s}::{m.id if m else 'baseline'}"]
    threads = max(1, cores // args.jobs)
    print(f"{len(jobs)} runs, {args.jobs} at a time, "
          f"{os.environ.get('OMP_NUM_THREADS', threads)} thread(s) each", flush=True)
    out, tic, outcomes = root / "build", time.perf_counter(), []
    try:
        warm = None if args.cold or not jobs else WarmServer(root, out, run_env(root, threads))
    except WriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pool = ThreadPoolExecutor(args.jobs)
    try:
        futures = [pool.submit(run_one, root, out, m, stem, args.timeout, threads, warm) for m, stem in jobs]
        for n, future in enumerate(as_completed(futures), start=1):
            o = future.result()
            outcomes.append(o)
            print(f"[{n}/{len(jobs)}] {o.notebook}::{o.id} {o.status} in {o.seconds:.1f} s "
                  f"({o.cpu_seconds:.1f} CPU s) {o.cell}", flush=True)
    except (KeyboardInterrupt, WriteError) as stop:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            kill_tree(proc)
        if warm:
            warm.close()
        if isinstance(stop, WriteError):  # expected on a full disk: one line, no traceback
            print(f"error: {stop}\nrunning notebooks stopped, no report written", file=sys.stderr)
            return 2
        print("interrupted: running notebooks stopped, no report written", file=sys.stderr)
        return 130
    pool.shutdown()
    if warm:
        warm.close()
    order = {(m.notebook if m else s, m.id if m else "baseline"): i for i, (m, s) in enumerate(jobs)}
    outcomes.sort(key=lambda o: order[(o.notebook, o.id)])
    try:
        print("\n" + write_reports(outcomes, out, time.perf_counter() - tic))
    except WriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bad = [o for o in outcomes if o.status == "SURVIVED" or o.status.startswith("FAILED")]
    for o in bad:
        print(f"{o.status}: {o.notebook}::{o.id} ({o.bug})", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
