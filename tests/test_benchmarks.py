"""The benchmark scripts' pieces that can break without a benchmark run: the fast recipe, the
results table and where the full-mode chapter runs leave their notebooks (``make bench`` itself is
a measurement, never a test)."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import fashion_recipe  # noqa: E402
import run_all  # noqa: E402


def test_fast_cnn_shapes_and_pooling_positions():
    assert fashion_recipe.fast_cnn()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    deeper = fashion_recipe.fast_cnn((24, 32, 48, 48), pool_at=(0, 2))
    assert deeper(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in deeper) == 2


def test_train_fast_runs_a_fraction_of_an_epoch_and_learns():
    run = fashion_recipe.train_fast(0.1, seed=1, flips=True)  # 6,000 examples
    assert 0.5 < run["test_acc"] <= 1.0 and run["seconds"] > 0


def _lenet(rate, settings=None):
    r = {"seconds_per_epoch": 60_000 / rate, "examples_per_sec": rate, "test_acc": 0.5, "peak_rss_mib": 900,
         "peak_rss_workers_mib": 500, "epochs": 2}
    return {**r, "settings": settings} if settings else r


def test_results_table_shows_means_spreads_and_goals():
    results = {
        "machine": {"cpu": "X", "cores": "2", "python": "3.11", "torch": "2", "date": "today"},
        "lenet_d2l": [_lenet(3000), _lenet(5000)],
        "lenet_course": [_lenet(12000, "smoke mode: False | device: cpu"), _lenet(14000, "s")],
        "precision": {"matmul_gflops": {"fp32": 240, "bf16": 130},
                      "auto": {"why": ["timed per net"]},
                      "nets": {"lenet": {"examples_per_sec": {"fp32": 1, "fp32+cl": 2, "bf16": 3, "bf16+cl": 4},
                                         "auto": "bf16", "choice_seconds": 1.25, "auto_fraction_of_best": 0.75,
                                         "auto_speedup_vs_fp32": 3.0, "training_gflop_per_example": 0.001,
                                         "fraction_of_fp32_matmul_rate": 0.25,
                                         "fraction_of_nominal_fp32_peak": 0.2}}},
        "time_to_accuracy": {"quick": {"recipe": {"epochs": 1}, "goal_accuracy": 0.9, "goal_seconds": 20,
                                       "runs": [{"test_acc": 0.9, "seconds": 15}, {"test_acc": 0.89, "seconds": 17}],
                                       "runs_meeting_goal": 1},
                             "peak_rss_mib": 800},
    }
    table = run_all.markdown(results)
    assert "**3.25 (3.00–3.50)×**" in table  # 12,000 and 14,000 against d2l's mean of 4,000
    assert "| lenet | 1 | 2 | 3 | 4 | bf16 (1.2 s) | 0.75 | 3.00× | 0.0010 | 25% / 20% |" in table
    assert "| quick | epochs 1 | 0.8950 (0.8900–0.9000) | 16.0 (15.0–17.0) | ≥ 0.90 in ≤ 20 s | 1/2 |" in table
    assert "COURSE_SEED=0, torch threads: one per core" in table  # an older results file: the defaults


def test_the_report_names_the_seed_and_threads(monkeypatch):
    monkeypatch.setenv("COURSE_SEED", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    m = run_all.machine()
    assert (m["seed"], m["torch_threads"]) == ("2", "1")
    assert "COURSE_SEED=2, torch threads: 1 (`make bench`)" in run_all.markdown({"machine": m})


def test_chapter_12_teaches_the_network_the_benchmark_times():
    cells = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / "12_batch_norm.ipynb").read_text())
    source = next("".join(c["source"]) for c in cells["cells"] if "def conv_bn" in "".join(c["source"]))
    namespace = {"nn": torch.nn, "seed_everything": lambda seed: None}
    exec(source.split("fast_epochs = ")[0], namespace)  # the block and the network, not the training
    assert str(namespace["small_cnn"]()) == str(fashion_recipe.fast_cnn())
    assert "BatchNorm2d" not in str(namespace["small_cnn"](norm=False))  # the control's network


def _fake_runner(writes_report: bool):
    """Stands in for ``tools/run_notebooks.py``: records the command, writes a report into --out."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        (out / "12_batch_norm.ipynb").write_text("{}")
        if writes_report:
            row = {"name": "12_batch_norm", "status": "ok", "seconds": 3.0, "failing_cell": None,
                   "results": {"fast_test_acc": 0.9}, "thumbnail": None}
            (out / "report.json").write_text(json.dumps([row]))

    return run, calls


def test_bench_chapters_keeps_the_executed_notebooks_where_asked(tmp_path, monkeypatch):
    run, calls = _fake_runner(writes_report=True)
    monkeypatch.setattr(run_all.subprocess, "run", run)
    rows = run_all.bench_chapters("12", keep=tmp_path / "full")
    assert rows == [{"name": "12_batch_norm", "status": "ok", "seconds": 3.0, "failing_cell": None,
                     "results": {"fast_test_acc": 0.9}}]
    assert [Path(a).name for a in calls[0] if a.endswith(".ipynb")] == ["12_batch_norm.ipynb"]
    assert (tmp_path / "full" / "12_batch_norm.ipynb").exists()  # kept, not a temporary folder


def test_bench_chapters_never_reads_an_earlier_runs_report(tmp_path, monkeypatch):
    keep = tmp_path / "full"
    keep.mkdir()
    (keep / "report.json").write_text("[]")  # left by an earlier run
    run, _ = _fake_runner(writes_report=False)  # this run dies before writing its report
    monkeypatch.setattr(run_all.subprocess, "run", run)
    with pytest.raises(RuntimeError, match="wrote no .*report.json"):
        run_all.bench_chapters("12", keep=keep)
