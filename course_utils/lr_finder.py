"""The learning-rate range test ("LR finder"): train briefly with an exponentially growing rate.

:func:`lr_find` runs at most ``num_steps`` optimizer steps, the ``i``-th at
``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``, records the loss and its
bias-corrected exponential moving average, and stops once the smoothed loss exceeds
``diverge_factor`` times the best one seen (or is not finite). Afterwards the model and the
optimizer are put back exactly as they were (parameters, buffers such as batch-norm statistics,
optimizer state and learning rates): the test is a measurement, not training. The suggestion is
the rate where the smoothed loss falls fastest (steepest negative slope against ``log(lr)``).

Introduced in ``notebooks/24_cifar10_ladder.ipynb``.
Copy alone.

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

__all__ = ["LRFinderResult", "lr_find", "suggest_lr"]


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

    ``train_iter`` is iterated again from its start when it runs out before ``num_steps``.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, got {num_steps}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    result = LRFinderResult()
    avg, best = 0.0, math.inf
    try:
        model.train()
        batches = iter(train_iter)
        for i in range(num_steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(train_iter)
                batch = next(batches)
            loss = step(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                result.diverged = True
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (i + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > diverge_factor * best:
                result.diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        model.train(was_training)
    if len(result.lrs) >= 2:
        result.suggestion = suggest_lr(result.lrs, result.smoothed)
    return result
