"""Checks for chapter 17's exercises (optimization algorithms)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import Wrong, checks, describe, expect_close

Params = list[torch.Tensor]
MakeOptimizer = Callable[[Params], Any]
Loss = Callable[[Params], torch.Tensor]


class _Scratch:
    """A tiny optimizer skeleton for the known mistakes (update rules written as functions)."""

    def __init__(self, params: Params, update: Callable[[torch.Tensor, torch.Tensor, dict[str, Any], int], None]):
        self.params, self.update, self.t = params, update, 0
        self.state: list[dict[str, Any]] = [{} for _ in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        with torch.no_grad():
            for p, state in zip(self.params, self.state, strict=True):
                if p.grad is not None:
                    self.update(p, p.grad, state, self.t)


def _trajectory(make_opt: MakeOptimizer, start: Params, losses: Sequence[Loss], uses_grad: Sequence[bool]
                ) -> torch.Tensor:
    """All parameters, flattened and concatenated, after every step (one row per step)."""
    params = [p.detach().clone().requires_grad_() for p in start]
    opt = make_opt(params)
    rows = []
    for loss_fn in losses:
        opt.zero_grad()
        loss_fn(params).backward()
        for p, used in zip(params, uses_grad, strict=True):
            if not used:
                p.grad = None
        opt.step()
        rows.append(torch.cat([p.detach().reshape(-1).clone() for p in params]))
    return torch.stack(rows)


class _LeastSquares:
    """A random least-squares loss; the third parameter gets gradients of size about ``tiny``."""

    def __init__(self, g: torch.Generator, tiny: float) -> None:
        self.X = torch.randn(6, 3, generator=g, dtype=torch.float64)
        self.y = torch.randn(6, 4, generator=g, dtype=torch.float64)
        self.z = torch.randn(5, generator=g, dtype=torch.float64)
        self.tiny = tiny

    def __call__(self, params: Params) -> torch.Tensor:
        w, b, u = params
        return ((self.X @ w + b - self.y) ** 2).mean() + self.tiny * ((u * self.z).sum() + 0.5 * (u ** 2).sum())


def _problem(g: torch.Generator, num_steps: int, tiny: float = 1.0) -> tuple[Params, list[Loss]]:
    """Start values and one random loss per step."""
    start = [torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64),
             torch.randn(5, generator=g, dtype=torch.float64)]
    return start, [_LeastSquares(g, tiny) for _ in range(num_steps)]


def _compare(got: Any, expected: torch.Tensor, what: str, mistakes: dict[str, torch.Tensor]) -> None:
    if isinstance(got, torch.Tensor) and not bool(torch.isfinite(got).all()):
        raise Wrong(f"{what}: the parameters became NaN or infinite")
    expect_close(got, expected, what, rtol=1e-7, atol=1e-10, mistakes=mistakes)


# --- 17.1 Nesterov momentum ----------------------------------------------------------------------

def _nesterov_variant(lr: float, momentum: float, kind: str) -> Callable[[torch.Tensor, torch.Tensor,
                                                                          dict[str, Any], int], None]:
    def update(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], t: int) -> None:
        if "v" not in state:
            state["v"] = g.clone() if kind != "dampened" else (1 - momentum) * g
        elif kind == "dampened":
            state["v"].mul_(momentum).add_((1 - momentum) * g)
        else:
            state["v"].mul_(momentum).add_(g)
        p -= lr * (state["v"] if kind == "plain" else g + momentum * state["v"])
    return update


def _nesterov_case(optimizer_class: Callable[..., Any], g: torch.Generator, lr: float, momentum: float) -> None:
    name = f"12 steps with lr={lr}, momentum={momentum} (parameter values after every step)"
    uses_grad = [True, True, False]  # the third parameter gets no gradient: it must not move
    start, losses = _problem(g, 12)

    def run(make: MakeOptimizer) -> torch.Tensor:
        return _trajectory(make, start, losses, uses_grad)

    got = run(lambda ps: optimizer_class(ps, lr=lr, momentum=momentum))
    expected = run(lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum, nesterov=True))
    mistakes = {
        "this is plain momentum (w −= η v); Nesterov steps by η (g + μ v)":
            run(lambda ps: _Scratch(ps, _nesterov_variant(lr, momentum, "plain"))),
        "the gradient was averaged into the velocity with a factor (1 − μ) (dampening); PyTorch adds it whole":
            run(lambda ps: _Scratch(ps, _nesterov_variant(lr, momentum, "dampened"))),
    }
    _compare(got, expected, name, mistakes)


@checks("17.1")
def nesterov(optimizer_class: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(171)
    for lr, momentum in [(0.05, 0.9), (0.1, 0.5)]:
        _nesterov_case(optimizer_class, g, lr, momentum)
    return "equals torch.optim.SGD(momentum=μ, nesterov=True) after every one of 12 steps, for two settings"


# --- 17.2 AdamW -----------------------------------------------------------------------------------

def _adamw_variant(lr: float, betas: tuple[float, float], eps: float, wd: float,
                   kind: str) -> Callable[[torch.Tensor, torch.Tensor, dict[str, Any], int], None]:
    beta1, beta2 = betas

    def update(p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], t: int) -> None:
        m = state.setdefault("m", torch.zeros_like(p))
        v = state.setdefault("v", torch.zeros_like(p))
        p.mul_(1 - lr * wd)
        m.mul_(beta1).add_((1 - beta1) * g)
        v.mul_(beta2).add_((1 - beta2) * g * g)
        m_hat, v_hat = (m, v) if kind == "no-bias-correction" else (m / (1 - beta1**t), v / (1 - beta2**t))
        p -= lr * m_hat / ((v_hat + eps).sqrt() if kind == "eps-inside" else v_hat.sqrt() + eps)
    return update


def _adamw_case(optimizer_class: Callable[..., Any], g: torch.Generator, lr: float, betas: tuple[float, float],
                eps: float, wd: float, tiny: float) -> None:
    name = (f"10 steps with lr={lr}, betas={betas}, eps={eps}, weight_decay={wd}"
            + (", one parameter with gradients of size about 1e-3" if tiny < 1 else ""))
    start, losses = _problem(g, 10, tiny)

    def run(make: MakeOptimizer) -> torch.Tensor:
        return _trajectory(make, start, losses, [True, True, True])

    def scratch(kind: str) -> torch.Tensor:
        return run(lambda ps: _Scratch(ps, _adamw_variant(lr, betas, eps, wd, kind)))

    got = run(lambda ps: optimizer_class(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd))
    if not bool(torch.isfinite(got).all()):
        raise Wrong(f"{name}: the parameters became NaN or infinite; the bias correction divides by "
                    f"1 − β^t, which is 0 if t is still 0: count the steps from 1")
    expected = run(lambda ps: torch.optim.AdamW(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd))
    mistakes = {
        "the weight decay was added to the gradient (Adam's L2 penalty, Adam(weight_decay=...)); AdamW "
        "shrinks the weights directly, w ← w − ηλw":
            run(lambda ps: torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd)),
        "no bias correction: divide m and v by 1 − β₁^t and 1 − β₂^t": scratch("no-bias-correction"),
        "ε was added inside the square root; PyTorch adds it after: √v̂ + ε": scratch("eps-inside"),
    }
    _compare(got, expected, name, mistakes)


@checks("17.2")
def adamw(optimizer_class: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(172)
    _adamw_case(optimizer_class, g, 0.01, (0.9, 0.999), 1e-8, 0.1, 1.0)
    _adamw_case(optimizer_class, g, 0.05, (0.8, 0.99), 1e-3, 0.5, 1e-3)
    return "equals torch.optim.AdamW after every one of 10 steps, for two settings (one where ε matters)"


# --- 17.3 ReduceLROnPlateau -----------------------------------------------------------------------

def _plateau_variant(losses: Sequence[float], lr: float, factor: float, patience: int, threshold: float, *,
                     at_patience: bool = False, no_reset: bool = False, previous: bool = False,
                     no_threshold: bool = False, subtract: bool = False) -> list[float]:
    best, bad, out = math.inf, 0, []
    for loss in losses:
        bar = best if no_threshold else best - best * threshold if subtract else best * (1 - threshold)
        better = loss < bar
        bad = 0 if better else bad + 1
        if better or previous:
            best = loss
        if (bad >= patience if at_patience else bad > patience):
            lr *= factor
            if not no_reset:
                bad = 0
        out.append(lr)
    return out


def _torch_plateau(losses: Sequence[float], lr: float, factor: float, patience: int, threshold: float) -> list[float]:
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=factor, patience=patience,
                                                           threshold=threshold, threshold_mode="rel")
    out = []
    for loss in losses:
        opt.step()
        scheduler.step(loss)
        out.append(float(opt.param_groups[0]["lr"]))
    return out


@checks("17.3")
def reduce_on_plateau(plateau_lrs: Callable[..., Any]) -> str:
    cases: list[tuple[str, list[float], float, float, int, float]] = [
        ("losses that improve on the previous epoch but not on the best one, patience 2",
         [1.0, 0.9, 0.95, 0.92, 0.91, 0.85, 0.86, 0.87, 0.88, 0.9, 0.84, 0.84, 0.84, 0.84, 0.84, 0.84],
         0.1, 0.5, 2, 1e-4),
        ("losses that improve by only 1e-6 (relative threshold 1e-4), patience 1",
         [1.0, 0.999999, 0.999998, 0.999997, 0.999996, 0.999995, 0.5, 0.499999], 1.0, 0.1, 1, 1e-4),
        ("patience 0: every epoch without improvement reduces the rate",
         [2.0, 1.5, 1.6, 1.4, 1.45, 1.44, 1.3], 0.01, 0.2, 0, 1e-4),
        ("a long plateau, patience 3", [0.5] * 12, 0.1, 0.1, 3, 1e-4),
    ]
    for name, losses, lr, factor, patience, threshold in cases:
        got = plateau_lrs(list(losses), lr, factor, patience, threshold)
        try:
            got_t = torch.tensor([float(x) for x in got], dtype=torch.float64)
        except (TypeError, ValueError):
            raise Wrong(f"{name}: return a list of learning rates, one per epoch, got {describe(got)}") from None
        expected = torch.tensor(_torch_plateau(losses, lr, factor, patience, threshold), dtype=torch.float64)

        def variant(**flags: bool) -> torch.Tensor:
            return torch.tensor(_plateau_variant(losses, lr, factor, patience, threshold, **flags),  # noqa: B023
                                dtype=torch.float64)

        mistakes = {
            "the rate was reduced after `patience` bad epochs; PyTorch waits until more than `patience` have "
            "passed (bad_epochs > patience)": variant(at_patience=True),
            "the count of bad epochs was not reset after a reduction": variant(no_reset=True),
            "each loss was compared with the previous epoch's, not with the best so far": variant(previous=True),
            "the threshold was ignored: an improvement counts only if loss < best · (1 − threshold)":
                variant(no_threshold=True),
            "compared with best − best · threshold, which is NaN while best = +∞ (∞ − ∞), so the first "
            "epoch never improves; compare with best · (1 − threshold)": variant(subtract=True),
        }
        expect_close(got_t, expected, f"the learning rates for {name}", rtol=1e-9, atol=1e-15, mistakes=mistakes)
    return "equals torch.optim.lr_scheduler.ReduceLROnPlateau (mode 'min', relative threshold) on four loss curves"


# --- 17.4 predict Adam's first step -----------------------------------------------------------------

@checks("17.4")
def adam_first_step(prediction: Any) -> str:
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.tolist()
    if isinstance(prediction, (int, float)) or not isinstance(prediction, (list, tuple)) or len(prediction) != 3:
        raise Wrong(f"predict one change per parameter: a list of 3 numbers, got {describe(prediction)}")
    try:
        predicted = [float(x) for x in prediction]
    except (TypeError, ValueError):
        raise Wrong(f"the prediction should contain numbers, got {describe(prediction)}") from None
    grads = torch.tensor([1e-3, 1.0, 1e3], dtype=torch.float64)
    params = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([params], lr=0.1)
    params.grad = grads.clone()
    opt.step()
    measured = params.detach().tolist()
    shown = ", ".join(f"{p:+.6g} (measured {m:+.6g})" for p, m in zip(predicted, measured, strict=True))
    close = all(math.isclose(p, m, rel_tol=0.01, abs_tol=1e-4) for p, m in zip(predicted, measured, strict=True))
    verdict = ("right: Adam's first step is −lr · g / (|g| + ε), the sign of the gradient times the learning "
               "rate, whatever its size" if close else
               "the first step has m̂ = g and v̂ = g², so every parameter moves by −lr · g / (|g| + ε) ≈ −lr")
    return f"for gradients 0.001, 1 and 1000: {shown}; {verdict}"
