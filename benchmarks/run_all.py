"""``make bench``: run every benchmark side by side on this machine and write the results.

Writes ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.md`` and prints the
table. Benchmarks are measurements, not tests: nothing here fails on a slow machine.

    python benchmarks/run_all.py [--epochs 2] [--skip-suite] [--chapters 23,24 | all | none]

``--chapters`` runs chapters in full mode, one at a time, with ``tools/run_notebooks.py`` (the
seconds and key results of each; ``all`` is the whole course, about an hour and a half on 2
cores, never part of CI). The default is none.
"""

from __future__ import annotations

import argparse
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": str(cores), "python": platform.python_version(),
            "torch": torch.__version__, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


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
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "--dist",
             "loadfile", "--nbval-lax", "--nbval-current-env", "notebooks", f"--junitxml={junit}"],
            cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tic
        per_notebook: dict[str, float] = defaultdict(float)
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = Path(case.get("file") or case.get("classname", "?")).name or "?"
            name = name.split("::")[0].removeprefix("notebooks.")
            per_notebook[name] += float(case.get("time", 0))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_seconds": wall, "passed": proc.returncode == 0,
            "per_notebook_seconds": dict(sorted(per_notebook.items())),
            "peak_rss_mib_largest_process": peak}


def bench_chapters(chapters: str) -> list[dict]:
    """Chapters in full mode (``tools/run_notebooks.py``): seconds, status and key results of each."""
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    if chapters != "all":
        wanted = {c.strip().zfill(2) for c in chapters.split(",") if c.strip()}
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted]
    if not notebooks:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "COURSE_SMOKE"}
        subprocess.run([sys.executable, str(REPO / "tools" / "run_notebooks.py"), *map(str, notebooks),
                        "--out", tmp], cwd=REPO, env=env, check=False)
        report = json.loads((Path(tmp) / "report.json").read_text())
    return [{k: r[k] for k in ("name", "status", "seconds", "failing_cell", "results")} for r in report]


def _result_line(results: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in results.items())


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
             f"torch {m['torch']} (`make bench`).", ""]
    d2l, ours, ours_cl = (results.get(k) for k in ("lenet_d2l", "lenet_course", "lenet_course_channels_last"))
    if d2l and ours:
        lines += [
            f"**1. d2l LeNet on Fashion-MNIST, {ours['epochs']} epochs** (same network, lr 0.9, batch 256; "
            "the clock includes loading the data)",
            "",
            "| | s / epoch | examples / s | speed-up vs d2l | test acc | peak RSS (MiB) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| d2l `load_data_fashion_mnist` + `train_ch6` | {d2l['seconds_per_epoch']:.1f} | "
            f"{d2l['examples_per_sec']:.0f} | 1.00× | {d2l['test_acc']:.3f} | "
            f"{d2l['peak_rss_mib']:.0f} (+ workers {d2l['peak_rss_workers_mib']:.0f}) |",
        ]
        for label, r in [("`course_utils` loaders + `train_classifier`", ours),
                         ("the same with `channels_last=True`", ours_cl)]:
            if r:
                ratio = r["examples_per_sec"] / d2l["examples_per_sec"]
                lines.append(f"| {label} | {r['seconds_per_epoch']:.1f} | {r['examples_per_sec']:.0f} | "
                             f"**{ratio:.2f}×** | {r['test_acc']:.3f} | {r['peak_rss_mib']:.0f} |")
        lines += ["", "Goal: ≥ 3× d2l.", ""]
    tta = results.get("time_to_accuracy")
    if tta:
        got = (f"reached {tta['target']:.2f} after epoch {tta['epoch']} in **{tta['seconds_to_target']:.0f} s**"
               if tta["reached"] else f"did **not** reach {tta['target']:.2f} in {tta['epochs']} epochs")
        accs = ", ".join(f"{a:.3f}" for a in tta["test_acc"])
        lines += [f"**2. Time to accuracy** (recommended small CNN with batch norm, AdamW + one-cycle): "
                  f"{got} (goal ≤ 120 s); test accuracy per epoch: {accs}; peak RSS "
                  f"{tta['peak_rss_mib']:.0f} MiB.", ""]
    suite = results.get("suite")
    if suite:
        lines += [f"**3. Notebook suite, smoke mode, `pytest -n auto`**: {suite['wall_seconds']:.0f} s wall "
                  f"(goal ≤ 600 s), {'all passed' if suite['passed'] else 'SOME FAILED'}; largest "
                  f"process peak RSS {suite['peak_rss_mib_largest_process']:.0f} MiB.", "",
                  "| notebook | seconds (sum of cell times) |", "| --- | ---: |"]
        lines += [f"| {name} | {sec:.1f} |" for name, sec in suite["per_notebook_seconds"].items()]
        lines.append("")
    chapters = results.get("chapters")
    if chapters:
        lines += ["**4. Chapters in full mode** (`tools/run_notebooks.py`, one at a time; the key results "
                  "each notebook reports)", "", "| notebook | status | seconds | results |", "| --- | --- | ---: | --- |"]
        lines += [f"| {c['name']} | {c['status']}{' at ' + c['failing_cell'] if c['failing_cell'] else ''} | "
                  f"{c['seconds']:.0f} | {_result_line(c['results'])} |" for c in chapters]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the LeNet comparison")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--chapters", default="none",
                        help="chapters to run in full mode: comma-separated numbers, 'all' or 'none'")
    args = parser.parse_args()
    py = sys.executable
    results: dict = {"machine": machine()}
    print("1/3 LeNet: d2l ...", flush=True)
    results["lenet_d2l"] = run_json([py, str(HERE / "bench_lenet.py"), "d2l", "--epochs", str(args.epochs)])
    print("1/3 LeNet: course_utils ...", flush=True)
    results["lenet_course"] = run_json([py, str(HERE / "bench_lenet.py"), "course", "--epochs", str(args.epochs)])
    print("1/3 LeNet: course_utils, channels_last ...", flush=True)
    results["lenet_course_channels_last"] = run_json(
        [py, str(HERE / "bench_lenet.py"), "course", "--epochs", str(args.epochs), "--channels-last"])
    print("2/3 time to accuracy ...", flush=True)
    results["time_to_accuracy"] = run_json([py, str(HERE / "bench_time_to_accuracy.py")])
    if not args.skip_suite:
        print("3/3 notebook suite (smoke) ...", flush=True)
        results["suite"] = bench_suite()
    if args.chapters != "none":
        print(f"4/4 chapters in full mode ({args.chapters}) ...", flush=True)
        results["chapters"] = bench_chapters(args.chapters)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
