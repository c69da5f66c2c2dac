"""Benchmark: what bfloat16 autocast and the channels-last layout do on this machine.

    python benchmarks/bench_precision.py --out result.json

Measures, with random data (speed only, no accuracy):

1. the rate of a 2048 × 2048 matrix product in float32 and in bfloat16: the most this machine's
   math library gets out of its cores, the yardstick for "fraction of peak";
2. training throughput (forward, backward, AdamW step; batch 256) of d2l's LeNet and of the
   recommended Fashion-MNIST CNN (``fashion_recipe.fast_cnn``) in the four combinations of
   float32 / bfloat16 autocast and default / channels-last layout;
3. what ``course_utils.fast_settings.choose`` picks for each net here (timed afresh, not from the
   cache, as ``train_classifier`` does on a machine's first run), and the pick's speed as a
   fraction of the fastest of the four and against plain float32 (goal: at least 0.95 of the best);
4. each net's training FLOPs per example (counted by ``torch.utils.flop_counter``) times its
   examples per second with the automatic choice, as a fraction of the float32 matrix-product rate
   and of the nominal float32 peak: cores × clock (``cpu MHz`` in /proc/cpuinfo) × 64 FLOP per
   cycle with AVX-512 (two 512-bit FMA units, an assumption: some CPUs have one) or 32 with AVX2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_lenet import lenet  # noqa: E402
from fashion_recipe import fast_cnn  # noqa: E402

from course_utils.atomic_write import WriteError, write_text  # noqa: E402
from course_utils.cores import usable_cores  # noqa: E402
from course_utils.fast_settings import choose  # noqa: E402
from course_utils.settings import timed_per_model  # noqa: E402

BATCH = 256


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - tic) / 1e9


def nominal_fp32_peak_gflops() -> tuple[float, str] | None:
    """cores × MHz × FLOP per cycle, from /proc/cpuinfo (None where it cannot be read)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "").split()
    per_cycle, isa = (64, "AVX-512") if "avx512f" in flags else (32, "AVX2") if "avx2" in flags else (0, "")
    cores = usable_cores()
    if not mhz or not per_cycle:
        return None
    how = f"{cores} cores × {mhz[0] / 1000:.2f} GHz × {per_cycle} FLOP/cycle ({isa})"
    return cores * mhz[0] / 1000 * per_cycle, how


def train_throughput(make: Callable[[], nn.Module], bf16: bool, channels_last: bool, seconds: float = 4.0) -> float:
    """Training examples per second of ``make()`` on random Fashion-MNIST-shaped batches."""
    torch.manual_seed(0)
    net = make()
    X, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    if channels_last:
        net, X = net.to(memory_format=torch.channels_last), X.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    n, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        step()
        n += 1
    return n * BATCH / (time.perf_counter() - tic)


def training_flops_per_example(make: Callable[[], nn.Module]) -> float:
    net = make()
    X, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(net(X), y).backward()
    return counter.get_total_flops() / BATCH


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.optim.AdamW(nn.Linear(1, 1).parameters())  # torch's lazy imports, off the clock
    peak = nominal_fp32_peak_gflops()
    timed = timed_per_model(torch.device("cpu"))
    result: dict = {
        "matmul_gflops": {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)},
        "nominal_fp32_peak_gflops": peak[0] if peak else None, "nominal_peak_how": peak[1] if peak else None,
        "auto": {"why": ["timed per net (fast_settings.choose, about a second per net)" if timed else
                         "COURSE_PRECISION / COURSE_CHANNELS_LAST set: not timed"]},
        "nets": {},
    }
    for name, make in [("lenet", lenet), ("fast_cnn", fast_cnn)]:
        rates = {f"{'bf16' if bf16 else 'fp32'}{'+cl' if cl else ''}": train_throughput(make, bf16, cl)
                 for bf16 in (False, True) for cl in (False, True)}
        torch.manual_seed(0)
        X, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
        tic = time.perf_counter()
        choice = choose(make(), X, y, nn.functional.cross_entropy, cache_path=None)
        choice_seconds = time.perf_counter() - tic
        auto_key = choice.name
        flops = training_flops_per_example(make)
        result["nets"][name] = {
            "examples_per_sec": rates, "auto": auto_key, "auto_speedup_vs_fp32": rates[auto_key] / rates["fp32"],
            "auto_fraction_of_best": rates[auto_key] / max(rates.values()), "choice_seconds": choice_seconds,
            "training_gflop_per_example": flops / 1e9,
            "fraction_of_fp32_matmul_rate": flops * rates[auto_key] / (result["matmul_gflops"]["fp32"] * 1e9),
            "fraction_of_nominal_fp32_peak": flops * rates[auto_key] / (peak[0] * 1e9) if peak else None,
        }
    print(json.dumps(result))  # first: a failed write below loses no measurement
    try:
        write_text(args.out, json.dumps(result, indent=2), elsewhere="pass --out a file on another disk")
    except WriteError as err:  # expected on a full disk: one line, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
