"""Checks for chapter 05's exercises (multilayer perceptrons)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close

Tensor = torch.Tensor


# --- 5.1 GELU and its derivative -------------------------------------------------------------

@checks("5.1")
def gelu_and_derivative(gelu_and_derivative: Callable[[Tensor], tuple[Tensor, Tensor]]) -> str:
    g = torch.Generator().manual_seed(51)
    cases = [
        ("x = -10, -3, -1, -0.5, 0, 0.5, 1, 3, 10",
         torch.tensor([-10.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 10.0], dtype=torch.float64)),
        ("x of shape (3, 4) drawn from N(0, 2²)", 2 * torch.randn(3, 4, generator=g, dtype=torch.float64)),
        ("a single element x = [-1.7]", torch.tensor([-1.7], dtype=torch.float64)),
    ]
    for name, x in cases:
        with torch.no_grad():
            answer = gelu_and_derivative(x.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"return a pair (GELU(x), GELU'(x)), got {describe(answer)}")
        value, derivative = answer
        xg = x.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(F.gelu(xg).sum(), xg)
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
        cdf_no_sqrt2 = 0.5 * (1 + torch.erf(x))
        no_sqrt2 = "Φ(x) = ½(1 + erf(x / √2)): the division by √2 inside erf is missing"
        expect_close(value, F.gelu(x), f"GELU(x) for {name}", rtol=1e-9, atol=1e-12, mistakes={
            no_sqrt2: x * cdf_no_sqrt2,
            "this is the tanh approximation of GELU, not the exact x Φ(x)": F.gelu(x, approximate="tanh"),
        })
        expect_close(derivative, expected, f"GELU'(x) for {name}", rtol=1e-9, atol=1e-12, mistakes={
            no_sqrt2: cdf_no_sqrt2 + x * torch.exp(-x ** 2) / math.sqrt(math.pi),
            "the product rule's second term x φ(x) is missing: d/dx [x Φ(x)] = Φ(x) + x φ(x)": cdf,
            "φ(x) = exp(−x²/2) / √(2π): the normalization 1 / √(2π) is missing": cdf + x * torch.exp(-x ** 2 / 2),
            "the derivative is Φ(x) + x φ(x), not x φ(x) alone": x * pdf,
        })
    return "values equal F.gelu and derivatives equal autograd's on float64 inputs from −10 to 10"


# --- 5.2 from explicit parameters to nn.Sequential -------------------------------------------

def _forward(params: list[tuple[Tensor, Tensor]], X: Tensor, *, transpose: bool = False,
             relu_last: bool = False, relu_between: bool = True) -> Tensor:
    for i, (W, b) in enumerate(params):
        X = X @ (W.T if transpose else W) + b
        if (i < len(params) - 1 and relu_between) or (i == len(params) - 1 and relu_last):
            X = torch.relu(X)
    return X


@checks("5.2")
def to_sequential(to_sequential: Callable[[list[tuple[Tensor, Tensor]]], nn.Module]) -> str:
    g = torch.Generator().manual_seed(52)
    shapes = [("three square 5 × 5 layers", [5, 5, 5, 5]), ("6 → 4 → 3", [6, 4, 3]),
              ("a single layer 3 → 2", [3, 2]), ("4 layers 7 → 5 → 6 → 3 → 2", [7, 5, 6, 3, 2])]
    for name, sizes in shapes:
        params = [(torch.randn(a, b, generator=g), torch.randn(b, generator=g))
                  for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        X = torch.randn(8, sizes[0], generator=g)
        net = to_sequential([(W.clone(), b.clone()) for W, b in params])
        if not isinstance(net, nn.Module):
            raise Wrong(f"{name}: return an nn.Sequential, got {describe(net)}")
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if len(linears) != len(params):
            raise Wrong(f"{name}: the network should have {len(params)} nn.Linear layers, it has {len(linears)}")
        for i, (linear, (W, b)) in enumerate(zip(linears, params, strict=True), start=1):
            if tuple(linear.weight.shape) == tuple(W.shape) and torch.allclose(linear.weight, W):
                raise Wrong(f"{name}: layer {i}'s weight is W{i} itself: nn.Linear stores its weight as "
                            f"(out, in), so copy W{i}.T")
            expect_close(linear.weight, W.T, f"{name}: the weight of layer {i} (it should be W{i}.T)")
            if linear.bias is None or not torch.allclose(linear.bias, b):
                raise Wrong(f"{name}: the bias of layer {i} is not b{i} (did you copy it?)")
        with torch.no_grad():
            got = net(X)
        expect_close(got, _forward(params, X), f"{name}: the outputs", mistakes={
            "a ReLU after the last layer too: the output layer must stay linear": _forward(params, X, relu_last=True),
            "no ReLU between the layers": _forward(params, X, relu_between=False),
        })
    return "layers hold W.T and b, ReLUs between them only, outputs equal the explicit forward pass (1 to 4 layers)"


# --- 5.3 a ReLU network that connects the dots -----------------------------------------------

def _interpolate(xs: Tensor, ys: Tensor, x: Tensor) -> Tensor:
    i = torch.clamp(torch.searchsorted(xs, x.reshape(-1)) - 1, 0, len(xs) - 2)
    t = (x.reshape(-1) - xs[i]) / (xs[i + 1] - xs[i])
    return (ys[i] + t * (ys[i + 1] - ys[i])).reshape(-1, 1)


def _relu_sum(y0: Tensor | float, weights: Tensor, knots: Tensor, x: Tensor) -> Tensor:
    return y0 + (torch.relu(x.reshape(-1, 1) - knots) * weights).sum(dim=1, keepdim=True)


@checks("5.3")
def interpolating_net(interpolating_net: Callable[[Tensor, Tensor], Any]) -> str:
    g = torch.Generator().manual_seed(53)
    cases = [
        ("5 knots", torch.tensor([0.0, 1.0, 1.5, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 2.5, -1.0])),
        ("2 knots (a single segment)", torch.tensor([-1.0, 2.0]), torch.tensor([4.0, -2.0])),
        ("8 knots from -3 to 3", torch.linspace(-3, 3, 8) + 0.1 * torch.rand(8, generator=g),
         torch.randn(8, generator=g)),
    ]
    for name, xs, ys in cases:
        net = interpolating_net(xs.clone(), ys.clone())
        if not isinstance(net, nn.Module):
            raise Wrong(f"{name}: return the nn.Sequential network, got {describe(net)}")
        between = xs[0] + (xs[-1] - xs[0]) * torch.rand(20, generator=g)
        x = torch.cat([xs, between]).reshape(-1, 1)
        with torch.no_grad():
            got = net(x)
        slopes = (ys[1:] - ys[:-1]) / (xs[1:] - xs[:-1])
        changes = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])
        expect_close(got, _interpolate(xs, ys, x), f"the network with {name}, at the knots and between them",
                     atol=1e-4, mistakes={
                         "used each segment's slope s_i as the output weight instead of the change of slope "
                         "s_i − s_(i−1)": _relu_sum(ys[0], slopes, xs[:-1], x),
                         "left out the starting value y_0 (the output layer's bias)":
                             _relu_sum(0.0, changes, xs[:-1], x),
                         "hidden unit i computes ReLU(x + x_i): its bias must be −x_i":
                             _relu_sum(ys[0], changes, -xs[:-1], x),
                     })
    return "passes through every knot and interpolates linearly between them (2, 5 and 8 knots)"
