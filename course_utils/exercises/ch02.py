"""Checks for chapter 02's exercises (automatic differentiation)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import Wrong, checks, describe, expect_close

Function = Callable[[torch.Tensor], torch.Tensor]


def _problems() -> list[tuple[str, Function, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [
        ("f(x) = sum(x³)", lambda x: (x ** 3).sum(), torch.randn(5, generator=g, dtype=torch.float64)),
        ("f(x) = sum(sin(x) · x) on a 2 × 3 input", lambda x: (torch.sin(x) * x).sum(),
         torch.randn(2, 3, generator=g, dtype=torch.float64)),
        ("f(x) = log(sum(exp(x)))", lambda x: torch.logsumexp(x, dim=0),
         torch.randn(4, generator=g, dtype=torch.float64)),
    ]


def _one_at_a_time(f: Function, x: torch.Tensor, h: float,
                   delta: Callable[[Function, torch.Tensor, torch.Tensor, float], float]) -> torch.Tensor:
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).view(-1)
        e[i] = 1.0
        grad.view(-1)[i] = delta(f, x, e.view_as(x), h)
    return grad


@checks("2.1")
def central_difference_gradient(central_difference: Callable[[Function, torch.Tensor, float], torch.Tensor]) -> str:
    h = 1e-4
    for name, f, x in _problems():
        x_before = x.clone()
        got = central_difference(f, x, h)
        if not torch.equal(x, x_before):
            if torch.allclose(x, x_before, rtol=1e-12, atol=0.0):
                raise Wrong(f"{name}: x is not exactly as it was: adding h to an entry in place and subtracting "
                            "it again leaves rounding errors; perturb a copy (x.clone()) or restore the saved "
                            "original value")
            raise Wrong(f"{name}: your function changed its input x in place; perturb a copy")
        xg = x.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(f(xg), xg)
        mistakes = {
            "a forward difference (f(x + h) − f(x)) / h, not the central one (f(x + h) − f(x − h)) / 2h":
                _one_at_a_time(f, x, h, lambda f, x, e, h: float(f(x + h * e) - f(x)) / h),
            "divided by h instead of 2h":
                _one_at_a_time(f, x, h, lambda f, x, e, h: float(f(x + h * e) - f(x - h * e)) / h),
            "perturbed every coordinate at once instead of one at a time":
                torch.full_like(x, float(f(x + h) - f(x - h)) / (2 * h)),
        }
        expect_close(got, expected, f"the gradient of {name}", rtol=1e-6, atol=1e-6, mistakes=mistakes)
    return "equals autograd to 1e-6 on three functions (h = 1e-4, float64)"


def _softplus_inputs() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(22)
    return [
        ("x of shape (6,) drawn from N(0, 3²)", 3 * torch.randn(6, generator=g, dtype=torch.float64)),
        ("x = [[-800, -30, -1e-3], [0, 30, 800]]",
         torch.tensor([[-800.0, -30.0, -1e-3], [0.0, 30.0, 800.0]], dtype=torch.float64)),
        ("a single element x = [0.7]", torch.tensor([0.7], dtype=torch.float64)),
    ]


def _finite(got: torch.Tensor, x: torch.Tensor, what: str, hint: str) -> None:
    bad = ~torch.isfinite(got.detach())
    if bad.any():
        where = ", ".join(f"{v:g}" for v in x[bad].tolist()[:3])
        raise Wrong(f"{what} is {got.detach()[bad].flatten()[0].item()} where x = {where}: {hint}")


@checks("2.2")
def softplus_function(SoftPlus: type) -> str:
    if not (isinstance(SoftPlus, type) and issubclass(SoftPlus, torch.autograd.Function)):
        raise Wrong(f"pass the class SoftPlus (a torch.autograd.Function), not {type(SoftPlus).__name__}")
    g = torch.Generator().manual_seed(23)
    for name, x in _softplus_inputs():
        xg = x.clone().requires_grad_(True)
        y = SoftPlus.apply(xg)
        expect_close(y, torch.nn.functional.softplus(x), f"SoftPlus.apply(x) for {name}", rtol=1e-9, atol=1e-12,
                     mistakes={"computed log(1 + exp(x)) directly, which overflows to inf for large x":
                               torch.log1p(torch.exp(x))})
        _finite(y, x, f"SoftPlus.apply(x) for {name}", "exp(x) overflows; use max(x, 0) + log1p(exp(-|x|))")
        if y.grad_fn is None:
            raise Wrong(f"SoftPlus.apply(x) for {name} is not connected to x: return a tensor computed in forward")
        v = torch.randn(x.shape, generator=g, dtype=torch.float64)
        (got,) = torch.autograd.grad(y, xg, grad_outputs=v)
        _finite(got, x, f"the gradient for {name}",
                "exp(x) / (1 + exp(x)) is inf / inf for large x; torch.sigmoid(x) stays finite")
        expect_close(got, v * torch.sigmoid(x), f"the gradient for {name} (incoming gradient v)", rtol=1e-9,
                     atol=1e-12, mistakes={
                         "backward ignores grad_output: it must return grad_output times the derivative":
                             torch.sigmoid(x),
                         "backward returns grad_output times softplus(x), not times its derivative sigmoid(x)":
                             v * torch.nn.functional.softplus(x),
                         "backward uses sigmoid(−x) = 1 / (1 + exp(x)) instead of sigmoid(x)": v * torch.sigmoid(-x),
                     })
    return ("values equal F.softplus and gradients equal grad_output · sigmoid(x) on three float64 inputs "
            "(|x| up to 800)")


LayerBackward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                         tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@checks("2.3")
def tanh_layer_gradients(tanh_layer_backward: LayerBackward) -> str:
    g = torch.Generator().manual_seed(24)
    for n, d, m in ((4, 3, 5), (1, 2, 2), (6, 4, 1)):
        X, W, b, grad_Y = (torch.randn(shape, generator=g, dtype=torch.float64)
                           for shape in ((n, d), (d, m), (m,), (n, m)))
        name = f"X {n} × {d}, W {d} × {m}"
        with torch.no_grad():
            got = tanh_layer_backward(X.clone(), W.clone(), b.clone(), grad_Y.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Wrong(f"return a tuple (grad_X, grad_W, grad_b), got {describe(got)}")
        leaves = [t.clone().requires_grad_(True) for t in (X, W, b)]
        Y = torch.tanh(leaves[0] @ leaves[1] + leaves[2])
        expected = torch.autograd.grad(Y, leaves, grad_outputs=grad_Y)
        Z = X @ W + b
        dZ = grad_Y * (1 - torch.tanh(Z) ** 2)
        without_tanh = "left out the derivative of tanh, (1 − Y²)"
        pre_activation = "used (1 − Z²) with the pre-activation Z = XW + b instead of (1 − tanh(Z)²)"
        dZ_pre = grad_Y * (1 - Z ** 2)
        mistakes = [
            {without_tanh: grad_Y @ W.T, pre_activation: dZ_pre @ W.T},
            {without_tanh: X.T @ grad_Y, pre_activation: X.T @ dZ_pre},
            {without_tanh: grad_Y.sum(0), pre_activation: dZ_pre.sum(0),
             "averaged the bias gradient over the batch instead of summing it": dZ.mean(0),
             "did not sum the bias gradient over the batch (b is added to every row)": dZ},
        ]
        for what, value, right, wrong in zip(("grad_X", "grad_W", "grad_b"), got, expected, mistakes, strict=True):
            expect_close(value, right, f"{what} for {name}", rtol=1e-9, atol=1e-12, mistakes=wrong)
    return "grad_X, grad_W and grad_b equal autograd's on three float64 layers (a batch of one included)"
