"""Benchmark 1: d2l's LeNet on Fashion-MNIST, d2l's own loader + train_ch6 vs course_utils.

Run one side per process (so peak memory is per side):

    python benchmarks/bench_lenet.py d2l --epochs 2 --out result.json
    python benchmarks/bench_lenet.py course --epochs 2 --out result.json [--layout auto|default|channels-last]

Both train the same network (sigmoid, average pooling, Xavier init, SGD lr 0.9, batch 256) for
the same number of epochs on the same files and report wall seconds per epoch, training
examples per second and the final test accuracy. The d2l side is given the shipped files in the
folder layout torchvision expects, so it reads the same data and downloads nothing.

The clock starts before the data is loaded (that is where d2l loses most time) but after
``torch._dynamo`` is imported: the first ``torch.optim`` optimizer imports it, a one-off 1–2 s
that belongs to neither side. The course side runs with ``train_classifier``'s automatic defaults
(``--layout auto``: what ``settings.describe()`` prints); ``--layout default`` or ``channels-last``
force a memory layout (same network, numbers equal within tolerance).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils.atomic_write import WriteError, write_text  # noqa: E402


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


def warm_up_torch_imports() -> None:
    """Pay torch's lazy imports (``torch._dynamo``, pulled in by the first optimizer) off the clock."""
    torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)


def run_d2l(epochs: int) -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import d2l.torch as d2l

    work = Path(tempfile.mkdtemp(prefix="bench_d2l_"))
    raw = work / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (REPO / "data" / "fashion-mnist").glob("*.gz"):
        (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    (work / "run").mkdir()
    os.chdir(work / "run")
    warm_up_torch_imports()
    torch.manual_seed(0)
    tic = time.perf_counter()
    train_iter, test_iter = d2l.load_data_fashion_mnist(256)
    net = lenet()
    with contextlib.redirect_stdout(io.StringIO()) as out:  # d2l prints its summary and figures
        d2l.train_ch6(net, train_iter, test_iter, epochs, 0.9, d2l.try_gpu())
    seconds = time.perf_counter() - tic
    test_acc = float([line for line in out.getvalue().splitlines() if "test acc" in line][-1]
                     .split("test acc")[1].strip())
    return {"seconds_total": seconds, "seconds_per_epoch": seconds / epochs,
            "examples_per_sec": 60_000 * epochs / seconds, "test_acc": test_acc}


def run_course(epochs: int, layout: str = "auto") -> dict[str, float]:
    from course_utils.fashion_mnist import fashion_mnist_loaders
    from course_utils.training import train_classifier

    warm_up_torch_imports()
    torch.manual_seed(0)
    tic = time.perf_counter()
    train_iter, test_iter = fashion_mnist_loaders(256)
    net = lenet()
    for m in net:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    h = train_classifier(net, train_iter, test_iter, nn.CrossEntropyLoss(),
                         torch.optim.SGD(net.parameters(), lr=0.9), epochs,
                         progress=False, plot=False,
                         channels_last={"auto": None, "default": False, "channels-last": True}[layout])
    seconds = time.perf_counter() - tic
    return {"seconds_total": seconds, "seconds_per_epoch": seconds / epochs,
            "examples_per_sec": 60_000 * epochs / seconds, "test_acc": h.test_acc[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=["d2l", "course"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layout", choices=["auto", "default", "channels-last"], default="auto",
                        help="course side: the memory layout (auto: the settings' choice)")
    args = parser.parse_args()
    result: dict[str, float | str] = {**(run_d2l(args.epochs) if args.side == "d2l" else
                                         run_course(args.epochs, args.layout))}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_rss_workers_mib"] = children
    result["epochs"] = args.epochs
    if args.side == "course":
        from course_utils.settings import describe

        result["settings"] = describe(torch.device("cpu"))
        result["layout"] = args.layout
    print(json.dumps(result))  # first: a failed write below loses no measurement
    try:
        write_text(args.out, json.dumps(result, indent=2), elsewhere="pass --out a file on another disk")
    except WriteError as err:  # expected on a full disk: one line, no traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
