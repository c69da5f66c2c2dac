"""Benchmark 2: Fashion-MNIST test accuracy against wall-clock time, fast recipe, three budgets.

Each budget is one training run of ``fashion_recipe.train_fast`` (the clock covers loading the data,
training with ``train_classifier``'s automatic defaults and one evaluation at the end), repeated
with several seeds; the result gives each run and the mean and spread (max − min) of accuracy and
seconds, next to issue 21's goals.

    python benchmarks/bench_time_to_accuracy.py --out result.json [--seeds 3] [--budgets quick,mid,long]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fashion_recipe import train_fast  # noqa: E402  (it puts the repository on sys.path)

from course_utils.atomic_write import WriteError, write_text  # noqa: E402

# name: (goal accuracy, goal seconds, train_fast keyword arguments)
BUDGETS: dict[str, tuple[float, float, dict]] = {
    "quick": (0.90, 20, dict(epochs=1, batch_size=128, lr=0.01)),
    "mid": (0.93, 60, dict(epochs=4, flips=True)),
    "long": (0.94, 240, dict(epochs=10, widths=(24, 32, 48, 48), flips=True)),
}


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    args = parser.parse_args()
    result: dict = {}
    for name in args.budgets.split(","):
        goal_acc, goal_seconds, recipe = BUDGETS[name]
        runs = []
        for seed in range(args.seeds):
            run = train_fast(seed=seed, **recipe)
            print(f"{name} seed {seed}: {run}", flush=True)
            runs.append(run)
        accs, secs = [r["test_acc"] for r in runs], [r["seconds"] for r in runs]
        result[name] = {
            "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()},
            "goal_accuracy": goal_acc, "goal_seconds": goal_seconds, "runs": runs,
            "test_acc": summary(accs), "seconds": summary(secs),
            "runs_meeting_goal": sum(a >= goal_acc and s <= goal_seconds for a, s in zip(accs, secs, strict=True)),
        }
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))  # first: a failed write below loses no measurement
    try:
        write_text(args.out, json.dumps(result, indent=2), elsewhere="pass --out a file on another disk")
    except WriteError as err:  # expected on a full disk: one line, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
