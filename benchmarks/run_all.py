"""``make bench``: run every benchmark side by side on this machine and write the results.

Writes ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.md`` and prints the
table. Benchmarks are measurements, not tests: nothing here fails on a slow machine.

    python benchmarks/run_all.py [--epochs 2] [--repeats 3] [--seeds 3] [--skip-speed] [--skip-suite]
                                 [--chapters 23,24 | all | none] [--name latest] [--keep DIR]

``--chapters`` runs chapters in full mode, one at a time, with ``tools/run_notebooks.py`` (the
seconds and key results of each; ``all`` is the whole course, more than an hour on 2 cores, never
part of CI). The default is none. ``make bench-full`` is ``--skip-speed --skip-suite --chapters all
--name full_suite --keep build/full``: it writes ``benchmarks/results/full_suite.{json,md}``, leaves
``latest``, and keeps the executed notebooks and ``report.md`` in ``build/full/`` (``make site
SITE_SRC=build/full`` turns them into the website of the full lessons).

A results file that cannot be written (a full disk, a read-only folder, a file-size limit) ends
the run with one line naming it and the cause (exit status 1) after the table is printed, so no
measurement is lost; the previous ``NAME.json`` and ``NAME.md`` stay as they were, as a pair.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO))

from course_utils.atomic_write import WriteError, write_bytes, write_text  # noqa: E402
from course_utils.cores import usable_cores  # noqa: E402
from course_utils.settings import seed_offset  # noqa: E402


def machine() -> dict[str, str]:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = usable_cores()
    return {"cpu": cpu, "cores": str(cores), "python": platform.python_version(),
            "torch": torch.__version__, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "seed": str(seed_offset()), "torch_threads": os.environ.get("OMP_NUM_THREADS", "one per core")}


def run_json(cmd: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run(cmd + ["--out", str(out)], check=True, cwd=REPO)
        return json.loads(out.read_text())


def bench_suite() -> dict:
    """The notebooks in smoke mode with the parallel runner `make test` uses."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = dict(os.environ, COURSE_SMOKE="1")
        tic = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(usable_cores()), "--dist",
             "loadfile", "--nbval-lax", "--nbval-current-env", "notebooks", f"--junitxml={junit}"],
            cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tic
        per_notebook: dict[str, float] = defaultdict(float)
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = Path(case.get("file") or case.get("classname") or "?").name or "?"
            name = name.split("::")[0].removeprefix("notebooks.")
            per_notebook[name] += float(case.get("time", 0))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_seconds": wall, "passed": proc.returncode == 0,
            "per_notebook_seconds": dict(sorted(per_notebook.items())),
            "peak_rss_mib_largest_process": peak}


def bench_chapters(chapters: str, keep: Path | None = None) -> list[dict]:
    """Chapters in full mode (``tools/run_notebooks.py``): seconds, status and key results of each.

    ``keep``: the folder for the executed notebooks, their pages and ``report.md`` (a failing
    cell's whole traceback is there); by default they go to a temporary folder and are deleted.
    """
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    if chapters != "all":
        wanted = {c.strip().zfill(2) for c in chapters.split(",") if c.strip()}
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted]
    if not notebooks:
        return []
    with contextlib.ExitStack() as stack:
        out = keep.resolve() if keep else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").unlink(missing_ok=True)  # never read an earlier run's report
        env = {k: v for k, v in os.environ.items() if k != "COURSE_SMOKE"}
        subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), *map(str, notebooks),
                        "--out", str(out)], cwd=REPO, env=env, check=False)
        report_file = out / "report.json"
        if not report_file.exists():
            raise RuntimeError(f"tools/run_notebooks.py wrote no {report_file}; its output above says why")
        report = json.loads(report_file.read_text())
    return [{k: r[k] for k in ("name", "status", "seconds", "failing_cell", "results")} for r in report]


def _spread(values: list[float], fmt: str = ".0f") -> str:
    lo, hi, mean = min(values), max(values), sum(values) / len(values)
    return f"{mean:{fmt}} ({lo:{fmt}}–{hi:{fmt}})" if len(values) > 1 else f"{mean:{fmt}}"


