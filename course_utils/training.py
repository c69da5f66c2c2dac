"""One training loop for every task: :func:`fit` is chapter 03's loop plus bookkeeping.

Chapter 03 trained with four lines per minibatch: compute the loss, ``optimizer.zero_grad()``,
``loss.backward()``, ``optimizer.step()``. :func:`fit` runs exactly those lines. A task only
supplies what differs, a *step function* ``step(model, batch) -> loss`` (what a batch holds,
where it goes, which loss). Around the four lines ``fit`` keeps the books: the mean training
loss of each epoch, an evaluation after each epoch, a progress bar and a live plot, a clear
error when the loss diverges, the learning-rate scheduler, and checkpoints to resume from.
Everything else is a small callback (:class:`ClipGradNorm`, :class:`ChannelsLast`,
:class:`Throughput`, or your own). ``backward()`` and ``step()`` go through a
``torch.amp.GradScaler``, disabled unless you pass one: disabled, it calls them unchanged, so
float16 mixed precision is the same loop, not a second one.

:func:`train_classifier` is ``fit`` with a classification step and accuracy as the metric;
``language_model.py`` and ``seq2seq.py`` add their own steps the same way.

Introduced in ``notebooks/04_softmax_regression.ipynb``.
Copy with: ``checkpoints.py``, ``atomic_write.py``, ``plotting.py``, ``settings.py``, ``fast_settings.py``.

>>> import torch
>>> from torch import nn
>>> X = torch.randn(64, 2); y = X @ torch.tensor([2.0, -3.4]) + 4.2
>>> batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
>>> def step(model, batch):
...     X, y = batch
...     return nn.functional.mse_loss(model(X)[:, 0], y)
>>> net = nn.Linear(2, 1)
>>> history = fit(net, batches, step, 30, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
...               progress=False, plot=False)
>>> history.epochs[-1], history["train_loss"][-1] < 1e-3
(30, True)
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, TypedDict

import torch
from torch import nn

if TYPE_CHECKING:  # only for the type checker: typing.Unpack for **kwargs needs Python 3.12
    from typing_extensions import Unpack

if __package__:  # part of course_utils (or of your own package)
    from .checkpoints import CheckpointError, resume_if_requested, save_checkpoint, training_state
    from .fast_settings import FastSettings, choose
    from .plotting import TrainingMonitor
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from checkpoints import CheckpointError, resume_if_requested, save_checkpoint, training_state
    from fast_settings import FastSettings, choose
    from plotting import TrainingMonitor

__all__ = [
    "fit",
    "FitOptions",
    "fit_with",
    "History",
    "FitState",
    "TrainingDivergedError",
    "ClipGradNorm",
    "ChannelsLast",
    "FastestSettings",
    "Throughput",
    "accuracy",
    "correct_count",
    "evaluate_accuracy",
    "train_classifier",
    "model_name",
    "model_device",
]

StepResult = torch.Tensor | tuple[torch.Tensor, int]
Step = Callable[[nn.Module, Any], StepResult]
Evaluate = Callable[[nn.Module], Mapping[str, float]]
HOOKS = ("before_fit", "before_epoch", "before_batch", "after_backward", "after_step", "after_epoch")


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite (the one divergence error of every loop)."""


