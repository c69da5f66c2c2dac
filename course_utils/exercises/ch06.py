"""Checks for chapter 06's exercises (model selection and weight decay)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import Wrong, checks, describe, expect_close, expect_equal

Tensor = torch.Tensor


def _design(X: Tensor) -> Tensor:
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


def _scalar(value: Any, what: str) -> Tensor:
    tensor = value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if tensor.numel() != 1:
        raise Wrong(f"{what} should be one number (a scalar tensor), got {describe(tensor)}")
    return tensor.reshape(())


# --- 6.1 weight decay in closed form ---------------------------------------------------------

def _ridge(X: Tensor, y: Tensor, lambd: float, *, scale: float | None = None, penalize_bias: bool = False) -> Tensor:
    n, d = X.shape
    A = _design(X)
    D = torch.eye(d + 1, dtype=X.dtype)
    if not penalize_bias:
        D[d, d] = 0
    s = n if scale is None else scale
    return torch.linalg.solve(A.T @ A / s + lambd * D, A.T @ y / s)


@checks("6.1")
def ridge(ridge: Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]) -> str:
    g = torch.Generator().manual_seed(61)
    X1 = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y1 = X1 @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 3 + 0.1 * torch.randn(40, generator=g,
                                                                                         dtype=torch.float64)
    X2 = torch.randn(20, 50, generator=g, dtype=torch.float64)
    y2 = X2 @ torch.full((50,), 0.01, dtype=torch.float64) + 0.05
    X3 = 2 + torch.randn(15, 2, generator=g, dtype=torch.float64)
    y3 = -X3[:, 0] + 2 * X3[:, 1] - 1 + torch.randn(15, generator=g, dtype=torch.float64)
    cases = [("40 examples, 3 features, λ = 3", X1, y1, 3.0),
             ("20 examples, 50 features, λ = 0.3", X2, y2, 0.3),
             ("15 examples, 2 features away from 0, λ = 1", X3, y3, 1.0),
             ("40 examples, 3 features, λ = 0 (least squares)", X1, y1, 0.0)]
    for name, X, y, lambd in cases:
        d = X.shape[1]
        theta = _ridge(X, y, lambd)
        answer = ridge(X.clone(), y.clone(), lambd)
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"return a pair (w, b), got {describe(answer)}")
        w, b = answer[0], _scalar(answer[1], f"b for {name}")
        mistakes = {
            "also penalized the bias: the last diagonal entry of D must be 0": _ridge(X, y, lambd, penalize_bias=True),
            "forgot the 1/n: with the mean loss the system is (AᵀA / n + λD) θ = Aᵀy / n":
                _ridge(X, y, lambd, scale=1.0),
            "used λ/2 in the system: the gradient of (λ/2)‖w‖² is λw": _ridge(X, y, lambd / 2),
        }
        expect_close(w, theta[:d], f"w for {name}", rtol=1e-6, atol=1e-8,
                     mistakes={k: v[:d] for k, v in mistakes.items()})
        expect_close(b, theta[d], f"b for {name}", rtol=1e-6, atol=1e-8,
                     mistakes={k: v[d] for k, v in mistakes.items()})
    return "(w, b) equal the penalized normal equations' solution for λ = 0, 0.3, 1 and 3 (d > n included)"


# --- 6.2 leave-one-out cross-validation ------------------------------------------------------

def _loo_brute_force(X: Tensor, y: Tensor) -> Tensor:
    A = _design(X)
    errors = []
    for i in range(len(X)):
        keep = torch.arange(len(X)) != i
        theta = torch.linalg.lstsq(A[keep], y[keep].unsqueeze(1)).solution[:, 0]
        errors.append((A[i] @ theta - y[i]) ** 2)
    return torch.stack(errors).mean()


@checks("6.2")
def loo_mse(loo_mse: Callable[[Tensor, Tensor], Any]) -> str:
    g = torch.Generator().manual_seed(62)
    X1 = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y1 = X1 @ torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64) + 0.5 * torch.randn(30, generator=g,
                                                                                      dtype=torch.float64)
    X2 = torch.randn(8, 2, generator=g, dtype=torch.float64) + 1
    y2 = torch.randn(8, generator=g, dtype=torch.float64)
    X3 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(-1, 1)
    y3 = 3 * X3[:, 0] + 1 + 0.1 * torch.randn(12, generator=g, dtype=torch.float64)
    y3[5] += 4  # an outlier
    for name, X, y in (("30 examples, 3 features", X1, y1), ("8 examples, 2 features", X2, y2),
                       ("12 examples, one feature, one outlier", X3, y3)):
        got = _scalar(loo_mse(X.clone(), y.clone()), f"loo_mse for {name}")
        A = _design(X)
        H = A @ torch.linalg.solve(A.T @ A, A.T)
        e, h = y - H @ y, torch.diagonal(H)
        H0 = X @ torch.linalg.solve(X.T @ X, X.T)
        expect_close(got, _loo_brute_force(X, y), f"loo_mse for {name}", rtol=1e-6, atol=1e-10, mistakes={
            "this is the training error: divide each residual by (1 − H_ii) first": (e ** 2).mean(),
            "divided the squared residual by (1 − H_ii) once; the residual e_i / (1 − H_ii) is what gets squared":
                (e ** 2 / (1 - h)).mean(),
            "left out the column of ones, so the model has no bias":
                (((y - H0 @ y) / (1 - torch.diagonal(H0))) ** 2).mean(),
            "included a factor ½: the exercise asks for the plain mean squared error":
                ((e / (1 - h)) ** 2).mean() / 2,
        })
    return "equals n explicit leave-one-out refits on three float64 problems"


# --- 6.3 early stopping ----------------------------------------------------------------------

def _early(losses: Sequence[float], patience: int, *, strict: bool = True, reset: bool = True,
           extra: int = 0) -> tuple[int, int]:
    best, best_epoch, waited = math.inf, 0, 0
    for epoch, loss in enumerate(losses, start=1):
        if loss < best or (not strict and loss == best):
            best, best_epoch = loss, epoch
            if reset:
                waited = 0
        else:
            waited += 1
            if waited == patience + extra:
                return best_epoch, epoch
    return best_epoch, len(losses)


@checks("6.3")
def early_stopping(early_stopping: Callable[[list[float], int], tuple[int, int]]) -> str:
    curves = [
        ("a dip, then a rise", [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.3, 3.4], (2, 3, 1)),
        ("a noisy descent with a late improvement", [1.0, 0.9, 0.95, 0.85, 0.9, 0.92, 0.8, 0.81, 0.82, 0.83], (2, 3)),
        ("ties: 3, 3, 3, 2", [3.0, 3.0, 3.0, 2.0], (2,)),
        ("a curve that keeps improving", [4.0, 3.0, 2.0, 1.0], (1, 2)),
        ("a single epoch", [0.7], (1, 3)),
    ]
    for name, losses, patiences in curves:
        for patience in patiences:
            answer: Any = early_stopping(list(losses), patience)
            got = tuple(answer) if isinstance(answer, (list, tuple)) else answer
            best, stop = _early(losses, patience)
            expect_equal(got, (best, stop), f"early_stopping({losses}, patience={patience}) for {name}",
                         mistakes={
                             "counted from 0: epochs are numbered from 1": (best - 1, stop - 1),
                             "a tie counted as an improvement: it must be strictly lower":
                                 _early(losses, patience, strict=False),
                             "the wait is not reset after an improvement: it counts consecutive epochs":
                                 _early(losses, patience, reset=False),
                             "waited patience + 1 epochs without improvement instead of patience":
                                 _early(losses, patience, extra=1),
                         })
    return "(best_epoch, stop_epoch) equal a reference on five loss curves (ties, late improvement, one epoch)"


# --- 6.4 predict: noise on the inputs as a penalty -------------------------------------------

@checks("6.4")
def input_noise_penalty(prediction: Any, X: Any, y: Any, w_average: Any) -> str:
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) or not prediction >= 0 \
            or not math.isfinite(prediction):
        raise Wrong(f"your prediction should be a number λ ≥ 0, got {describe(prediction)}")
    if not all(isinstance(t, Tensor) for t in (X, y, w_average)):
        raise Wrong("run the experiment cell unchanged: it passes X, y and the averaged weights")
    n, d = X.shape
    X64, y64, w64 = X.double(), y.double(), w_average.double()

    def ridge(lambd: float) -> Tensor:
        return torch.linalg.solve(X64.T @ X64 / n + lambd * torch.eye(d, dtype=torch.float64), X64.T @ y64 / n)

    grid = torch.linspace(0, 1, 401, dtype=torch.float64)
    distances = torch.stack([(ridge(float(lam)) - w64).norm() for lam in grid])
    best = float(grid[distances.argmin()])
    mine = (ridge(float(prediction)) - w64).norm().item()
    return (f"you predicted λ = {prediction:g} (distance {mine:.3f} from the measured weights); the best fit is "
            f"λ = {best:.3f}: E[½((x + ε)ᵀw − y)²] = ½(xᵀw − y)² + ½σ²‖w‖², so noise of variance σ² = 0.25 "
            "acts as weight decay with λ = σ²")
