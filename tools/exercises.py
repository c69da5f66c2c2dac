"""The chapters' exercises: list them, prove their checks, and write the learner copies.

The notebooks in ``notebooks/`` hold the exercises *with* their solutions (CONTRIBUTING.md,
"Exercises"): an exercise starts at a markdown cell whose first line is
``### Exercise 12.3 · implement · Title`` (kinds: implement, predict, project, question); the code
cells that follow it, up to the next markdown heading, are the exercise's own and run on their
own (their imports included). Solutions sit between the lines ``# BEGIN SOLUTION`` and
``# END SOLUTION`` in code, ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` in markdown.

    python tools/exercises.py list [--json]           # every exercise: id, kind, title, notebook
    python tools/exercises.py verify [NOTEBOOK ...]   # solutions pass; every wrong answer is rejected
    python tools/exercises.py learner [--out DIR]     # write the learner copies (make exercises)

``verify`` runs each exercise's cells in a fresh namespace in a child process (smoke mode, one
torch thread): the solution must pass its check, and every wrong answer catalogued in
``mutants/exercises/<stem>.toml`` (``[[wrong_answer]]`` tables with ``exercise``, ``id``, ``bug``,
``find``, ``replace`` and optionally ``message``, a text the failure must contain) must make the
check raise ``CheckFailed``: another error (a NameError from a broken replacement) does not count.

``learner`` writes each notebook with every solution replaced by
``raise NotImplementedError("exercise 12.3")`` and every folded answer removed, outputs cleared.
It never overwrites a copy that was changed since it was written (the learner's work): those are
skipped and named. ``DIR/.generated.json`` records what each written copy looked like.

A write that fails (a full disk, a read-only folder, a file-size limit) ends the command with one
line naming the file, the cause and what to do, and exit status 2: every file is written whole
or not at all (``course_utils/atomic_write.py``), and the manifest is updated *before* the copies
(each copy about to be written may then hold its old or its new text) and again after them, so a
copy written whose final manifest update failed is still known as this command's, never taken
for the learner's work.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from course_utils.atomic_write import WriteError, write_text  # noqa: E402  (standard library only: no torch)

HEADING = re.compile(r"^### Exercise (\d+\.\d+) · (implement|predict|project|question) · (.+?)\s*$")
ANY_HEADING = re.compile(r"^#{1,6} ")
CODE_BEGIN, CODE_END = "# BEGIN SOLUTION", "# END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
MD_REMOVED = "*(The answer is folded away in the solution notebook, `notebooks/{name}`.)*"
WRONG_KEYS = {"exercise", "id", "bug", "find", "replace"}
WRONG_OPTIONAL = {"message"}
ID_RE = re.compile(r"^[a-z0-9-]+$")
MANIFEST = ".generated.json"


class ExerciseError(ValueError):
    """A malformed exercise, solution marker or wrong-answer entry; the message names where."""


class ExerciseWriteError(WriteError):
    """A learner copy, their manifest or the ``verify --report`` file could not be written."""


LEARNER_ELSEWHERE = "pass --out a folder on another disk (`make exercises` writes workbook/)"


@dataclass
class Exercise:
    id: str
    kind: str
    title: str
    notebook: str  # stem, e.g. "12_batch_norm"
    statement: int  # index of the statement's markdown cell
    code_cells: list[int] = field(default_factory=list)
    checked: bool = False  # some code cell calls check("<id>", ...)

    def sources(self, nb: dict) -> list[str]:
        return ["".join(nb["cells"][i]["source"]) for i in self.code_cells]


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def exercises_of(nb: dict, stem: str) -> list[Exercise]:
    """The exercises of one notebook, in order; ExerciseError for a malformed one."""
    found: list[Exercise] = []
    current: Exercise | None = None
    for index, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        first = source.split("\n", 1)[0]
        if cell["cell_type"] == "markdown":
            match = HEADING.match(first)
            if match:
                current = Exercise(match.group(1), match.group(2), match.group(3), stem, index)
                found.append(current)
            elif first.startswith("### Exercise"):
                raise ExerciseError(f"{stem}, cell {index}: an exercise heading must read "
                                    f"'### Exercise 12.3 · implement · Title' (kinds: implement, predict, "
                                    f"project, question), not {first!r}")
            elif ANY_HEADING.match(first):
                current = None
        elif cell["cell_type"] == "code" and current is not None:
            current.code_cells.append(index)
            if re.search(rf"\bcheck\(\s*[\"']{re.escape(current.id)}[\"']", source):
                current.checked = True
    chapter = int(stem.split("_", 1)[0])
    seen: set[str] = set()
    for ex in found:
        if int(ex.id.split(".")[0]) != chapter:
            raise ExerciseError(f"{stem}: exercise {ex.id} belongs to chapter {ex.id.split('.')[0]}, "
                                f"not {chapter}")
        if ex.id in seen:
            raise ExerciseError(f"{stem}: exercise {ex.id} appears twice")
        seen.add(ex.id)
    return found


def all_exercises(notebook_dir: Path = REPO / "notebooks") -> list[Exercise]:
    out: list[Exercise] = []
    for path in sorted(notebook_dir.glob("*.ipynb")):
        out += exercises_of(read_notebook(path), path.stem)
    return out


# --- learner copies ----------------------------------------------------------------------------

def _strip_code(source: str, exercise_id: str, where: str) -> str:
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == CODE_BEGIN:
            if inside:
                raise ExerciseError(f"{where}: '{CODE_BEGIN}' inside a solution")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("exercise {exercise_id}")  # your code here')
        elif stripped == CODE_END:
            if not inside:
                raise ExerciseError(f"{where}: '{CODE_END}' without '{CODE_BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseError(f"{where}: '{CODE_BEGIN}' without '{CODE_END}'")
    return "\n".join(out)


def _strip_markdown(source: str, notebook_name: str, where: str) -> str:
    pattern = re.compile(re.escape(MD_BEGIN) + r".*?" + re.escape(MD_END), re.DOTALL)
    stripped = pattern.sub(MD_REMOVED.format(name=notebook_name), source)
    if MD_BEGIN in stripped or MD_END in stripped:
        raise ExerciseError(f"{where}: unpaired '{MD_BEGIN}' / '{MD_END}'")
    return stripped


def learner_copy(nb: dict, stem: str) -> dict:
    """The notebook with every solution stubbed out and every folded answer removed, no outputs."""
    out = copy.deepcopy(nb)
    owner: dict[int, Exercise] = {}
    for ex in exercises_of(nb, stem):
        owner[ex.statement] = ex
        owner.update({i: ex for i in ex.code_cells})
    for index, cell in enumerate(out["cells"]):
        source = "".join(cell["source"])
        where = f"{stem}, cell {index}"
        has_marker = any(m in source for m in (CODE_BEGIN, CODE_END, MD_BEGIN, MD_END))
        if has_marker and index not in owner:
            raise ExerciseError(f"{where}: a solution marker outside an exercise")
        if cell["cell_type"] == "code":
            if index in owner:
                source = _strip_code(source, owner[index].id, where)
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown" and index in owner:
            source = _strip_markdown(source, f"{stem}.ipynb", where)
        cell["source"] = source.splitlines(keepends=True)
    return out


def notebook_text(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _known_hashes(entry: object) -> set[str]:
    """The SHA-256 digests a manifest entry accepts: one, or several while a write is under way."""
    if isinstance(entry, str):
        return {entry}
    if isinstance(entry, list):
        return {h for h in entry if isinstance(h, str)}
    return set()


def _manifest_text(manifest: dict[str, str | list[str]]) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def write_learner_copies(out_dir: Path, notebook_dir: Path = REPO / "notebooks") -> tuple[list[str], list[str]]:
    """Write the learner copies into ``out_dir``; return (written, skipped) file names.

    A copy is (re)written only if it does not exist or is byte for byte what this command wrote
    (its SHA-256 in ``out_dir/.generated.json``); a copy changed since then (or one this command
    did not write) is the learner's and is skipped. Before writing, the manifest accepts both the
    old and the new text of each copy to be written, so that a write failing half-way (an
    :class:`ExerciseWriteError`, raised after the manifest is set back to what was written, where
    that works) leaves copies and manifest consistent.
    """
    manifest_path = out_dir / MANIFEST
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a folder that cannot be made (read-only, no permission)
        raise ExerciseWriteError.from_os_error(out_dir, err, elsewhere=LEARNER_ELSEWHERE) from err
    try:
        on_disk = [manifest_path.read_bytes()]
    except FileNotFoundError:
        on_disk = [b""]
    try:
        loaded = json.loads(on_disk[0].decode("utf-8")) if on_disk[0] else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        loaded = {}  # unreadable: treat every existing copy as the learner's
    manifest: dict[str, str | list[str]] = loaded if isinstance(loaded, dict) else {}
    plan: list[tuple[Path, str, str]] = []  # (copy, its text, the text's SHA-256)
    skipped: list[str] = []
    for path in sorted(notebook_dir.glob("*.ipynb")):
        text = notebook_text(learner_copy(read_notebook(path), path.stem))
        target, digest = out_dir / path.name, sha256(text)
        if target.exists():
            current = sha256(target.read_text(encoding="utf-8", errors="replace"))
            if current not in _known_hashes(manifest.get(path.name)):
                skipped.append(path.name)
                continue
            if current == digest:
                manifest[path.name] = digest  # up to date (settles an entry left with two digests)
                continue
        plan.append((target, text, digest))

    def save(entries: dict[str, str | list[str]]) -> None:
        text = _manifest_text(entries)
        if text.encode("utf-8") != on_disk[0]:  # unchanged: not written (a read-only workbook is fine)
            write_text(manifest_path, text, error=ExerciseWriteError, elsewhere=LEARNER_ELSEWHERE)
            on_disk[0] = text.encode("utf-8")

    if plan:  # first: each copy about to be written may hold its old or its new text
        save({**manifest, **{t.name: sorted(_known_hashes(manifest.get(t.name)) | {d}) for t, _, d in plan}})
    written: list[str] = []
    try:
        for target, text, digest in plan:
            write_text(target, text, error=ExerciseWriteError, elsewhere=LEARNER_ELSEWHERE)
            manifest[target.name] = digest
            written.append(target.name)
    except ExerciseWriteError:
        try:  # record what was written (the previous manifest again if nothing was)
            save(manifest)
        except ExerciseWriteError:  # the manifest written before the copies stays: consistent too
            pass
        raise
    save(manifest)
    return written, skipped


# --- wrong answers -----------------------------------------------------------------------------

@dataclass
class WrongAnswer:
    notebook: str
    exercise: str
    id: str
    bug: str
    find: str
    replace: str
    message: str = ""


def load_wrong_answers(path: Path, exercises: dict[str, Exercise], nb: dict) -> list[WrongAnswer]:
    """Read and validate ``mutants/exercises/<stem>.toml``; ExerciseError naming every problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ExerciseError(f"{path}: not valid TOML: {err}") from None
    problems = [f"unknown top-level key {k!r} (only [[wrong_answer]] tables)" for k in data if k != "wrong_answer"]
    answers: list[WrongAnswer] = []
    seen: set[str] = set()
    for n, entry in enumerate(data.get("wrong_answer", []), start=1):
        name = f"wrong answer #{n} ({entry.get('exercise', '?')} {entry.get('id', 'no id')})"
        if not WRONG_KEYS <= set(entry) <= WRONG_KEYS | WRONG_OPTIONAL:
            problems.append(f"{name}: keys must be {sorted(WRONG_KEYS)} and optionally 'message', got {sorted(entry)}")
            continue
        if not all(isinstance(v, str) for v in entry.values()):
            problems.append(f"{name}: every value must be a string")
            continue
        key = f"{entry['exercise']}/{entry['id']}"
        if not ID_RE.match(entry["id"]) or key in seen:
            problems.append(f"{name}: id must be unique per exercise and use only a-z, 0-9 and '-'")
        seen.add(key)
        ex = exercises.get(entry["exercise"])
        if ex is None or not ex.checked:
            problems.append(f"{name}: {path.stem} has no checked exercise {entry['exercise']}")
            continue
        if not entry["bug"].strip() or "\n" in entry["bug"].strip():
            problems.append(f"{name}: bug must be one non-empty line")
        if entry["find"] == entry["replace"]:
            problems.append(f"{name}: find == replace (nothing is changed)")
        count = sum(src.count(entry["find"]) for src in ex.sources(nb)) if entry["find"] else 0
        if count != 1:
            problems.append(f"{name}: find occurs {count} times in exercise {ex.id}'s code cells "
                            f"(must be exactly once): {entry['find'][:80]!r}")
        answers.append(WrongAnswer(path.stem, **entry))
    if problems:
        raise ExerciseError(f"{path}:\n  " + "\n  ".join(problems))
    return answers