class History:
    """Per-epoch metrics of :func:`fit`, by name.

    ``history["train_loss"]`` (or ``history.train_loss``) is a list with one float per epoch,
    ``history.epochs`` the epoch numbers (1, 2, ...). Every metric has a value for every epoch.

    >>> h = History("my_step"); h.append(1, {"train_loss": 0.9}); h.append(2, {"train_loss": 0.5})
    >>> h.epochs, h["train_loss"], h.train_loss[-1]
    ([1, 2], [0.9, 0.5], 0.5)
    """

    def __init__(self, step: str = "") -> None:
        self.step = step
        self.epochs: list[int] = []
        self.metrics: dict[str, list[float]] = {}

    def append(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch; its metric names must be those of the earlier epochs."""
        if self.epochs and set(metrics) != set(self.metrics):
            raise ValueError(f"epoch {epoch} reports metrics {sorted(metrics)}, the earlier epochs "
                             f"{sorted(self.metrics)}: report every metric in every epoch")
        self.epochs.append(int(epoch))
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list[float]:
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}; this history has {sorted(self.metrics)}")
        return self.metrics[name]

    def __getattr__(self, name: str) -> list[float]:
        metrics: dict[str, list[float]] = self.__dict__.get("metrics", {})
        if name not in metrics:
            raise AttributeError(f"History has no attribute or metric {name!r}; its metrics: {sorted(metrics)}")
        return metrics[name]

    def __contains__(self, name: object) -> bool:
        return name in self.metrics

    def __len__(self) -> int:
        return len(self.epochs)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for a checkpoint): the step's name, the epochs and the metrics."""
        return {"step": self.step, "epochs": list(self.epochs),
                "metrics": {name: list(values) for name, values in self.metrics.items()}}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any], step: str, source: str = "the checkpoint") -> History:
        """The history saved by :meth:`as_dict`, checked to come from a run with the same ``step``."""
        if set(saved) != {"step", "epochs", "metrics"}:
            raise CheckpointError(f"{source} was not written by fit() (its history holds {sorted(saved)}); "
                                  "start afresh with resume=False or another checkpoint_path")
        if saved["step"] != step:
            raise CheckpointError(
                f"{source} was written by a run with step {saved['step']!r} (metrics "
                f"{sorted(saved['metrics'])}), but this run's step is {step!r}; resume it with the same "
                "training function, or start afresh with resume=False or another checkpoint_path")
        history = cls(step)
        history.epochs = [int(e) for e in saved["epochs"]]
        history.metrics = {name: [float(v) for v in values] for name, values in saved["metrics"].items()}
        return history

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(empty)"
        last = ", ".join(f"{name} {_short(values[-1])}" for name, values in self.metrics.items())
        return f"History({len(self.epochs)} epochs; last: {last})"


def model_name(model: nn.Module) -> str:
    """A short name for plots: the class name; for ``nn.Sequential`` the classes of its layers.

    >>> model_name(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    'Sequential: Flatten → Linear'
    """
    name = type(model).__name__
    if isinstance(model, nn.Sequential) and 0 < len(model) <= 6:
        return f"{name}: " + " → ".join(type(layer).__name__ for layer in model)
    return name


def _short(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3f}"


@dataclass
class FitState:
    """What callbacks see: the model, the optimizer, where the loop is, the batch's loss, this
    epoch's metrics.

    A callback is any object with some of the methods ``before_fit``, ``before_epoch``,
    ``before_batch``, ``after_backward`` (gradients computed, not yet applied), ``after_step``
    (after ``optimizer.step()``) and ``after_epoch``; each gets this state. ``loss`` is the
    batch's loss as ``step`` returned it, detached (a tensor on the model's device: reading it
    with ``float()`` waits for the device), from ``after_backward`` on. A callback may replace
    ``batch`` (in ``before_batch``), add to ``metrics`` (in ``after_epoch``) or set
    ``stop = True`` to end training: set in ``after_epoch`` it ends after that epoch, set in a
    batch's hook it ends after that batch (the epoch then ends early, and is evaluated and
    recorded over the batches it ran).
    """

    model: nn.Module
    optimizer: Any
    scaler: torch.amp.GradScaler
    history: History
    epochs: int
    epoch: int = 0
    batch_index: int = 0
    batch: Any = None
    loss: torch.Tensor | None = None
    count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False


