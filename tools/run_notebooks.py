"""Execute every notebook headless into ``build/`` and report on them (``make run``).

For each notebook: ``build/NN_topic.ipynb`` (executed), ``build/NN_topic.html``, a thumbnail of
its last plot in ``build/thumbs/``, and its key results (what the notebook passed to
``course_utils.report.report_results``). At the end: a table on stdout and
``build/report.md`` / ``build/report.html``. A failing notebook does not stop the others; the
summary names its failing cell. Exit status 1 if any notebook failed.

Full mode by default; ``COURSE_SMOKE=1`` for the quick mode. ``--jobs N`` runs N notebooks at
a time, each kernel with ``cores // N`` torch threads (unless ``OMP_NUM_THREADS`` is set), which
on a CPU finishes the whole course sooner than one kernel using every core: small models do
not scale across threads.

    python tools/run_notebooks.py [NOTEBOOK ...] [--out build] [--timeout 3600] [--jobs 1]
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils.report import read_results  # noqa: E402

# What the d2l book (1.0.3, PyTorch) shows for the comparable experiment; approximate, read
# off the book's printed numbers and plots. Shown next to our results in the report.
D2L_REFERENCE: dict[str, str] = {
    "03_linear_regression": "w, b errors ≈ 0.01 or less (synthetic data, noise 0.01)",
    "04_softmax_regression": "test acc ≈ 0.83 after 10 epochs",
    "05_mlp": "test acc ≈ 0.85 after 10 epochs",
    "07_dropout": "test acc ≈ 0.85 after 10 epochs",
    "10_cnn_basics": "LeNet (sigmoid) test acc ≈ 0.8 after 10 epochs",
    "12_batch_norm": "LeNet + BN test acc ≈ 0.85-0.87 after 10 epochs",
    "13_resnet_densenet": "ResNet-18 (96 px) test acc ≈ 0.9 after 10 epochs",
    "16_gru_lstm": "GRU/LSTM validation perplexity ≈ 6.6-7.2",
    "18_seq2seq_beam_search": "example sentences translated, BLEU 0-1 per sentence",
}


@dataclass
class Outcome:
    name: str
    status: str = "ok"
    seconds: float = 0.0
    failing_cell: str = ""
    results: dict[str, object] = field(default_factory=dict)
    thumbnail: str = ""


def find_notebooks(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def failing_cell(nb: nbformat.NotebookNode) -> str:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return f"cell {index} ({first[:50]!r}): {out.get('ename')}: {out.get('evalue', '')[:200]}"
    return "unknown cell"


def save_thumbnail(nb: nbformat.NotebookNode, target: Path) -> str:
    last_png = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                last_png = data["image/png"]
    if last_png is None:
        return ""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(last_png))
    return str(target)


def run_one(path: Path, out_dir: Path, timeout: int, threads: int | None = None) -> Outcome:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbconvert import HTMLExporter

    outcome = Outcome(path.stem)
    nb = nbformat.read(path, as_version=4)
    results_file = out_dir / "results" / f"{path.stem}.jsonl"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.unlink(missing_ok=True)
    env = dict(os.environ, COURSE_RESULTS_FILE=str(results_file))
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(threads))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    tic = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError:
        outcome.status = "FAILED"
        outcome.failing_cell = failing_cell(nb)
    except (CellTimeoutError, DeadKernelError) as err:
        outcome.status = "FAILED"
        outcome.failing_cell = f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        outcome.seconds = time.perf_counter() - tic
    nbformat.write(nb, out_dir / path.name)
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    outcome.thumbnail = save_thumbnail(nb, out_dir / "thumbs" / f"{path.stem}.png")
    outcome.results = dict(read_results(results_file))
    return outcome


def fmt_results(results: dict[str, object]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items())


def write_reports(outcomes: list[Outcome], out_dir: Path, smoke: bool) -> str:
    mode = "smoke (COURSE_SMOKE=1)" if smoke else "full"
    lines = [
        f"# Notebook run report ({mode})",
        "",
        "| notebook | status | seconds | results | d2l book | failing cell |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.status} | {o.seconds:.1f} | {fmt_results(o.results)} | "
            f"{D2L_REFERENCE.get(o.name, '')} | {o.failing_cell} |"
        )
    total = sum(o.seconds for o in outcomes)
    failed = [o.name for o in outcomes if o.status != "ok"]
    lines += ["", f"Total: {total:.1f} s, {len(outcomes) - len(failed)} ok, {len(failed)} failed."]
    markdown = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    rows = []
    for o in outcomes:
        thumb = (f'<img src="thumbs/{o.name}.png" width="160">' if o.thumbnail else "")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in [
                f'<a href="{o.name}.html">{html.escape(o.name)}</a>', html.escape(o.status),
                f"{o.seconds:.1f}", html.escape(fmt_results(o.results)),
                html.escape(D2L_REFERENCE.get(o.name, "")), html.escape(o.failing_cell), thumb,
            ]) + "</tr>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>Notebook run report</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}"
        "table{border-collapse:collapse}</style>"
        f"<h1>Notebook run report ({html.escape(mode)})</h1><table><tr><th>notebook</th>"
        "<th>status</th><th>seconds</th><th>results</th><th>d2l book</th><th>failing cell</th>"
        "<th>plot</th></tr>" + "".join(rows) + f"</table><p>Total: {total:.1f} s</p>"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps([o.__dict__ for o in outcomes], indent=2), encoding="utf-8"
    )
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--out", default=str(REPO / "build"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    out_dir = Path(args.out).resolve()  # kernels run in notebooks/, so no relative paths
    out_dir.mkdir(parents=True, exist_ok=True)
    smoke = os.environ.get("COURSE_SMOKE", "") not in ("", "0")
    paths = find_notebooks(args.notebooks)
    outcomes: list[Outcome] = []
    if args.jobs == 1:
        for i, path in enumerate(paths, start=1):
            print(f"[{i}/{len(paths)}] {path.name} ...", end=" ", flush=True)
            outcome = run_one(path, out_dir, args.timeout)
            print(f"{outcome.status} in {outcome.seconds:.1f} s", flush=True)
            outcomes.append(outcome)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // args.jobs)
        print(f"running {len(paths)} notebooks, {args.jobs} at a time, {threads} thread(s) each", flush=True)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, path, out_dir, args.timeout, threads) for path in paths]
            for i, (path, future) in enumerate(zip(paths, futures), start=1):
                outcome = future.result()
                print(f"[{i}/{len(paths)}] {path.name} {outcome.status} in {outcome.seconds:.1f} s", flush=True)
                outcomes.append(outcome)
    print()
    print(write_reports(outcomes, out_dir, smoke))
    print(f"executed notebooks, HTML and report in {out_dir}/")
    return 1 if any(o.status != "ok" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
