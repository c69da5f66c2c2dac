"""Checks for chapter 03's exercises (linear regression)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import Wrong, checks, describe, expect_close, expect_equal

Tensor = torch.Tensor


# --- 3.1 the normal equations ----------------------------------------------------------------

def _least_squares_problems() -> list[tuple[str, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(31)
    X1 = 100 + 3 * torch.randn(50, 3, generator=g, dtype=torch.float64)
    y1 = X1 @ torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64) + 7 + torch.randn(50, generator=g,
                                                                                   dtype=torch.float64)
    X2 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y2 = torch.randn(4, generator=g, dtype=torch.float64)
    X3 = -torch.rand(20, 1, generator=g, dtype=torch.float64) * 5
    y3 = 3 * X3[:, 0] - 4 + 0.1 * torch.randn(20, generator=g, dtype=torch.float64)
    return [("50 examples of 3 features around 100", X1, y1),
            ("exactly d + 1 = 4 examples of 3 features", X2, y2),
            ("20 examples of one negative feature", X3, y3)]


def _lstsq(A: Tensor, y: Tensor) -> Tensor:
    return torch.linalg.lstsq(A, y.unsqueeze(1), driver="gelsd").solution[:, 0]


def _as_scalar(value: Any, what: str) -> Tensor:
    tensor = value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if tensor.numel() != 1:
        raise Wrong(f"{what} should be one number (a scalar tensor), got {describe(tensor)}")
    return tensor.reshape(())


@checks("3.1")
def normal_equations(normal_equations: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]) -> str:
    for name, X, y in _least_squares_problems():
        n, d = X.shape
        ones = torch.ones(n, 1, dtype=X.dtype)
        theta = _lstsq(torch.cat([X, ones], dim=1), y)
        first = _lstsq(torch.cat([ones, X], dim=1), y)  # [b, w] with the ones column in front
        no_bias = _lstsq(X, y)
        answer = normal_equations(X.clone(), y.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"return a pair (w, b), got {describe(answer)}")
        w, b = answer
        b = _as_scalar(b, f"b for {name}")
        expect_close(b, theta[d], f"b for {name}", rtol=1e-6, atol=1e-6, mistakes={
            "left out the column of ones, so the model has no bias": 0.0,
            "left out the column of ones, so the last entry of θ is a weight, not the bias": no_bias[-1],
            "put the column of ones first but read the bias from the last entry of θ": first[d],
            "fitted w without the bias column and set b to the mean label": y.mean(),
        })
        expect_close(w, theta[:d], f"w for {name}", rtol=1e-6, atol=1e-6, mistakes={
            "left out the column of ones, so the model has no bias": no_bias,
            "put the column of ones first but read the bias from the last entry of θ": first[:d],
        })
    return "(w, b) equal torch.linalg.lstsq's on three float64 problems"


# --- 3.2 the Huber loss ----------------------------------------------------------------------

@checks("3.2")
def huber_loss(huber_loss: Callable[..., Tensor]) -> str:
    g = torch.Generator().manual_seed(32)
    cases = [
        ("7 predictions, delta = 1", torch.randn(7, generator=g) * 3, torch.randn(7, generator=g), 1.0),
        ("a 3 × 4 batch, delta = 0.5", torch.randn(3, 4, generator=g) * 2, torch.randn(3, 4, generator=g), 0.5),
        ("residuals -5, -2.5, -0.5, 0, 0.5, 2.5, 5 with delta = 2",
         torch.tensor([-5.0, -2.5, -0.5, 0.0, 0.5, 2.5, 5.0]), torch.zeros(7), 2.0),
        ("a single prediction 10 against 0, delta = 3", torch.tensor([10.0]), torch.tensor([0.0]), 3.0),
    ]
    for name, y_hat, y, delta in cases:
        got = huber_loss(y_hat.clone(), y.clone(), delta)
        r = y_hat - y
        quadratic, linear = 0.5 * r ** 2, delta * (r.abs() - 0.5 * delta)
        expect_close(got, F.huber_loss(y_hat, y, reduction="none", delta=delta), f"huber_loss for {name}",
                     mistakes={
                         "compared the signed residual r with delta instead of |r|, so large negative "
                         "residuals get the quadratic branch": torch.where(r <= delta, quadratic, linear),
                         "the linear branch misses the − δ/2 offset: it is δ|r| − δ²/2, which meets ½r² "
                         "at |r| = δ": torch.where(r.abs() <= delta, quadratic, delta * r.abs()),
                         "the quadratic branch misses the ½": torch.where(r.abs() <= delta, r ** 2, linear),
                         "this is the smooth L1 loss (the Huber loss divided by δ)":
                             F.smooth_l1_loss(y_hat, y, reduction="none", beta=delta),
                         "averaged the losses: return one loss per element":
                             F.huber_loss(y_hat, y, delta=delta),
                     })
    return "equals F.huber_loss(reduction='none') for δ = 0.5, 1, 2 and 3, residuals of both signs"


# --- 3.3 a train/validation split ------------------------------------------------------------

def _indices(value: Any, what: str) -> Tensor:
    tensor = value if isinstance(value, Tensor) else torch.as_tensor(value)
    if tensor.dim() != 1 or tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise Wrong(f"{what} should be a 1-D tensor of integer indices, got {describe(tensor)}")
    return tensor


@checks("3.3")
def train_val_split(train_val_split: Callable[..., tuple[Tensor, Tensor]]) -> str:
    for n, fraction, seed in ((1000, 0.2, 33), (10, 0.25, 34), (10, 0.35, 35), (2, 0.5, 36)):
        name = f"train_val_split({n}, {fraction})"
        answer = train_val_split(n, fraction, torch.Generator().manual_seed(seed))
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return a pair (train_idx, val_idx), got {describe(answer)}")
        train_idx, val_idx = (_indices(t, f"{name}: {w}") for t, w in zip(answer, ("train_idx", "val_idx"),
                                                                         strict=True))
        n_val = int(n * fraction)
        expect_equal(len(val_idx), n_val, f"{name}: the number of validation indices", mistakes={
            f"returned (val_idx, train_idx): the first should be the {n - n_val} training indices":
                n - n_val,
            f"rounded n * val_fraction = {n * fraction:g} to the nearest integer instead of down":
                round(n * fraction),
        })
        shared = set(train_idx.tolist()) & set(val_idx.tolist())
        if shared:
            raise Wrong(f"{name}: train and validation share {len(shared)} "
                        f"{'index' if len(shared) == 1 else 'indices'} (e.g. {min(shared)})")
        everything = torch.cat([train_idx, val_idx]).sort().values
        if not torch.equal(everything, torch.arange(n)):
            raise Wrong(f"{name}: train and validation together should hold each of 0..{n - 1} exactly once, "
                        f"got {len(train_idx)} + {len(val_idx)} indices {describe(everything)}")
    name = "train_val_split(1000, 0.2)"
    first = train_val_split(1000, 0.2, torch.Generator().manual_seed(37))
    again = train_val_split(1000, 0.2, torch.Generator().manual_seed(37))
    other = train_val_split(1000, 0.2, torch.Generator().manual_seed(38))
    if not all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(first, again, strict=True)):
        raise Wrong(f"{name}: two generators with the same seed gave different splits; the function ignores "
                    "its generator (draw the permutation with torch.randperm(n, generator=generator))")
    val = torch.as_tensor(first[1]).sort().values  # the order within val_idx does not matter, its members do
    if torch.equal(val, torch.arange(int(val[0]), int(val[0]) + len(val))):
        raise Wrong(f"{name}: the split is not shuffled: val_idx holds the consecutive indices {int(val[0])} to "
                    f"{int(val[-1])}; choose them at random (torch.randperm(n, generator=generator))")
    if torch.equal(val, torch.as_tensor(other[1]).sort().values):
        raise Wrong(f"{name}: generators with different seeds gave the same validation indices; draw them from "
                    "the generator passed in (torch.randperm(n, generator=generator))")
    return "sizes, disjoint halves covering range(n), same seed → same split, shuffled (n from 2 to 1000)"


# --- 3.4 predict: when does SGD blow up? -----------------------------------------------------

_RATES = (0.03, 0.3, 1.0, 1.5, 2.0, 3.0)


@checks("3.4")
def smallest_diverging_lr(prediction: Any, losses: Any) -> str:
    if prediction is not None and (isinstance(prediction, bool) or not isinstance(prediction, (int, float))
                                   or not any(math.isclose(prediction, r) for r in _RATES)):
        raise Wrong(f"your prediction should be one of the learning rates {', '.join(map(str, _RATES))} "
                    f"or None, got {describe(prediction)}")
    if not isinstance(losses, dict) or sorted(losses) != sorted(_RATES):
        raise Wrong("run the experiment cell unchanged: losses should map each learning rate to "
                    "(initial loss, final loss)")
    diverged = [lr for lr in _RATES if not math.isfinite(losses[lr][1]) or losses[lr][1] > losses[lr][0]]
    measured = diverged[0] if diverged else None
    verdict = "as you predicted" if prediction == measured else f"you predicted {prediction}"
    return (f"the smallest learning rate that diverged here is {measured} ({verdict}); the average loss "
            "has curvature about 1 in every direction, and a step with lr ≥ 2 no longer shrinks the error")
