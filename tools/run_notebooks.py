"""Execute every notebook headless into ``build/`` and report on them (``make run``).

For each notebook: ``build/NN_topic.ipynb`` (executed, with the run's mode, date and status in
its ``course_run`` metadata, which ``make site`` reads), ``build/NN_topic.html`` (displays
offline: math by the local MathJax copy in ``build/_static/``, progress bars as static HTML), a
thumbnail of its learning-curve figure in ``build/thumbs/``, and its key results (what the
notebook passed to ``course_utils.report.report_results``). At the end: a table on stdout and
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
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils.atomic_write import WriteError, atomic_write, write_bytes, write_text  # noqa: E402
from course_utils.cores import usable_cores  # noqa: E402
from course_utils.report import read_results  # noqa: E402
from tools.website.offline import MATHJAX_CONFIG, copy_mathjax, export_html, external_loads, run_banner  # noqa: E402

MATHJAX_DIR = "_static/mathjax"  # under the output folder, shared by every page
ELSEWHERE = "pass --out a folder on another disk"  # what a failed write (WriteError) advises

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


def smoke_requested() -> bool:
    """True when ``COURSE_SMOKE`` asks for the quick mode (as ``course_utils.settings`` reads it)."""
    return os.environ.get("COURSE_SMOKE", "").strip().lower() not in ("", "0", "false", "no", "off")


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


THUMBNAIL_TAG = "thumbnail"
_TRAINING_CALL = re.compile(r"\b(train\w*|fit)\s*\(")


def thumbnail_png(nb: nbformat.NotebookNode) -> str | None:
    """The base64 PNG that best shows the notebook's training: its learning curve.

    The last image of a cell tagged ``thumbnail`` if any; else the last image of a cell that
    calls a training function (``train_classifier(...)``, ``train_seq(...)``, …), whose final
    output is the live plot's learning curve; else the notebook's last image.
    """
    tagged, training, last = None, None, None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png is None:
                continue
            last = png
            if THUMBNAIL_TAG in cell.get("metadata", {}).get("tags", []):
                tagged = png
            if _TRAINING_CALL.search(cell.get("source", "")):
                training = png
    return tagged or training or last


def save_thumbnail(nb: nbformat.NotebookNode, target: Path) -> str:
    last_png = thumbnail_png(nb)
    if last_png is None:
        return ""
    write_bytes(target, base64.b64decode(last_png), elsewhere=ELSEWHERE)
    return str(target)


def _kernel_config() -> object:
    """Kernel-manager settings: CurveZMQ-encrypted kernel channels where pyzmq supports them.

    ipykernel warns "Kernel is running over TCP without encryption" on start-up (into our
    progress line) unless the manager provisions Curve keys, which this turns on.
    """
    import zmq
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


# Kernels started side by side (--jobs N, or beside a test run) can race for a free port; the
# loser dies before it answers, having run nothing. Such a start is retried, nothing else.
KERNEL_NOT_STARTED = "Kernel died before replying to kernel_info"
KERNEL_START_TRIES = 3


def run_one(path: Path, out_dir: Path, timeout: int, threads: int | None = None,
            smoke: bool | None = None) -> Outcome:
    """Execute one notebook into ``out_dir`` (``main`` has copied MathJax there first)."""
    from datetime import datetime, timezone

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    outcome = Outcome(path.stem)
    nb = nbformat.read(path, as_version=4)
    results_file = out_dir / "results" / f"{path.stem}.jsonl"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.unlink(missing_ok=True)
    env = dict(os.environ, COURSE_RESULTS_FILE=str(results_file))
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(threads))
    tic = time.perf_counter()
    try:
        for attempt in range(KERNEL_START_TRIES):
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", config=_kernel_config(),
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute(env=env)
                break
            except RuntimeError as err:  # the kernel never started: no cell ran, so try again
                if KERNEL_NOT_STARTED not in str(err) or attempt == KERNEL_START_TRIES - 1:
                    raise
                print(f"{path.stem}: {err} (try {attempt + 1}); starting a new kernel", file=sys.stderr,
                      flush=True)
    except CellExecutionError:
        outcome.status = "FAILED"
        outcome.failing_cell = failing_cell(nb)
    except (CellTimeoutError, DeadKernelError) as err:
        outcome.status = "FAILED"
        outcome.failing_cell = f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        outcome.seconds = time.perf_counter() - tic
    if smoke is None:
        smoke = smoke_requested()
    nb.metadata["course_run"] = {
        "mode": "smoke" if smoke else "full",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(outcome.seconds, 1),
        "status": outcome.status,
        "failing_cell": outcome.failing_cell,
    }
    with atomic_write(out_dir / path.name, "w", elsewhere=ELSEWHERE) as handle:
        nbformat.write(nb, handle)
    body = export_html(nb, mathjax_url=f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}",
                       banner=run_banner(nb.metadata["course_run"]), strict=False)
    external = external_loads(body)
    if external:
        print(f"warning: {path.stem}.html loads from other hosts (an output embeds them): "
              f"{', '.join(external[:3])}", file=sys.stderr, flush=True)
    write_text(out_dir / f"{path.stem}.html", body, elsewhere=ELSEWHERE)
    outcome.thumbnail = save_thumbnail(nb, out_dir / "thumbs" / f"{path.stem}.png")
    outcome.results = dict(read_results(results_file))
    return outcome


def fmt_results(results: dict[str, object]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items())


SMOKE_NOTE = ("Smoke mode: every notebook ran on fewer examples and epochs (and smaller models "
              "where needed) to check that it works, so its results are expected below the "
              "book's full-run figures; `make run` without COURSE_SMOKE runs the full lessons.")


def report_labels(smoke: bool) -> tuple[str, str, str]:
    """Heading, results column and book column of the report for this mode."""
    if smoke:
        return ("Notebook run report — smoke mode (COURSE_SMOKE=1)",
                "results (smoke run: fewer epochs — expected below the book's figure)",
                "d2l book (full run)")
    return "Notebook run report — full mode", "results", "d2l book"


def write_reports(outcomes: list[Outcome], out_dir: Path, smoke: bool) -> str:
    title, results_label, book_label = report_labels(smoke)
    lines = [f"# {title}", ""] + ([SMOKE_NOTE, ""] if smoke else []) + [
        f"| notebook | status | seconds | {results_label} | {book_label} | failing cell |",
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
    write_text(out_dir / "report.md", markdown, elsewhere=ELSEWHERE)
    rows = []
    for o in outcomes:
        thumb = (f'<a href="thumbs/{o.name}.png"><img src="thumbs/{o.name}.png" width="360" '
                 f'alt="learning curve of {html.escape(o.name)}"></a>' if o.thumbnail else "")
        status = html.escape(o.status) + (f"<br><small>{html.escape(o.failing_cell)}</small>" if o.failing_cell else "")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in [
                f'<a href="{o.name}.html">{html.escape(o.name)}</a>', thumb, status,
                f"{o.seconds:.1f}", html.escape(fmt_results(o.results)),
                html.escape(D2L_REFERENCE.get(o.name, "")),
            ]) + "</tr>"
        )
    note = f"<p class='note'>{html.escape(SMOKE_NOTE)}</p>" if smoke else ""
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;"
        "max-width:30em;overflow-wrap:break-word}td:first-child{white-space:nowrap}"
        "table{border-collapse:collapse}"
        ".note{padding:.4em .8em;border-left:4px solid #e69500;background:#fff8e6}</style>"
        f"<h1>{html.escape(title)}</h1>{note}<table><tr><th>notebook</th><th>learning curve</th>"
        f"<th>status</th><th>seconds</th><th>{html.escape(results_label)}</th>"
        f"<th>{html.escape(book_label)}</th></tr>" + "".join(rows) + f"</table><p>Total: {total:.1f} s</p>"
    )
    write_text(out_dir / "report.html", page, elsewhere=ELSEWHERE)
    write_text(out_dir / "report.json", json.dumps([o.__dict__ for o in outcomes], indent=2), elsewhere=ELSEWHERE)
    return markdown


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except WriteError as err:  # a full disk or read-only folder: one clear line, not a traceback
        print(f"\nmake run: {err}", file=sys.stderr, flush=True)
        return 1


def _main(argv: list[str] | None) -> int:
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
    smoke = smoke_requested()
    paths = find_notebooks(args.notebooks)
    copy_mathjax(out_dir / MATHJAX_DIR)  # once, before the (parallel) runs write their pages
    outcomes: list[Outcome] = []
    if args.jobs == 1:
        for i, path in enumerate(paths, start=1):
            print(f"[{i}/{len(paths)}] {path.name} ...", end=" ", flush=True)
            outcome = run_one(path, out_dir, args.timeout, smoke=smoke)
            print(f"{outcome.status} in {outcome.seconds:.1f} s", flush=True)
            outcomes.append(outcome)
    else:
        threads = max(1, usable_cores() // args.jobs)
        print(f"running {len(paths)} notebooks, {args.jobs} at a time, {threads} thread(s) each", flush=True)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, path, out_dir, args.timeout, threads, smoke) for path in paths]
            for i, (path, future) in enumerate(zip(paths, futures, strict=True), start=1):
                outcome = future.result()
                print(f"[{i}/{len(paths)}] {path.name} {outcome.status} in {outcome.seconds:.1f} s", flush=True)
                outcomes.append(outcome)
    print()
    print(write_reports(outcomes, out_dir, smoke))
    print(f"executed notebooks, HTML and report in {out_dir}/")
    return 1 if any(o.status != "ok" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