# The child process: runs each job's cells in a fresh namespace, reports one JSON line per job.
CHILD = r"""
import json, sys, time, traceback, io, contextlib
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from course_utils.exercises import CheckFailed
jobs = json.load(sys.stdin)
for job in jobs:
    start = time.perf_counter()
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    status, message = "PASSED", ""
    try:
        with contextlib.redirect_stdout(out):
            for n, source in enumerate(job["sources"]):
                exec(compile(source, f"<exercise {job['exercise']}, code cell {n + 1}>", "exec"), namespace)
    except CheckFailed as failure:
        status, message = "REJECTED", failure.message
    except BaseException as error:
        status = "ERROR"
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
    plt.close("all")
    print(json.dumps({"key": job["key"], "status": status, "message": message,
                      "seconds": time.perf_counter() - start}), flush=True)
"""


def _jobs_for(nb: dict, exercises: list[Exercise], wrong: list[WrongAnswer]) -> list[dict]:
    by_id = {ex.id: ex for ex in exercises}
    jobs = [{"key": f"{ex.id}/solution", "exercise": ex.id, "sources": ex.sources(nb)} for ex in exercises]
    for w in wrong:
        sources = [s.replace(w.find, w.replace) for s in by_id[w.exercise].sources(nb)]
        jobs.append({"key": f"{w.exercise}/{w.id}", "exercise": w.exercise, "sources": sources})
    return jobs