def _result_line(results: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in results.items())


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
             f"torch {m['torch']}, COURSE_SEED={m.get('seed', '0')}, torch threads: "
             f"{m.get('torch_threads', 'one per core')} (`make bench`).", "",
             *[f"Note: {n}\n" for n in results.get("notes", []) if n]]
    d2l, ours = results.get("lenet_d2l"), results.get("lenet_course")
    if d2l and ours:
        d2l_rate = [r["examples_per_sec"] for r in d2l]
        ratios = [r["examples_per_sec"] / sum(d2l_rate) * len(d2l_rate) for r in ours]
        lines += [
            f"**1. d2l LeNet on Fashion-MNIST, {ours[0]['epochs']} epochs, {len(ours)} runs a side** (same "
            "network, lr 0.9, batch 256; the clock includes loading the data; mean (min–max))",
            "",
            "| | s / epoch | examples / s | speed-up vs d2l's mean | test acc | peak RSS (MiB) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            "| d2l `load_data_fashion_mnist` + `train_ch6` | "
            f"{_spread([r['seconds_per_epoch'] for r in d2l], '.1f')} | "
            f"{_spread(d2l_rate)} | 1.00× | {d2l[0]['test_acc']:.3f} | "
            f"{d2l[0]['peak_rss_mib']:.0f} (+ workers {d2l[0]['peak_rss_workers_mib']:.0f}) |",
            f"| `course_utils` loaders + `train_classifier`, defaults ({ours[0]['settings']}) | "
            f"{_spread([r['seconds_per_epoch'] for r in ours], '.1f')} | "
            f"{_spread([r['examples_per_sec'] for r in ours])} | **{_spread(ratios, '.2f')}×** | "
            f"{ours[0]['test_acc']:.3f} | {ours[0]['peak_rss_mib']:.0f} |",
            "", "Goal: ≥ 3× d2l with the defaults.", "",
        ]
    prec = results.get("precision")
    if prec:
        mm = prec["matmul_gflops"]
        peak = prec.get("nominal_fp32_peak_gflops")
        peak_text = (f"; nominal float32 peak {peak:.0f} GFLOP/s = {prec['nominal_peak_how']}" if peak else "")
        lines += [f"**2. Precision and layout** (training examples per second, random batches of 256; a 2048² "
                  f"matrix product runs at {mm['fp32']:.0f} GFLOP/s in float32 and {mm['bf16']:.0f} in "
                  f"bfloat16 here{peak_text}). Automatic choice: {', '.join(prec['auto']['why'])}.", "",
                  "| net | fp32 | fp32 + channels_last | bf16 | bf16 + channels_last | automatic pick (time to pick) "
                  "| pick vs best (goal ≥ 0.95) | pick vs fp32 | "
                  "training GFLOP / example | pick: fraction of the fp32 matmul rate / of the nominal peak |",
                  "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for name, r in prec["nets"].items():
            e = r["examples_per_sec"]
            lines.append(f"| {name} | {e['fp32']:.0f} | {e['fp32+cl']:.0f} | {e['bf16']:.0f} | {e['bf16+cl']:.0f} | "
                         f"{r['auto']} ({r['choice_seconds']:.1f} s) | {r['auto_fraction_of_best']:.2f} | "
                         f"{r['auto_speedup_vs_fp32']:.2f}× | {r['training_gflop_per_example']:.4f} | "
                         f"{r['fraction_of_fp32_matmul_rate']:.0%} / "
                         f"{(r.get('fraction_of_nominal_fp32_peak') or float('nan')):.0%} |")
        lines.append("")
    tta = results.get("time_to_accuracy")
    if tta:
        lines += ["**3. Fashion-MNIST time to accuracy** (`benchmarks/fashion_recipe.py`; the clock covers "
                  "loading, training and one evaluation; mean (min–max) over seeds)", "",
                  "| budget | recipe | test acc | seconds | goal | runs meeting it |",
                  "| --- | --- | ---: | ---: | --- | ---: |"]
        for name, r in tta.items():
            if not isinstance(r, dict):
                continue
            recipe = ", ".join(f"{k} {v}" for k, v in r["recipe"].items())
            lines.append(f"| {name} | {recipe} | {_spread([x['test_acc'] for x in r['runs']], '.4f')} | "
                         f"{_spread([x['seconds'] for x in r['runs']], '.1f')} | ≥ {r['goal_accuracy']:.2f} in "
                         f"≤ {r['goal_seconds']:.0f} s | {r['runs_meeting_goal']}/{len(r['runs'])} |")
        lines.append("")
    suite = results.get("suite")
    if suite:
        lines += [f"**4. Notebook suite, smoke mode, `pytest -n auto`**: {suite['wall_seconds']:.0f} s wall "
                  f"(goal ≤ 600 s), {'all passed' if suite['passed'] else 'SOME FAILED'}; largest "
                  f"process peak RSS {suite['peak_rss_mib_largest_process']:.0f} MiB.", "",
                  "| notebook | seconds (sum of cell times) |", "| --- | ---: |"]
        lines += [f"| {name} | {sec:.1f} |" for name, sec in suite["per_notebook_seconds"].items()]
        lines.append("")
    chapters = results.get("chapters")
    if chapters:
        lines += ["**5. Chapters in full mode** (`tools/run_notebooks.py`, one at a time; the key results "
                  "each notebook reports)", "", "| notebook | status | seconds | results |",
                  "| --- | --- | ---: | --- |"]
        lines += [f"| {c['name']} | {c['status']}{' at ' + c['failing_cell'] if c['failing_cell'] else ''} | "
                  f"{c['seconds']:.0f} | {_result_line(c['results'])} |" for c in chapters]
        lines.append("")
    return "\n".join(lines)


def write_results(name: str, results: dict, table: str, folder: Path = RESULTS) -> None:
    """Write ``NAME.json`` and ``NAME.md``, each whole or not at all, and as a pair: when the table
    cannot be written, the previous ``NAME.json`` is put back (or the new one removed)."""
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    elsewhere = "run the benchmarks from a clone of the course on another disk"
    previous = json_path.read_bytes() if json_path.is_file() else None
    write_text(json_path, json.dumps(results, indent=2), elsewhere=elsewhere)
    try:
        write_text(md_path, table, elsewhere=elsewhere)
    except WriteError as err:
        try:
            if previous is None:
                json_path.unlink()
            else:
                write_bytes(json_path, previous)
        except (OSError, WriteError):
            mismatch = type(err)(f"{err} {json_path.name} holds this run's results and could not be put "
                                 f"back: it no longer matches {md_path.name}.")
            mismatch.path = err.path
            raise mismatch from err.__cause__
        raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the LeNet comparison")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each LeNet side")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per time-to-accuracy budget")
    parser.add_argument("--skip-speed", action="store_true", help="skip benchmarks 1-3")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--chapters", default="none",
                        help="chapters to run in full mode: comma-separated numbers, 'all' or 'none'")
    parser.add_argument("--name", default="latest", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the chapters' executed notebooks and report in this folder")
    args = parser.parse_args()
    py = sys.executable
    results: dict = {"machine": machine()}
    if not args.skip_speed:
        lenet = [py, str(HERE / "bench_lenet.py")]
        results["lenet_d2l"], results["lenet_course"] = [], []
        for i in range(args.repeats):  # alternate the sides, so a slow spell hits both
            print(f"1/5 LeNet run {i + 1}/{args.repeats}: d2l, then course_utils ...", flush=True)
            results["lenet_d2l"].append(run_json(lenet + ["d2l", "--epochs", str(args.epochs)]))
            results["lenet_course"].append(run_json(lenet + ["course", "--epochs", str(args.epochs)]))
        print("2/5 precision and layout ...", flush=True)
        results["precision"] = run_json([py, str(HERE / "bench_precision.py")])
        print("3/5 time to accuracy ...", flush=True)
        results["time_to_accuracy"] = run_json([py, str(HERE / "bench_time_to_accuracy.py"),
                                                "--seeds", str(args.seeds)])
    if not args.skip_suite:
        print("4/5 notebook suite (smoke) ...", flush=True)
        results["suite"] = bench_suite()
    if args.chapters != "none":
        print(f"5/5 chapters in full mode ({args.chapters}) ...", flush=True)
        results["chapters"] = bench_chapters(args.chapters, args.keep)
    table = markdown(results)
    print(table)  # first: a failed write below loses no measurement
    try:
        write_results(args.name, results, table, RESULTS)
    except WriteError as err:  # expected on a full disk: one line, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
