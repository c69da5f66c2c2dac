"""Benchmark 2: time for the course's recommended small CNN to reach 0.90 Fashion-MNIST test accuracy.

The recipe: two conv stages (16 and 32 channels, 3×3 convs, batch norm, ReLU, max pooling),
a linear classifier, AdamW with a one-cycle learning-rate schedule stepped every batch,
batch size 128, normalized inputs. The clock includes loading the data and evaluating on the
test set after every epoch (which is also how we notice the target was reached).

    python benchmarks/bench_time_to_accuracy.py --out result.json [--target 0.90] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils.fashion_mnist import fashion_mnist_loaders  # noqa: E402
from course_utils.training import FitState, train_classifier  # noqa: E402


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def recommended_cnn() -> nn.Module:
    return nn.Sequential(block(1, 16), block(16, 16), nn.MaxPool2d(2),
                         block(16, 32), block(32, 32), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    torch.manual_seed(0)
    tic = time.perf_counter()
    train_iter, test_iter = fashion_mnist_loaders(128, normalize=True)
    net = recommended_cnn()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=len(train_iter))
    reached: dict[str, float] = {}

    class NoteTime:  # a fit callback: the first epoch that reaches the target
        def after_epoch(self, run: FitState) -> None:
            if not reached and run.metrics["test_acc"] >= args.target:
                reached.update(epoch=run.epoch, seconds_to_target=time.perf_counter() - tic)

    history = train_classifier(net, train_iter, test_iter, nn.CrossEntropyLoss(), opt, args.epochs,
                               scheduler=sched, scheduler_interval="batch", progress=False,
                               plot=False, callbacks=[NoteTime()])
    total = time.perf_counter() - tic
    result = {
        "target": args.target, "epochs": args.epochs, "test_acc": history.test_acc,
        "total_seconds": total, "reached": bool(reached), **reached,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
