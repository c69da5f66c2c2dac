"""Checks for chapter 12's exercises (batch normalization and its relatives)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close

# --- 12.1 --------------------------------------------------------------------------------------


def _group_norm(X: torch.Tensor, G: int, gamma: torch.Tensor, beta: torch.Tensor, eps: float, *,
                over_batch: bool = False, unbiased: bool = False, eps_outside: bool = False,
                interleaved: bool = False) -> torch.Tensor:
    N, C = X.shape[:2]
    if interleaved:  # channel c in group c % G
        groups = X.reshape(N, C // G, G, -1).transpose(1, 2).reshape(N, G, -1)
    else:
        groups = X.reshape(N, G, -1)
    dims = (0, 2) if over_batch else (2,)
    mean = groups.mean(dim=dims, keepdim=True)
    var = groups.var(dim=dims, unbiased=unbiased, keepdim=True)
    normed = (groups - mean) / (var.sqrt() + eps if eps_outside else torch.sqrt(var + eps))
    if interleaved:
        normed = normed.reshape(N, G, C // G, -1).transpose(1, 2)
    shape = (1, C) + (1,) * (X.dim() - 2)
    return gamma.reshape(shape) * normed.reshape(X.shape) + beta.reshape(shape)


@checks("12.1")
def group_norm(group_norm: Callable[..., torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(121)
    near_constant = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)  # float32 would round it away
    near_constant[:, :2] = 5 + 1e-3 * near_constant[:, :2]  # group 0: variance about 1e-6, eps matters
    near_constant[1, 2:] = 7.0  # example 1, group 1: constant, variance 0
    cases = [
        ("images (4, 6, 5, 3) in 2 groups", 3 * torch.randn(4, 6, 5, 3, generator=g) + 1, 2),
        ("one image (1, 4, 3, 3) in 1 group (layer norm)", torch.randn(1, 4, 3, 3, generator=g) - 2, 1),
        ("images (3, 5, 2, 2) in 5 groups (instance norm)", torch.randn(3, 5, 2, 2, generator=g), 5),
        ("a (6, 8) batch of feature vectors in 4 groups", torch.randn(6, 8, generator=g), 4),
        ("images (2, 4, 3, 3) with a near-constant and a constant group, in 2 groups", near_constant, 2),
    ]
    for name, X, G in cases:
        C = X.shape[1]
        gamma = torch.rand(C, generator=g, dtype=X.dtype) + 0.5
        beta = torch.randn(C, generator=g, dtype=X.dtype)
        X_before = X.clone()
        got = group_norm(X, G, gamma, beta)
        if not torch.equal(X, X_before):
            raise Wrong(f"{name}: your function changed its input X in place")
        mistakes = {
            "took the statistics over the whole batch (as batch norm does); each example is normalized on its own":
                _group_norm(X, G, gamma, beta, 1e-5, over_batch=True),
            "used the unbiased variance; the normalization divides by n, not n - 1":
                _group_norm(X, G, gamma, beta, 1e-5, unbiased=True),
            "added eps outside the square root; it goes inside: sqrt(var + eps)":
                _group_norm(X, G, gamma, beta, 1e-5, eps_outside=True),
            "put channel c in group c % G; a group is a run of C / G consecutive channels":
                _group_norm(X, G, gamma, beta, 1e-5, interleaved=True),
        }
        expect_close(got, F.group_norm(X, G, gamma, beta, eps=1e-5), f"group_norm of {name}", rtol=1e-4,
                     atol=1e-5, mistakes=mistakes)
    return "equals F.group_norm with 1, 2, 4 and C groups, on images, vectors, a batch of 1 and constant groups"


# --- 12.2 --------------------------------------------------------------------------------------

def _linear_and_bn(g: torch.Generator, n_in: int, n_out: int, bias: bool, eps: float,
                   var_scale: float) -> tuple[nn.Linear, nn.BatchNorm1d]:
    with torch.random.fork_rng(devices=[]):  # the initial draw leaves the global RNG as it was
        linear = nn.Linear(n_in, n_out, bias=bias)
    bn = nn.BatchNorm1d(n_out, eps=eps)
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n_out, n_in, generator=g))
        if linear.bias is not None:
            linear.bias.copy_(torch.randn(n_out, generator=g))
        bn.weight.copy_(2 * torch.rand(n_out, generator=g) - 0.5)  # some negative scales
        bn.bias.copy_(torch.randn(n_out, generator=g))
        bn.running_mean.copy_(3 * torch.randn(n_out, generator=g))
        bn.running_var.copy_(var_scale * (torch.rand(n_out, generator=g) + 0.2))
    return linear, bn.eval()


def _fold(linear: nn.Linear, bn: nn.BatchNorm1d, *, no_eps: bool = False, no_gamma: bool = False,
          columns: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    running_mean, running_var = bn.running_mean, bn.running_var
    assert running_mean is not None and running_var is not None  # BatchNorm1d tracks them by default
    with torch.no_grad():
        scale = (1 if no_gamma else bn.weight) / torch.sqrt(running_var if no_eps else running_var + bn.eps)
        bias = linear.bias if linear.bias is not None else torch.zeros_like(running_mean)
        weight = linear.weight * (scale[None, :] if columns else scale[:, None])
        return weight, scale * (bias - running_mean) + bn.bias


@checks("12.2")
def fold_bn_linear(fold_bn_linear: Callable[[nn.Linear, nn.BatchNorm1d], Any]) -> str:
    g = torch.Generator().manual_seed(122)
    cases = [  # in, out, bias, eps, scale of the running variances
        ("Linear(6, 6) then BatchNorm1d(6)", 6, 6, True, 1e-5, 1.0),
        ("Linear(5, 3, bias=False) then BatchNorm1d(3, eps=1e-3) with running variances near 1e-3",
         5, 3, False, 1e-3, 1e-3),
        ("Linear(4, 7) then BatchNorm1d(7) with running variances near 100", 4, 7, True, 1e-5, 100.0),
    ]
    for name, n_in, n_out, bias, eps, var_scale in cases:
        linear, bn = _linear_and_bn(g, n_in, n_out, bias, eps, var_scale)
        before = copy.deepcopy((linear.state_dict(), bn.state_dict()))
        with torch.random.fork_rng(devices=[]):  # a new nn.Linear draws its initial weights
            folded = fold_bn_linear(linear, bn)
        if not isinstance(folded, nn.Linear):
            raise Wrong(f"{name}: return an nn.Linear, got {describe(folded)}")
        if folded is linear:
            raise Wrong(f"{name}: you returned the original layer; build a new nn.Linear")
        for module, state in zip((linear, bn), before, strict=True):
            for key, value in state.items():
                if not torch.equal(module.state_dict()[key], value):
                    raise Wrong(f"{name}: your function changed {type(module).__name__}'s {key}; leave the "
                                f"original layers as they were")
        if folded.bias is None:
            raise Wrong(f"{name}: the folded layer needs a bias (batch norm's shift becomes one)")
        X = 2 * torch.randn(9, n_in, generator=g)
        with torch.no_grad():
            expected = bn(linear(X))
            got = folded(X)
            mistakes = {
                "left eps out: the scale is gamma / sqrt(running_var + eps)":
                    F.linear(X, *_fold(linear, bn, no_eps=True)),
                "forgot gamma (bn.weight) in the scale": F.linear(X, *_fold(linear, bn, no_gamma=True)),
            }
            if n_in == n_out:
                mistakes["scaled the columns of the weight (its inputs); batch norm scales each output, a row"] = \
                    F.linear(X, *_fold(linear, bn, columns=True))
        expect_close(got, expected, f"{name}: the folded layer's output", rtol=1e-4, atol=1e-4, mistakes=mistakes)
    return "equals linear + batch norm (eval mode) for 3 layers, with and without bias; the originals are untouched"


# --- 12.3 --------------------------------------------------------------------------------------

class _OnePass:
    """An iterable that can be iterated over once, like a data loader whose batches change each pass."""

    def __init__(self, batches: list[torch.Tensor]) -> None:
        self.batches, self.used = batches, False

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.used:
            raise Wrong("channel_stats went over the batches a second time; take one pass (a loader that "
                        "shuffles or augments would give other batches)")
        self.used = True
        return iter(self.batches)


def _stats_float32(batches: list[torch.Tensor]) -> torch.Tensor:
    count, total, total_sq = 0, torch.zeros(()), torch.zeros(())
    for X in batches:
        count += X.numel() // X.shape[1]
        total = total + X.sum(dim=(0, 2, 3))
        total_sq = total_sq + (X**2).sum(dim=(0, 2, 3))
    mean = total / count
    return torch.stack((mean, (total_sq / count - mean**2).sqrt()))


@checks("12.3")
def channel_stats(channel_stats: Callable[[Any], Any]) -> str:
    g = torch.Generator().manual_seed(123)
    means, stds = torch.tensor([200.0, 120.0, 0.3]), torch.tensor([0.5, 30.0, 0.1])
    colour = [means.reshape(1, 3, 1, 1) + stds.reshape(1, 3, 1, 1) * torch.randn(n, 3, 4, 5, generator=g)
              for n in (4, 4, 2, 1)]
    cases = [
        ("4 batches of 4, 4, 2 and 1 colour images (3 × 4 × 5) with channel means 200, 120, 0.3 and "
         "standard deviations 0.5, 30, 0.1", colour),
        ("a single batch of one grey 3 × 3 image", [torch.rand(1, 1, 3, 3, generator=g)]),
    ]
    for name, batches in cases:
        got = channel_stats(_OnePass(batches))
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise Wrong(f"{name}: return the pair (mean, std), got {describe(got)}")
        C = batches[0].shape[1]
        got_t = torch.stack([torch.as_tensor(v).double().reshape(-1) for v in got]) \
            if all(torch.as_tensor(v).numel() == C for v in got) else None
        if got_t is None:
            raise Wrong(f"{name}: mean and std should each have shape ({C},), one value per channel, got "
                        f"{describe(got[0])} and {describe(got[1])}")
        every = torch.cat(batches).double()
        expected = torch.stack((every.mean(dim=(0, 2, 3)), every.std(dim=(0, 2, 3), correction=0)))
        per_batch = [b.double() for b in batches]
        mistakes = {
            "averaged the batches' own means and standard deviations: a batch of 1 then weighs as much as a batch "
            "of 4, and the spread between batches is lost":
                torch.stack((torch.stack([b.mean(dim=(0, 2, 3)) for b in per_batch]).mean(dim=0),
                             torch.stack([b.std(dim=(0, 2, 3), correction=0) for b in per_batch]).mean(dim=0))),
            "accumulated in float32: E[x²] - E[x]² loses the variance to rounding when the mean is much larger "
            "than the spread; accumulate in float64": _stats_float32(batches).double(),
            "used the unbiased standard deviation; the population one divides by n":
                torch.stack((expected[0], every.std(dim=(0, 2, 3), correction=1))),
        }
        expect_close(got_t, expected, f"(mean, std) of {name}", rtol=1e-5, atol=1e-7,
                     mistakes={k: v for k, v in mistakes.items() if not v.isnan().any()})
    return "(mean, std) per channel equal those of all batches at once, in one pass, for uneven batches"


# --- 12.4 --------------------------------------------------------------------------------------

_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
_KEYS = ("without BN", "with BN")


def _grid_value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return next((lr for lr in _GRID if math.isclose(value, lr, rel_tol=1e-9)), None)


@checks("12.4")
def bn_learning_rate(prediction: Any, measured: Any) -> str:
    if not isinstance(prediction, dict):
        raise Wrong(f"prediction should be a dict {{'without BN': lr, 'with BN': lr}}, got {describe(prediction)}")
    if set(prediction) != set(_KEYS):
        raise Wrong(f"prediction should have exactly the keys 'without BN' and 'with BN', got {sorted(prediction)}")
    for key in _KEYS:
        if _grid_value(prediction[key]) is None:
            raise Wrong(f"prediction[{key!r}] = {prediction[key]!r} is not one of the learning rates tried: "
                        f"{', '.join(f'{lr:g}' for lr in _GRID)}")
    if not (isinstance(measured, dict) and set(measured) == set(_KEYS)
            and all(v is None or _grid_value(v) is not None for v in measured.values())):
        raise Wrong(f"measured should be the dict the experiment computes, got {describe(measured)}")
    guess = {key: _grid_value(prediction[key]) for key in _KEYS}
    found = {key: measured[key] for key in _KEYS}
    def text(lr: float | None) -> str:
        return "none of them" if lr is None else f"{lr:g}"

    shown = "; ".join(f"{key}: predicted {text(guess[key])}, measured {text(found[key])}" for key in _KEYS)
    right = sum(guess[key] == found[key] for key in _KEYS)
    return f"{shown} ({right} of 2 predictions right)"