def run_jobs(jobs: list[dict], cwd: Path, timeout: float = 600) -> dict[str, dict]:
    """Run ``jobs`` (each: key, exercise, sources) in one child process, each in a fresh namespace
    (smoke mode, one torch thread); return {key: {status, message, seconds}}. A job the child did
    not report (it died) is an ERROR carrying the child's last words."""
    env = dict(os.environ, COURSE_SMOKE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(jobs), capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)
    reported: dict[str, dict] = {}
    for line in proc.stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row:
            reported[row["key"]] = row
    died = {"status": "ERROR", "seconds": 0.0, "message": f"the child process died: {proc.stderr.strip()[-500:]}"}
    return {job["key"]: reported.get(job["key"], died) for job in jobs}


def run_learner_cells(stem: str, notebook_dir: Path = REPO / "notebooks") -> dict[str, dict]:
    """Run each exercise's cells as the learner copy has them (stubs in place of the solutions)."""
    nb = read_notebook(notebook_dir / f"{stem}.ipynb")
    learner = learner_copy(nb, stem)
    jobs = [{"key": ex.id, "exercise": ex.id, "sources": ex.sources(learner)}
            for ex in exercises_of(nb, stem) if ex.code_cells]
    return run_jobs(jobs, notebook_dir)


def verify(stems: list[str], notebook_dir: Path = REPO / "notebooks", timeout: float = 600,
           catalogue_dir: Path = REPO / "mutants" / "exercises") -> list[dict]:
    """Run every exercise's solution and every wrong answer; one result dict per run."""
    results: list[dict] = []
    for stem in stems:
        nb = read_notebook(notebook_dir / f"{stem}.ipynb")
        exercises = exercises_of(nb, stem)
        if not exercises:
            continue
        catalogue = catalogue_dir / f"{stem}.toml"
        wrong = load_wrong_answers(catalogue, {e.id: e for e in exercises}, nb) if catalogue.exists() else []
        jobs = _jobs_for(nb, exercises, wrong)
        expected = {f"{w.exercise}/{w.id}": w for w in wrong}
        reported = run_jobs(jobs, notebook_dir, timeout)
        for job in jobs:
            row = reported[job["key"]]
            w = expected.get(job["key"])
            if w is None:
                ok = row["status"] == "PASSED"
            else:
                ok = row["status"] == "REJECTED" and w.message in row["message"]
            results.append({"notebook": stem, "key": job["key"], "bug": w.bug if w else "the solution",
                             "expect": f"rejected{f' naming {w.message!r}' if w and w.message else ''}"
                             if w else "passes", "ok": ok, **{k: row[k] for k in ("status", "message", "seconds")}})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list every exercise")
    p_list.add_argument("--json", action="store_true")
    p_verify = sub.add_parser("verify", help="solutions pass their checks; wrong answers are rejected")
    p_verify.add_argument("notebooks", nargs="*")
    p_verify.add_argument("--report", type=Path, help="also write the results as JSON here")
    p_learner = sub.add_parser("learner", help="write the learner copies")
    p_learner.add_argument("--out", type=Path, default=REPO / "workbook")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            rows = [asdict(ex) for ex in all_exercises()]
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                for row in rows:
                    print(f"{row['id']:>6}  {row['kind']:<9} {'checked' if row['checked'] else '       '}  "
                          f"{row['notebook']}: {row['title']}")
                kinds = {k: sum(r["kind"] == k for r in rows) for k in ("implement", "predict", "project", "question")}
                print(f"{len(rows)} exercises ({', '.join(f'{v} {k}' for k, v in kinds.items())}); "
                      f"{sum(r['checked'] for r in rows)} checked")
            return 0
        if args.command == "learner":
            written, skipped = write_learner_copies(args.out)
            total = len(list((REPO / "notebooks").glob("*.ipynb")))
            print(f"learner copies in {args.out}: {len(written)} written, "
                  f"{total - len(written) - len(skipped)} already up to date, {len(skipped)} skipped")
            for name in skipped:
                print(f"  skipped {name}: it changed since it was written (your work is kept; delete or "
                      f"rename it to get a fresh copy)")
            return 0
        stems = [Path(n).stem for n in args.notebooks] or [p.stem for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
        start = time.perf_counter()
        results = verify(stems)
        bad = [r for r in results if not r["ok"]]
        for r in results:
            mark = "ok  " if r["ok"] else "FAIL"
            print(f"{mark} {r['notebook']} {r['key']:<28} {r['status']:<8} {r['seconds']:5.2f}s  "
                  f"{r['message'][:110] if (not r['ok'] or r['status'] == 'REJECTED') else ''}")
        wrong = [r for r in results if not r["key"].endswith("/solution")]
        print(f"{len(results) - len(wrong)} solutions, {len(wrong)} wrong answers; {len(bad)} not as expected "
              f"({time.perf_counter() - start:.0f} s)")
        if args.report:
            write_text(args.report, json.dumps(results, indent=1) + "\n", error=ExerciseWriteError,
                       elsewhere="pass --report a file on another disk")
        return 1 if bad else 0
    except (ExerciseError, WriteError) as err:  # a failed write is expected, not a bug: no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
