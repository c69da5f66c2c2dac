"""Train a small classifier on one process, or unchanged on several with torchrun.

    python examples/ddp_train.py                         # one process
    torchrun --nproc_per_node=2 examples/ddp_train.py    # two processes (gloo on CPU, NCCL on GPUs)

The lines marked ``# DDP`` are everything data-parallel training adds to a single-process
script; without torchrun they change nothing. Each process trains on its shard of every batch
and ``DistributedDataParallel`` averages the gradients, so every update equals the
single-process update on the whole batch (``tests/test_distributed.py`` checks this).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from course_utils import distributed
from course_utils.checkpoints import save_checkpoint
from course_utils.loaders import tensor_loader
from course_utils.settings import get_device
from course_utils.training import evaluate_accuracy, fit


def make_data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 6, generator=g)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def main() -> None:
    parser = argparse.ArgumentParser(description="A classifier trained on one or several processes.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--shuffle", action="store_true", help="a new order of the training data each epoch")
    parser.add_argument("--out", help="save the weights and the history here")
    args = parser.parse_args()

    ddp = distributed.launched_with_torchrun()                                   # DDP
    device = distributed.setup(get_device()) if ddp else get_device()            # DDP: join the group
    X, y = make_data()
    train_iter = tensor_loader(X, y, batch_size=16, shuffle=args.shuffle,
                               generator=torch.Generator().manual_seed(0))
    train_iter = distributed.shard_loader(train_iter) if ddp else train_iter     # DDP: 1/N of each batch
    test_iter = tensor_loader(X, y, batch_size=32)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2)).to(device)
    model = DistributedDataParallel(net) if ddp else net                         # DDP: average gradients

    def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        X, y = (t.to(device) for t in batch)
        return nn.functional.cross_entropy(model(X), y)

    def evaluate(model: nn.Module) -> dict[str, float]:  # every process: the whole test set
        return {"test_acc": evaluate_accuracy(net, test_iter, device)}

    main_process = distributed.is_main_process()                                 # DDP: rank 0 reports
    history = fit(model, train_iter, step, args.epochs, optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                  evaluate=evaluate, plot=False, progress=None if main_process else False,
                  callbacks=[distributed.SyncProcesses(train_iter)] if ddp else [])  # DDP: mean loss
    if main_process:
        print(history)
        if args.out:
            save_checkpoint(args.out, {"state": net.state_dict(), "history": history.as_dict(),  # atomic
                                       "world": distributed.world_size()})
    distributed.cleanup()                                                        # DDP: leave the group


if __name__ == "__main__":
    main()
