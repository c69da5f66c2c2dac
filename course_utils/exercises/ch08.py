"""Checks for chapter 08's exercises (numerical stability and initialization)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close


def _uniform(shape: tuple[int, ...], bound: float, seed: int) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound, generator=torch.Generator().manual_seed(seed))


@checks("8.1")
def kaiming_uniform(kaiming_uniform_: Callable[..., torch.Tensor]) -> str:
    cases = [  # shape, nonlinearity, its negative slope, mode
        ((60, 32), "relu", 0.0, "fan_in"),
        ((16, 8, 3, 3), "tanh", 0.0, "fan_out"),
        ((5, 3, 1, 7), "leaky_relu", 0.2, "fan_in"),
        ((7, 2, 5, 3), "relu", 0.0, "fan_out"),
        ((1, 1), "linear", 0.0, "fan_out"),
    ]
    for n, (shape, nonlinearity, slope, mode) in enumerate(cases):
        seed = 80 + n
        gain = nn.init.calculate_gain(nonlinearity, slope)  # type: ignore[arg-type]
        expected = nn.init.kaiming_uniform_(torch.empty(shape), a=slope, mode=mode,  # type: ignore[arg-type]
                                            nonlinearity=nonlinearity,  # type: ignore[arg-type]
                                            generator=torch.Generator().manual_seed(seed))
        weight = torch.full(shape, float("nan"))
        returned = kaiming_uniform_(weight, gain, mode=mode, generator=torch.Generator().manual_seed(seed))
        what = f"a {shape} weight, gain {gain:.4g}, mode={mode!r}"
        if returned is not weight:
            raise Wrong(f"{what}: return the weight you filled in place (got {describe(returned)})")
        receptive = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        fan, other = (fan_in, fan_out) if mode == "fan_in" else (fan_out, fan_in)
        mistakes = {
            f"used the {'fan-out' if mode == 'fan_in' else 'fan-in'} where mode={mode!r} asks for the "
            f"{'fan-in' if mode == 'fan_in' else 'fan-out'}": _uniform(shape, gain * math.sqrt(3 / other), seed),
            "the bound is gain / sqrt(fan), the standard deviation; a uniform U(-a, a) has standard "
            "deviation a / sqrt(3), so a = gain * sqrt(3 / fan)": _uniform(shape, gain / math.sqrt(fan), seed),
            "the fans leave out the kernel size (k_h * k_w inputs per channel)":
                _uniform(shape, gain * math.sqrt(3 / (shape[1] if mode == "fan_in" else shape[0])), seed),
            "the gain is missing": _uniform(shape, math.sqrt(3 / fan), seed),
        }
        expect_close(weight, expected, what, rtol=1e-6, atol=1e-7, mistakes=mistakes)
    return "equals nn.init.kaiming_uniform_ for 5 weights (dense and convolution, both modes, 4 gains)"


# --- 8.2 ---------------------------------------------------------------------------------------

def _net(layers: list[nn.Module], g: torch.Generator, scale: float = 1.0) -> nn.Sequential:
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.copy_(scale * torch.randn(layer.weight.shape, generator=g))
    return net


def _linear(n_in: int, n_out: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # the initial draw leaves the global RNG as it was
        return nn.Linear(n_in, n_out, bias=False)


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        return nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False)


def _lsuv_reference(net: nn.Sequential, X: torch.Tensor, *, one_pass: bool = False, by_var: bool = False,
                    kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d)) -> nn.Sequential:
    net = copy.deepcopy(net)
    with torch.no_grad():
        outputs = [net[:i + 1](X) for i in range(len(net))] if one_pass else []
        for i, layer in enumerate(net):
            if isinstance(layer, kinds):
                Y = outputs[i] if one_pass else net[:i + 1](X)
                layer.weight /= Y.var() if by_var else Y.std()
    return net


@checks("8.2")
def lsuv(lsuv_: Callable[[nn.Sequential, torch.Tensor], nn.Sequential]) -> str:
    g = torch.Generator().manual_seed(82)
    problems = [
        ("an MLP 10-32-32-4 with ReLU and tanh",
         _net([_linear(10, 32), nn.ReLU(), _linear(32, 32), nn.Tanh(), _linear(32, 4)], g),
         3 * torch.randn(64, 10, generator=g) + 1),
        ("a CNN (conv, ReLU, conv with stride 2, ReLU, flatten, linear)",
         _net([_conv(3, 6, 3), nn.ReLU(), _conv(6, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), _linear(4 * 3 * 3, 5)], g),
         torch.randn(8, 3, 9, 9, generator=g)),
        ("the CNN of a single image (batch of 1) with small weights",
         _net([_conv(2, 5, 3, padding=1), nn.ReLU(), _conv(5, 5, 1), nn.Tanh(), _conv(5, 3, 3)], g, scale=0.01),
         torch.rand(1, 2, 7, 6, generator=g)),
    ]
    for name, net, X in problems:
        X_before, ours = X.clone(), copy.deepcopy(net)
        returned = lsuv_(net, X)
        if returned is not net:
            raise Wrong(f"{name}: return the network you rescaled (got {describe(returned)})")
        if not torch.equal(X, X_before):
            raise Wrong(f"{name}: your function changed the batch X")
        expected = _lsuv_reference(ours, X)
        wrong = {
            "measured every layer's output in one pass before rescaling any: rescale one layer at a time, "
            "measuring each after the layers before it were rescaled": _lsuv_reference(ours, X, one_pass=True),
            "divided by the variance of the output instead of its standard deviation":
                _lsuv_reference(ours, X, by_var=True),
            "left the convolutions out: rescale every nn.Linear and nn.Conv2d":
                _lsuv_reference(ours, X, kinds=(nn.Linear,)),
        }
        for i, layer in enumerate(net):
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                mistakes = {text: other[i].weight for text, other in wrong.items()}
                expect_close(layer.weight, expected[i].weight, f"{name}: the weight of layer {i} "
                             f"({type(layer).__name__})", rtol=1e-4, atol=1e-6, mistakes=mistakes)
        with torch.no_grad():
            for i, layer in enumerate(net):
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    expect_close(net[:i + 1](X).var(), 1.0, f"{name}: the output variance of layer {i}",
                                 rtol=1e-4)
    return "weights equal a reference rescaling on 3 networks (dense, conv, batch of 1); every output has variance 1"


# --- 8.3 ---------------------------------------------------------------------------------------

@checks("8.3")
def log_sigmoid(log_sigmoid: Callable[[torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(83)
    inputs = [
        ("x from -1000 to 1000", torch.tensor([-1000.0, -200.0, -104.0, -90.0, -20.0, -1.0, 0.0,
                                               1e-3, 1.0, 17.0, 20.0, 50.0, 90.0, 1000.0])),
        ("a 3 × 5 tensor of normal values times 30", 30 * torch.randn(3, 5, generator=g)),
        ("a 0-d tensor -150", torch.tensor(-150.0)),
    ]
    for name, x in inputs:
        x = x.clone().requires_grad_(True)
        got = log_sigmoid(x)
        expected = F.logsigmoid(x.detach())
        with torch.no_grad():
            mistakes = {
                "torch.log(torch.sigmoid(x)): sigmoid(x) underflows to 0 (log: -inf) for very negative x "
                "and rounds to 1 (log: 0) for large positive x": torch.log(torch.sigmoid(x)),
                "-log1p(exp(-x)): exp(-x) overflows to inf for very negative x": -torch.log1p(torch.exp(-x)),
                "used max(x, 0) where log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))":
                    torch.clamp(x, min=0) - torch.log1p(torch.exp(-x.abs())),
            }
        expect_close(got, expected, f"log_sigmoid({name})", rtol=1e-5, atol=0.0, mistakes=mistakes)
        if not got.requires_grad:
            raise Wrong(f"log_sigmoid({name}): the result does not depend on x through autograd")
        (grad,) = torch.autograd.grad(got.sum(), x)
        if grad.isnan().any():
            where = ", ".join(f"{v:g}" for v in x.detach()[grad.isnan()].flatten().tolist()[:3])
            raise Wrong(f"the gradient of log_sigmoid({name}) is nan where x = {where}: a branch that overflows "
                        "there is still differentiated (torch.where or a masked assignment computes both branches "
                        "for every x, and their gradients meet as 0 × inf = nan); clamp the input of each branch, "
                        "or use min(x, 0) - log1p(exp(-|x|))")
        smooth = x.detach() != 0  # at the kink of |x| and min(x, 0) autograd picks a subgradient
        expect_close(grad[smooth], torch.sigmoid(-x.detach())[smooth], f"the gradient of log_sigmoid({name})",
                     rtol=1e-5, atol=1e-30)
    return "values (to a relative 1e-5) and gradients equal F.logsigmoid from -1000 to 1000"