def fit(
    model: nn.Module,
    train_iter: Iterable[Any],
    step: Step,
    epochs: int,
    *,
    optimizer: Any,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    evaluate: Evaluate | None = None,
    callbacks: Sequence[Any] = (),
    scaler: torch.amp.GradScaler | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    plot: bool | Sequence[str] = True,
    title: str | None = None,
    sync_every: int | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs over ``train_iter``; return the :class:`History`.

    ``step(model, batch)`` returns the batch's mean loss, a scalar tensor, or ``(loss, n)``: ``n``
    weighs the batch in the epoch's mean ``train_loss`` (default: the length of the batch's first
    tensor). Then ``zero_grad()``, ``backward()``, ``step()``. A NaN or infinite loss raises
    :class:`TrainingDivergedError` naming epoch and batch. ``optimizer``: a ``torch.optim``
    optimizer or anything with ``zero_grad()`` and ``step()``. ``scheduler`` steps after each
    epoch (or batch: ``scheduler_interval="batch"``). ``evaluate(model)`` runs after each epoch,
    in eval mode under ``no_grad``, and returns named metrics. The history holds ``train_loss``,
    ``seconds`` (of training) and what ``evaluate`` and ``callbacks`` add. ``checkpoint_path``
    saves everything atomically after each epoch; ``resume=True`` continues from it exactly.
    ``scaler``: a ``torch.amp.GradScaler`` for float16 autocast (in ``step``). ``progress``: a bar
    (``None``: where tqdm sees a terminal or notebook); ``plot``: a live plot of all metrics but
    times and speeds (or of the names given), with ``title`` (default: :func:`model_name`).
    ``sync_every``: read the losses back from the device every that many batches (and at the end
    of each epoch) instead of after every batch, so that a GPU is not kept waiting for the host;
    a NaN loss is then found up to ``sync_every - 1`` batches late (the error still names its
    batch). Default: 1 on the CPU (reading back costs nothing there), 32 on other devices.
    """
    _check_fit_args(epochs, scheduler_interval, callbacks)
    if sync_every is None:
        sync_every = 1 if model_device(model).type == "cpu" else 32
    if not isinstance(sync_every, int) or isinstance(sync_every, bool) or sync_every <= 0:
        raise ValueError(f"sync_every must be a positive int, got {sync_every!r}")
    if scaler is None:  # a disabled scaler: plain backward() and optimizer.step()
        scaler = torch.amp.GradScaler(enabled=False)
    done, saved = resume_if_requested(checkpoint_path, resume, model, optimizer, scheduler,
                                      loader=train_iter, map_location=model_device(model))
    name = getattr(step, "__qualname__", type(step).__qualname__)
    history = History.from_dict(saved, name, f"checkpoint {checkpoint_path}") if done else History(name)
    run = FitState(model, optimizer, scaler, history, epochs)
    monitor = TrainingMonitor(num_epochs=epochs, batches_per_epoch=train_iter, done_epochs=done,
                              progress=progress, plot=plot, title=model_name(model) if title is None else title)
    monitor.replay(history.epochs, history.metrics)
    _call(callbacks, "before_fit", run)
    try:
        for epoch in range(done + 1, epochs + 1):
            run.epoch, run.batch_index, run.count, total, tic = epoch, 0, 0, 0.0, time.perf_counter()
            model.train()
            _call(callbacks, "before_epoch", run)
            pending: list[tuple[torch.Tensor, int, int]] = []  # (loss, n, batch) not yet read back
            for i, batch in enumerate(train_iter, start=1):
                run.batch_index, run.batch = i, batch
                _call(callbacks, "before_batch", run)
                loss, n = _loss_and_weight(step(model, run.batch), run.batch)
                run.loss = loss.detach()
                pending.append((run.loss, n, i))
                if len(pending) >= sync_every:  # waits for the device
                    total = _read_back(pending, total, epoch, monitor)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                _call(callbacks, "after_backward", run)
                scaler.step(optimizer)
                scaler.update()
                _call(callbacks, "after_step", run)
                if scheduler is not None and scheduler_interval == "batch":
                    scheduler.step()
                run.count += n
                if run.stop:
                    break
            total = _read_back(pending, total, epoch, monitor)  # the epoch's last batches
            if run.batch_index == 0:
                raise ValueError("the training data (train_iter) yielded no batches")
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            run.metrics = {"train_loss": total / run.count, "seconds": time.perf_counter() - tic}
            if evaluate is not None:
                run.metrics.update(_evaluate(model, evaluate))
            _call(callbacks, "after_epoch", run)
            history.append(epoch, run.metrics)
            monitor.epoch(epoch, run.metrics)
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, training_state(model, optimizer, scheduler, epoch=epoch,
                                                                history=history.as_dict(), loader=train_iter))
            if run.stop:
                break
    finally:
        monitor.close()
    return history


class FitOptions(TypedDict, total=False):
    """:func:`fit`'s keyword options, for a wrapper's ``**fit_options: Unpack[FitOptions]``.

    A wrapper such as :func:`train_classifier` takes these and hands them to :func:`fit_with`,
    so it passes every option of ``fit`` without restating it (``tests/test_training.py`` fails
    when ``fit`` gains a keyword that is missing here). ``optimizer`` is a wrapper's own
    positional argument.
    """

    scheduler: Any
    scheduler_interval: str
    evaluate: Evaluate | None
    callbacks: Sequence[Any]
    scaler: torch.amp.GradScaler | None
    checkpoint_path: str | os.PathLike[str] | None
    resume: bool
    progress: bool | None
    plot: bool | Sequence[str]
    title: str | None
    sync_every: int | None


def fit_with(
    model: nn.Module,
    train_iter: Iterable[Any],
    step: Step,
    epochs: int,
    optimizer: Any,
    options: FitOptions,
    *,
    evaluate: Evaluate | None = None,
    callbacks: Sequence[Any] = (),
) -> History:
    """:func:`fit` with the caller's ``options`` and a wrapper's own ``evaluate`` and ``callbacks``.

    The wrapper's callbacks run before the caller's; the history holds the metrics of both
    ``evaluate`` functions (a name reported by both raises ``ValueError``). Every other option
    goes to ``fit`` unchanged.

    >>> X = torch.randn(32, 2); batches = [(X, X.sum(1))]
    >>> step = lambda model, batch: nn.functional.mse_loss(model(batch[0])[:, 0], batch[1])
    >>> net = nn.Linear(2, 1)
    >>> options = FitOptions(evaluate=lambda m: {"theirs": 2.0}, progress=False, plot=False)
    >>> h = fit_with(net, batches, step, 2, torch.optim.SGD(net.parameters(), lr=0.1), options,
    ...              evaluate=lambda m: {"mine": 1.0})
    >>> sorted(h.metrics)
    ['mine', 'seconds', 'theirs', 'train_loss']
    """
    merged = FitOptions(**options)
    theirs = options.get("evaluate")
    merged["evaluate"] = theirs if evaluate is None else evaluate if theirs is None else _both(evaluate, theirs)
    merged["callbacks"] = [*callbacks, *options.get("callbacks", ())]
    return fit(model, train_iter, step, epochs, optimizer=optimizer, **merged)


def _both(first: Evaluate, second: Evaluate) -> Evaluate:
    def evaluate(model: nn.Module) -> dict[str, float]:
        metrics, more = dict(first(model)), second(model)
        if set(metrics) & set(more):
            raise ValueError(f"evaluate reports {sorted(set(metrics) & set(more))}, which the training "
                             "function already reports; give your metrics other names")
        return {**metrics, **more}

    return evaluate


def _read_back(pending: list[tuple[torch.Tensor, int, int]], total: float, epoch: int,
               monitor: TrainingMonitor) -> float:
    """Read the pending batch losses back (one transfer), check each is finite, add ``loss * n``
    to ``total`` batch by batch (the sum a per-batch loop makes, to the last bit) and show them."""
    if not pending:
        return total
    values = [float(pending[0][0])] if len(pending) == 1 else [float(v) for v in torch.stack(
        [loss for loss, _, _ in pending]).cpu()]
    for value, (_, n, batch) in zip(values, pending, strict=True):
        if not math.isfinite(value):
            raise _diverged(value, epoch, batch)
        total += value * n
        monitor.step(epoch=epoch, loss=value)
    pending.clear()
    return total


def _diverged(value: float, epoch: int, batch: int) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"the training loss became {value} in epoch {epoch}, batch {batch}. Try a lower learning rate or "
        "gradient clipping (grad_clip=... or a ClipGradNorm callback), and check the data for NaN or "
        "infinite values.")


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """The device to run ``model`` on: ``device`` if given, else the device its first parameter
    (or, without parameters, its first buffer) is on; the CPU for a model with neither.

    >>> model_device(nn.Linear(2, 1)), model_device(nn.ReLU()), model_device(nn.ReLU(), "cpu")
    (device(type='cpu'), device(type='cpu'), device(type='cpu'))
    """
    if device is not None:
        return torch.device(device)
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_fit_args(epochs: int, scheduler_interval: str, callbacks: Sequence[Any]) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if scheduler_interval not in {"epoch", "batch"}:
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    for cb in callbacks:
        if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
            raise TypeError(f"{cb!r} is not a callback: it has none of the methods {', '.join(HOOKS)}")


def _call(callbacks: Sequence[Any], hook: str, run: FitState) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(run)


def _loss_and_weight(result: StepResult, batch: Any) -> tuple[torch.Tensor, int]:
    loss, n = result if isinstance(result, tuple) else (result, None)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"step must return the batch's mean loss as a scalar tensor (or (loss, n)), got "
                         f"{shape}; average per-example losses with .mean()")
    if n is None:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        n = len(first) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1
    if int(n) <= 0:
        raise ValueError(f"a batch's weight n must be positive, got {n}")
    return loss, int(n)


def _evaluate(model: nn.Module, evaluate: Evaluate) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad():
            return {name: float(value) for name, value in evaluate(model).items()}
    finally:
        model.train()


class ClipGradNorm:
    """Clip the global gradient norm to ``max_norm`` after every backward pass
    (``torch.nn.utils.clip_grad_norm_``). With ``record="grad_norm"`` the epoch's mean norm
    before clipping goes into the history under that name."""

    def __init__(self, max_norm: float, record: str | None = None) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        self.max_norm, self.record = max_norm, record
        self.norms: list[float] = []

    def before_epoch(self, run: FitState) -> None:
        self.norms = []

    def after_backward(self, run: FitState) -> None:
        run.scaler.unscale_(run.optimizer)  # a no-op without mixed precision
        norm = nn.utils.clip_grad_norm_(run.model.parameters(), self.max_norm)
        if self.record:
            self.norms.append(float(norm))

    def after_epoch(self, run: FitState) -> None:
        if self.record:
            run.metrics[self.record] = sum(self.norms) / max(len(self.norms), 1)


class ChannelsLast:
    """Keep the model and every 4-D input tensor in the channels-last memory layout: the same
    numbers, often faster convolutions (on CPUs with oneDNN and on recent GPUs)."""

    def before_fit(self, run: FitState) -> None:
        run.model.to(memory_format=torch.channels_last)

    def before_batch(self, run: FitState) -> None:
        if isinstance(run.batch, (tuple, list)):
            run.batch = type(run.batch)(
                t.contiguous(memory_format=torch.channels_last) if isinstance(t, torch.Tensor) and t.dim() == 4
                else t for t in run.batch)


class FastestSettings:
    """Before the first batch, decide bfloat16 autocast and the memory layout for this model and
    batch with ``fast_settings.choose`` (timed on the CPU, cached; as set elsewhere), print the
    choice when it was timed, and from then on keep the layout (as :class:`ChannelsLast`).
    The step runs its forward pass under :meth:`autocast`. ``bf16`` / ``channels_last``:
    ``None`` to decide, ``True``/``False`` to fix."""

    def __init__(self, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device,
                 bf16: bool | None = None, channels_last: bool | None = None, announce: bool = True) -> None:
        self.loss_fn, self.device, self.bf16, self.channels_last = loss_fn, device, bf16, channels_last
        self.announce = announce
        self.choice: FastSettings | None = None
        self._layout = ChannelsLast()

    def before_batch(self, run: FitState) -> None:
        if self.choice is None:
            X, y = (t.to(self.device) for t in run.batch[:2])
            self.choice = choose(run.model, X, y, self.loss_fn, bf16=self.bf16, channels_last=self.channels_last)
            if self.announce and self.choice.seconds:
                print(f"training with {self.choice.describe()}")
            if self.choice.channels_last:
                self._layout.before_fit(run)
        if self.choice.channels_last:
            self._layout.before_batch(run)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast if it was chosen, else nothing."""
        if self.choice is None or not self.choice.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


