"""The learning-rate range test ("LR finder"): train briefly with an exponentially growing rate.

:func:`lr_find` runs at most ``num_steps`` optimizer steps, the ``i``-th at
``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``, records the loss and its
bias-corrected exponential moving average, and stops once the smoothed loss exceeds
``diverge_factor`` times the best one seen (or is not finite). Afterwards the model and the
optimizer are put back exactly as they were (parameters, buffers such as batch-norm statistics,
optimizer state and learning rates): the test is a measurement, not training. The suggestion is
the rate where the smoothed loss falls fastest (steepest negative slope against ``log(lr)``).

The steps are :func:`training.fit`'s: the test is the :class:`LRFinder` callback (it sets the
rate before each batch, records the loss after each optimizer step and stops the run) on the
course's one training loop, so a change to that loop reaches the range test too.

Introduced in ``notebooks/24_cifar10_ladder.ipynb``.
Copy with: ``training.py``, ``checkpoints.py``, ``atomic_write.py``, ``plotting.py``, ``settings.py``,
``fast_settings.py``.

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> X = torch.randn(256, 4); y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0])
>>> batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
>>> net = torch.nn.Linear(4, 1)
>>> before = {k: v.clone() for k, v in net.state_dict().items()}
>>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
>>> step = lambda model, batch: torch.nn.functional.mse_loss(model(batch[0])[:, 0], batch[1])
>>> result = lr_find(net, opt, batches, step, start_lr=1e-4, end_lr=10.0, num_steps=60)
>>> all(torch.equal(before[k], v) for k, v in net.state_dict().items()), opt.param_groups[0]["lr"]
(True, 0.1)
>>> 1e-4 < result.suggestion < 10.0
True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

if __package__:  # part of course_utils (or of your own package)
    from .training import FitState, TrainingDivergedError, fit
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from training import FitState, TrainingDivergedError, fit

__all__ = ["LRFinderResult", "LRFinder", "lr_find", "suggest_lr"]


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured: the rates tried, raw and smoothed losses, a suggestion."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float = math.nan
    diverged: bool = False

    def plot(self, ax: Any = None) -> Any:
        """Smoothed loss against the learning rate (log axis), the suggestion marked."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        ax.plot(self.lrs, self.losses, alpha=0.3, label="loss")
        ax.plot(self.lrs, self.smoothed, label="smoothed loss")
        if math.isfinite(self.suggestion):
            ax.axvline(self.suggestion, color="k", linestyle="--", label=f"suggestion {self.suggestion:.2g}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss")
        ax.legend()
        return ax


def suggest_lr(lrs: list[float], smoothed: list[float], skip_start: int = 5, skip_end: int = 3) -> float:
    """The rate where ``smoothed`` falls fastest against ``log(lr)`` (ends trimmed, as fastai)."""
    if len(lrs) != len(smoothed):
        raise ValueError(f"{len(lrs)} learning rates but {len(smoothed)} losses")
    lo, hi = skip_start, len(lrs) - skip_end
    if hi - lo < 2:
        lo, hi = 0, len(lrs)
    if hi - lo < 2:
        raise ValueError("need at least 2 points to suggest a learning rate")
    logs = torch.tensor(lrs[lo:hi], dtype=torch.float64).log()
    losses = torch.tensor(smoothed[lo:hi], dtype=torch.float64)
    slopes = (losses[1:] - losses[:-1]) / (logs[1:] - logs[:-1])
    return float(lrs[lo + int(slopes.argmin())])


class LRFinder:
    """The range test as a :func:`training.fit` callback; what it measures is in ``result``.

    Before the ``i``-th batch it sets every parameter group's rate to :meth:`lr` ``(i)``; after
    the optimizer step it records the rate, the loss and its smoothed value, and stops the run
    (``run.stop``) after ``num_steps`` steps or once the smoothed loss is ``diverge_factor`` times
    the best one. It changes the model and the optimizer: :func:`lr_find` restores them.
    """

    def __init__(self, start_lr: float = 1e-6, end_lr: float = 10.0, num_steps: int = 100,
                 beta: float = 0.98, diverge_factor: float = 4.0) -> None:
        if not 0 < start_lr < end_lr:
            raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
        if num_steps < 2:
            raise ValueError(f"num_steps must be at least 2, got {num_steps}")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.start_lr, self.end_lr, self.num_steps = start_lr, end_lr, num_steps
        self.beta, self.diverge_factor = beta, diverge_factor
        self.result = LRFinderResult()
        self._avg, self._best = 0.0, math.inf

    def lr(self, i: int) -> float:
        """The rate of step ``i`` (0, 1, ..., ``num_steps - 1``)."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (i / (self.num_steps - 1))

    def before_batch(self, run: FitState) -> None:
        lr = self.lr(len(self.result.lrs))
        for group in run.optimizer.param_groups:
            group["lr"] = lr

    def after_step(self, run: FitState) -> None:
        assert run.loss is not None  # fit sets it before backward()
        result, i = self.result, len(self.result.lrs)
        value = float(run.loss)
        self._avg = self.beta * self._avg + (1 - self.beta) * value
        smooth = self._avg / (1 - self.beta ** (i + 1))
        result.lrs.append(self.lr(i))
        result.losses.append(value)
        result.smoothed.append(smooth)
        self._best = min(self._best, smooth)
        if smooth > self.diverge_factor * self._best:
            result.diverged = run.stop = True
        if len(result.lrs) == self.num_steps:
            run.stop = True


def lr_find(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_iter: Iterable[Any],
    step: Callable[[nn.Module, Any], torch.Tensor],
    *,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFinderResult:
    """Run the range test (see the module docstring); ``step(model, batch)`` returns the loss.

    ``train_iter`` is iterated again from its start when it runs out before ``num_steps``
    (each pass is one epoch of :func:`training.fit`). A non-finite loss ends the test
    (``diverged``) before its step is taken or recorded.
    """
    finder = LRFinder(start_lr, end_lr, num_steps, beta, diverge_factor)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    try:  # num_steps epochs hold at least num_steps batches; the finder stops the run in time
        fit(model, train_iter, step, num_steps, optimizer=optimizer, callbacks=[finder],
            progress=False, plot=False)
    except TrainingDivergedError:  # a NaN or infinite loss: fit stopped before its step
        finder.result.diverged = True
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        model.train(was_training)
    result = finder.result
    if len(result.lrs) >= 2:
        result.suggestion = suggest_lr(result.lrs, result.smoothed)
    return result
