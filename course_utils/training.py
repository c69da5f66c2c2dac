"""Training utilities: counters, accuracy, and one classifier training loop for any model.

:func:`train_classifier` trains any ``nn.Module`` classifier with any loss and optimizer on any
device, shows a progress bar and a live loss/accuracy plot, stops with a clear error if the
loss diverges, can checkpoint and resume, and returns a :class:`History` you can assert on.

Copy with ``checkpoints.py``, ``plotting.py`` (for the live plot) and ``distributed.py`` (for
``torchrun``).

>>> import torch
>>> from torch import nn
>>> from course_utils.loaders import load_array
>>> X = torch.randn(64, 2); y = (X[:, 0] > 0).long()
>>> net = nn.Linear(2, 2)
>>> h = train_classifier(net, load_array((X, y), 16), load_array((X, y), 16, is_train=False),
...                      nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.5),
...                      num_epochs=3, plot=False, progress=False)
>>> len(h.train_loss)
3
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from . import distributed as _distributed
from .checkpoints import (
    CheckpointError,
    load_checkpoint,
    resume_if_requested,
    save_checkpoint,
    training_state,
)

__all__ = [
    "Accumulator",
    "Timer",
    "accuracy",
    "correct_count",
    "evaluate_accuracy",
    "History",
    "TrainingDivergedError",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "train_classifier",
]


class Accumulator:
    """Running sums over ``n`` slots (d2l's ``Accumulator``).

    >>> acc = Accumulator(2); acc.add(1, 2.5); acc.add(3, 0.5); acc[0], acc[1]
    (4.0, 3.0)
    """

    def __init__(self, n: int) -> None:
        if n <= 0:
            raise ValueError(f"Accumulator needs at least one slot, got {n}")
        self.data = [0.0] * n

    def add(self, *args: float) -> None:
        if len(args) != len(self.data):
            raise ValueError(f"expected {len(self.data)} values, got {len(args)}")
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


class Timer:
    """Record several running times (d2l's ``Timer``): ``start``/``stop``, ``avg``, ``sum``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._tik: float | None = None
        self.start()

    def start(self) -> None:
        self._tik = time.perf_counter()

    def stop(self) -> float:
        if self._tik is None:
            raise RuntimeError("Timer.stop() called before start()")
        self.times.append(time.perf_counter() - self._tik)
        self._tik = None
        return self.times[-1]

    def avg(self) -> float:
        if not self.times:
            raise RuntimeError("no time recorded yet")
        return sum(self.times) / len(self.times)

    def sum(self) -> float:
        return float(sum(self.times))

    def cumsum(self) -> list[float]:
        out, total = [], 0.0
        for t in self.times:
            total += t
            out.append(total)
        return out


def _check_pair(y_hat: torch.Tensor, y: torch.Tensor) -> None:
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D class indices, got shape {tuple(y.shape)}")
    if y_hat.dim() not in (1, 2) or y_hat.shape[0] != y.shape[0]:
        raise ValueError(
            f"predictions {tuple(y_hat.shape)} do not match labels {tuple(y.shape)}: expected "
            "(batch, classes) scores or (batch,) class indices"
        )


def correct_count(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions as a 0-d tensor (no host sync)."""
    _check_pair(y_hat, y)
    pred = y_hat.argmax(dim=1) if y_hat.dim() == 2 else y_hat
    return (pred.to(y.dtype) == y).sum()


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct predictions; ``y_hat`` holds scores ``(n, classes)`` or classes ``(n,)``."""
    if y.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return float(correct_count(y_hat, y)) / y.numel()


def _model_device(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    return torch.device("cpu")


def evaluate_accuracy(
    net: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    data_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> float:
    """Accuracy of ``net`` over a whole dataset, in eval mode and under ``inference_mode``."""
    correct, total = _count_correct(net, data_iter, device)
    if total == 0:
        raise ValueError("evaluate_accuracy got an empty dataset")
    return int(correct) / total


def _count_correct(
    net: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    data_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, int]:
    if device is None:
        device = _model_device(net) if isinstance(net, nn.Module) else torch.device("cpu")
    device = torch.device(device)
    was_training = isinstance(net, nn.Module) and net.training
    if isinstance(net, nn.Module):
        net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    try:
        with torch.inference_mode():
            for X, y in data_iter:
                X = X.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                correct += correct_count(net(X), y)
                total += y.numel()
    finally:
        if was_training:
            net.train()
    return correct, total


@dataclass
class History:
    """Per-epoch results of :func:`train_classifier`."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)
    examples_per_sec: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[Any]]:
        return asdict(self)

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(empty)"
        test = self.test_acc[-1]
        shown = "n/a" if test is None else f"{test:.3f}"
        return (
            f"History({len(self.epoch)} epochs: train loss {self.train_loss[-1]:.3f}, "
            f"train acc {self.train_acc[-1]:.3f}, test acc {shown}, "
            f"{self.examples_per_sec[-1]:.0f} examples/s)"
        )


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class _Optimizer(Protocol):
    def zero_grad(self) -> None: ...
    def step(self) -> Any: ...


def _autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager[Any]:
    if amp is None:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError("fp16 autocast needs CUDA; use amp='bf16' on CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_classifier(
    net: nn.Module,
    train_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    test_iter: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: _Optimizer,
    num_epochs: int,
    device: torch.device | str | None = None,
    *,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    grad_clip: float | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    progress: bool | None = None,
    plot: bool = True,
    plot_path: str | os.PathLike[str] | None = None,
    sync_every: int = 25,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    distributed: bool | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
) -> History:
    """Train a classifier and return its :class:`History`.

    ``loss_fn(y_hat, y)`` may return a scalar mean or per-example losses. ``optimizer`` is a
    ``torch.optim`` optimizer or anything with ``zero_grad()`` and ``step()``. ``scheduler``
    is stepped each epoch (or each batch with ``scheduler_interval="batch"``).

    Speed switches (results stay equal within tolerance): ``amp`` (``"bf16"``/``"fp16"``
    autocast), ``channels_last``, ``compile`` (``torch.compile``). The loop reads values back
    from the device only every ``sync_every`` batches (on CPU, every batch) and once per epoch.

    ``checkpoint_path`` saves model, optimizer, scheduler, RNG states and history atomically
    after every epoch; ``resume=True`` continues from that file if it exists.

    Under ``torchrun --nproc_per_node=N`` (``distributed=None`` detects it from ``WORLD_SIZE``)
    the model is wrapped in DistributedDataParallel, each process trains on ``1/N`` of every
    batch (see :mod:`course_utils.distributed`), metrics are summed over processes and only
    rank 0 shows progress, plots and writes checkpoints.

    ``on_epoch_end(epoch, history)`` is called after each epoch (e.g. to time or stop early).
    """
    if not isinstance(num_epochs, int) or num_epochs <= 0:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if scheduler_interval not in {"epoch", "batch"}:
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be positive, got {grad_clip}")
    if sync_every <= 0:
        raise ValueError(f"sync_every must be positive, got {sync_every}")
    device = torch.device(device) if device is not None else _model_device(net)
    ddp = None
    if distributed is None:
        distributed = _distributed.launched_with_torchrun()
    if distributed:
        ddp = _distributed
        device = ddp.setup(device)
        train_iter = ddp.shard_loader(train_iter, ddp.world_size(), ddp.rank())
        if test_iter is not None:
            test_iter = ddp.shard_loader(test_iter, ddp.world_size(), ddp.rank())
    main_process = ddp is None or ddp.is_main_process()
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    model: nn.Module = net
    if ddp is not None:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        model = torch.compile(model)  # type: ignore[assignment]
    autocast = _autocast(device, amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    start_epoch, saved = resume_if_requested(checkpoint_path, resume, net, optimizer, scheduler,
                                             loader=train_iter, map_location=device)
    history = History(**saved)

    from .plotting import TrainingMonitor

    monitor = TrainingMonitor(legend=["train loss", "train acc", "test acc"], num_epochs=num_epochs,
                              batches_per_epoch=train_iter, done_epochs=start_epoch,
                              progress=progress, plot=plot, plot_path=plot_path, active=main_process)
    for i, e in enumerate(history.epoch):
        monitor.epoch(e, {"train loss": history.train_loss[i], "train acc": history.train_acc[i],
                          "test acc": history.test_acc[i]})

    check_each_batch = device.type == "cpu"
    try:
        for epoch in range(start_epoch, num_epochs):
            model.train()
            for holder in (getattr(train_iter, "batch_sampler", None), getattr(train_iter, "sampler", None)):
                inner = getattr(holder, "sampler", None)
                if hasattr(inner, "set_epoch"):  # a sharded loader: a new shuffle each epoch
                    inner.set_epoch(epoch)  # type: ignore[union-attr]
                    break
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            tic = time.perf_counter()
            for batch_idx, (X, y) in enumerate(train_iter, start=1):
                X = X.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if channels_last and X.dim() == 4:
                    X = X.contiguous(memory_format=torch.channels_last)
                with autocast:
                    y_hat = model(X)
                    loss = loss_fn(y_hat, y)
                if loss.dim() != 0:
                    loss = loss.mean()
                optimizer.zero_grad()
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if grad_clip is not None:
                        scaler.unscale_(optimizer)  # type: ignore[arg-type]
                        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
                    scaler.step(optimizer)  # type: ignore[arg-type]
                    scaler.update()
                else:
                    loss.backward()
                    if grad_clip is not None:
                        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
                    optimizer.step()
                if scheduler is not None and scheduler_interval == "batch":
                    scheduler.step()
                n = y.shape[0]
                loss_sum += loss.detach().float() * n
                correct += correct_count(y_hat.detach(), y)
                seen += n
                if check_each_batch or batch_idx % sync_every == 0:
                    running = float(loss_sum) / seen
                    if not math.isfinite(running):
                        where = "" if check_each_batch else f" (first noticed; checked every {sync_every} batches)"
                        raise TrainingDivergedError(
                            f"the training loss became {running} in epoch {epoch + 1}, batch "
                            f"{batch_idx}{where}. Try a lower learning rate, gradient clipping "
                            "(grad_clip=...), or check the input data for NaNs."
                        )
                    if batch_idx % sync_every == 0 or batch_idx == 1:
                        monitor.note(epoch=epoch + 1, loss=f"{running:.3f}")
                monitor.step()
            if seen == 0:
                raise ValueError("the training data loader yielded no batches")
            if ddp is not None:
                loss_sum, correct, seen_t = ddp.all_reduce_sum(
                    [loss_sum, correct, torch.tensor(seen, device=device)])
                seen = int(seen_t)
            train_loss = float(loss_sum) / seen
            if not math.isfinite(train_loss):
                raise TrainingDivergedError(
                    f"the training loss became {train_loss} in epoch {epoch + 1}. Try a lower "
                    "learning rate or gradient clipping (grad_clip=...)."
                )
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            seconds = time.perf_counter() - tic
            test_acc = None
            if test_iter is not None:
                test_correct, test_total = _count_correct(model, test_iter, device)
                if ddp is not None:
                    test_correct, total_t = ddp.all_reduce_sum(
                        [test_correct, torch.tensor(test_total, device=device)])
                    test_total = int(total_t)
                if test_total == 0:
                    raise ValueError("the test data loader yielded no batches")
                test_acc = int(test_correct) / test_total
            history.epoch.append(epoch + 1)
            history.train_loss.append(train_loss)
            history.train_acc.append(int(correct) / seen)
            history.test_acc.append(test_acc)
            history.examples_per_sec.append(seen / seconds if seconds > 0 else float("inf"))
            history.seconds.append(seconds)
            monitor.epoch(epoch + 1, {"train loss": train_loss, "train acc": history.train_acc[-1],
                                      "test acc": test_acc})
            if checkpoint_path is not None and main_process:
                save_checkpoint(checkpoint_path, training_state(net, optimizer, scheduler, epoch=epoch + 1,
                                                     history=history.as_dict(), loader=train_iter))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, history)
    finally:
        monitor.close()
    return history