class Throughput:
    """Add ``name``: the items per second of training (the ``n`` that weigh the loss)."""

    def __init__(self, name: str = "examples_per_sec") -> None:
        self.name = name

    def after_epoch(self, run: FitState) -> None:
        seconds = run.metrics["seconds"]
        run.metrics[self.name] = run.count / seconds if seconds > 0 else math.inf


# --- classification -----------------------------------------------------------------------

def _check_pair(y_hat: torch.Tensor, y: torch.Tensor) -> None:
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D class indices, got shape {tuple(y.shape)}")
    if y_hat.dim() not in (1, 2) or y_hat.shape[0] != y.shape[0]:
        raise ValueError(
            f"predictions {tuple(y_hat.shape)} do not match labels {tuple(y.shape)}: expected "
            "(batch, classes) scores or (batch,) class indices"
        )


def correct_count(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions as a 0-d tensor (no wait for the device)."""
    _check_pair(y_hat, y)
    pred = y_hat.argmax(dim=1) if y_hat.dim() == 2 else y_hat
    return (pred.to(y.dtype) == y).sum()


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct predictions; ``y_hat`` holds scores ``(n, classes)`` or classes ``(n,)``."""
    if y.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return float(correct_count(y_hat, y)) / y.numel()


def evaluate_accuracy(
    net: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    data_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> float:
    """Accuracy of ``net`` over a whole dataset, in eval mode and under ``inference_mode``."""
    module = net if isinstance(net, nn.Module) else None
    device = model_device(module, device) if module is not None else torch.device(device or "cpu")
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    correct, total = torch.zeros((), dtype=torch.int64, device=device), 0
    try:
        with torch.inference_mode():
            for X, y in data_iter:
                X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
                correct += correct_count(net(X), y)
                total += y.numel()
    finally:
        if module is not None:
            module.train(was_training)
    if total == 0:
        raise ValueError("evaluate_accuracy got an empty dataset")
    return int(correct) / total


class _RunningAccuracy:
    """Correct predictions of the training steps, summed on the device until read."""

    def __init__(self) -> None:
        self.correct: torch.Tensor | int = 0
        self.seen = 0

    def add(self, y_hat: torch.Tensor, y: torch.Tensor) -> None:
        self.correct = self.correct + correct_count(y_hat, y)
        self.seen += y.numel()

    def pop(self) -> float:
        value = int(self.correct) / max(self.seen, 1)
        self.correct, self.seen = 0, 0
        return value


def train_classifier(
    net: nn.Module,
    train_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    test_iter: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: Any,
    num_epochs: int,
    device: torch.device | str | None = None,
    *,
    channels_last: bool | None = None,
    mixed_precision: bool = True,
    **fit_options: Unpack[FitOptions],
) -> History:
    """Train a classifier with :func:`fit`; return its :class:`History`.

    Per epoch the history holds ``train_loss``, ``train_acc`` (of the epoch's training steps,
    in training mode while the weights change), ``test_acc`` (when ``test_iter`` is given),
    ``examples_per_sec`` and ``seconds``. ``loss_fn(y_hat, y)`` may return the batch mean or one
    loss per example (they are averaged). The defaults are the fast ones for this machine and
    model (:class:`FastestSettings`): on the CPU the first batch times float32 against bfloat16
    autocast and the default against the channels-last layout (about a second, once: the choice
    is cached; it counts in the first epoch's ``seconds``) and prints what it chose;
    ``COURSE_PRECISION`` / ``COURSE_CHANNELS_LAST`` or a GPU decide as ``settings.describe()``
    prints. ``channels_last=True``/``False`` fixes the layout, ``mixed_precision=False`` keeps
    float32. Every option of
    :func:`fit` (:class:`FitOptions`: ``scheduler``, ``scheduler_interval``, ``callbacks``,
    ``checkpoint_path``, ``resume``, ``plot``, ...) goes to it; an ``evaluate`` adds metrics.
    """
    device = model_device(net, device)
    net.to(device)
    running = _RunningAccuracy()
    fastest = FastestSettings(loss_fn, device, bf16=None if mixed_precision else False, channels_last=channels_last)

    def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        X, y = (t.to(device, non_blocking=True) for t in batch)
        with fastest.autocast():
            y_hat = model(X)
            loss = loss_fn(y_hat, y).mean()
        running.add(y_hat.detach(), y)
        return loss.float(), len(y)

    def evaluate(model: nn.Module) -> dict[str, float]:
        metrics = {"train_acc": running.pop()}
        if test_iter is not None:
            metrics["test_acc"] = evaluate_accuracy(model, test_iter, device)
        return metrics

    extras = [fastest, Throughput("examples_per_sec")]
    return fit_with(net, train_iter, step, num_epochs, optimizer, fit_options, evaluate=evaluate, callbacks=extras)
