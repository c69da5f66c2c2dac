"""Checks for chapter 07's exercises (dropout)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import Wrong, checks, describe, expect_close

Tensor = torch.Tensor


def _module_class(cls: Any, name: str) -> type[nn.Module]:
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise Wrong(f"pass the class {name} (an nn.Module), not {describe(cls)}")
    return cls


def _run(module: nn.Module, X: Tensor, what: str) -> Tensor:
    before = X.clone()
    with torch.no_grad():
        out = module(X)
    if not torch.equal(X, before):
        raise Wrong(f"{what}: the module changed its input in place; return a new tensor")
    if not isinstance(out, Tensor) or out.shape != X.shape:
        raise Wrong(f"{what}: the output should have the input's shape {tuple(X.shape)}, got {describe(out)}")
    return out


def _same_seed(cls: type[nn.Module], p: float, X: Tensor, name: str) -> None:
    a = _run(cls(p, torch.Generator().manual_seed(79)), X, name)
    b = _run(cls(p, torch.Generator().manual_seed(79)), X, name)
    if not torch.equal(a, b):
        raise Wrong(f"{name}: two modules whose generators have the same seed gave different outputs; draw the "
                    "random numbers with generator=self.generator")


# --- 7.1 channel dropout ---------------------------------------------------------------------

@checks("7.1")
def channel_dropout(ChannelDropout: Any) -> str:
    cls = _module_class(ChannelDropout, "ChannelDropout")
    g = torch.Generator().manual_seed(71)
    X = torch.randn(4, 3, 5, generator=g)
    module = cls(0.5, torch.Generator().manual_seed(1))
    if not torch.equal(_run(module.eval(), X, "ChannelDropout(0.5) in eval mode"), X):
        raise Wrong("ChannelDropout(0.5) in eval mode changed its input: evaluation mode must be the identity")
    if not torch.equal(_run(cls(0.0, torch.Generator().manual_seed(2)), X, "ChannelDropout(0)"), X):
        raise Wrong("ChannelDropout(0) in training mode should return the input unchanged")
    if _run(cls(1.0, torch.Generator().manual_seed(3)), X, "ChannelDropout(1)").any():
        raise Wrong("ChannelDropout(1) in training mode should return zeros")

    p, n_rows = 0.2, 400 * 50
    name = f"ChannelDropout({p}) on ones of shape (400, 50, 6)"
    out = _run(cls(p, torch.Generator().manual_seed(4)), torch.ones(400, 50, 6), name)
    if (out != out[..., :1]).any():
        raise Wrong(f"{name}: the entries of one channel differ, so single entries were dropped instead of whole "
                    "channels: draw one random number per (example, channel) and broadcast it")
    dropped = (out[..., 0] == 0).float().mean().item()
    tol = 5 * math.sqrt(p * (1 - p) / n_rows)
    if abs(dropped - (1 - p)) <= tol:
        raise Wrong(f"{name}: {dropped:.3f} of the channels were dropped: p was treated as the probability of "
                    "keeping a channel, not of dropping it")
    if abs(dropped - p) > tol:
        raise Wrong(f"{name}: {dropped:.3f} of the channels were dropped, expected {p} ± {tol:.3f}")
    kept = out[..., 0][out[..., 0] != 0]
    expected = 1 / (1 - p)
    if not torch.allclose(kept, torch.full_like(kept, expected)):
        value = kept[0].item()
        if math.isclose(value, 1.0):
            hint = "the kept channels were not scaled by 1 / (1 − p)"
        elif math.isclose(value, 1 / p, rel_tol=1e-5):
            hint = "the kept channels were scaled by 1 / p instead of 1 / (1 − p)"
        else:
            hint = f"the kept entries should equal 1 / (1 − p) = {expected:g}, got {value:g}"
        raise Wrong(f"{name}: {hint}")

    name = "ChannelDropout(0.5) on a (8, 16, 3, 3) input"
    X4 = torch.randn(8, 16, 3, 3, generator=g)
    out4 = _run(cls(0.5, torch.Generator().manual_seed(5)), X4, name)
    zero = (out4 == 0).flatten(2).all(dim=2)
    scaled = torch.isclose(out4, 2 * X4).flatten(2).all(dim=2)
    if not (zero | scaled).all():
        raise Wrong(f"{name}: each 3 × 3 channel should be either all zeros or the input times 2")
    _same_seed(cls, 0.5, X4, name)
    return "drops whole channels with probability p, scales the rest by 1 / (1 − p), identity in eval mode (3-D, 4-D)"


# --- 7.2 Monte Carlo dropout -----------------------------------------------------------------

class _Dropout(nn.Dropout):
    """nn.Dropout drawing from its own generator: an answer that switches on only the nn.Dropout layers
    (leaving batch norm and the like in evaluation mode) finds it like a real one."""

    def __init__(self, p: float) -> None:
        super().__init__(p)
        self.generator = torch.Generator()

    def forward(self, X: Tensor) -> Tensor:
        if not self.training:
            return X
        return X * (torch.rand(X.shape, generator=self.generator) > self.p) / (1 - self.p)


class _Net(nn.Module):
    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.W1 = nn.Parameter(torch.randn(4, 16, generator=g))
        self.b1 = nn.Parameter(torch.randn(16, generator=g))
        self.W2 = nn.Parameter(torch.randn(16, 3, generator=g) / 2)
        self.b2 = nn.Parameter(torch.randn(3, generator=g))
        self.drop = _Dropout(0.5)

    def forward(self, X: Tensor) -> Tensor:
        return self.drop(torch.relu(X @ self.W1 + self.b1)) @ self.W2 + self.b2


def _samples(net: _Net, X: Tensor, num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
    """Probabilities and logits of num_samples passes in training mode, the generator seeded as the learner's."""
    net.drop.generator.manual_seed(seed)
    mode = net.training
    net.train()
    with torch.no_grad():
        logits = torch.stack([net(X) for _ in range(num_samples)])
    net.train(mode)
    return torch.softmax(logits, dim=2), logits


@checks("7.2")
def mc_dropout_predict(mc_dropout_predict: Callable[[nn.Module, Tensor, int], tuple[Tensor, Tensor]]) -> str:
    g = torch.Generator().manual_seed(72)
    net = _Net(g)
    for name, X, num_samples, mode in (("a batch of 5, 50 samples, net in eval mode", torch.randn(5, 4, generator=g),
                                        50, False),
                                       ("a batch of 1, 2 samples, net in training mode", torch.randn(1, 4, generator=g),
                                        2, True)):
        net.train(mode)
        net.drop.generator.manual_seed(720)
        answer = mc_dropout_predict(net, X.clone(), num_samples)
        if net.training != mode:
            raise Wrong(f"{name}: the function left the network in {'training' if net.training else 'evaluation'} "
                        f"mode; restore the mode it was in (net.train(was_training))")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return a pair (mean, std), got {describe(answer)}")
        mean, std = answer
        if any(isinstance(t, Tensor) and t.requires_grad for t in (mean, std)):
            raise Wrong(f"{name}: the result requires grad, so a graph was built; sample under torch.no_grad()")
        probs, logits = _samples(net, X, num_samples, 720)
        net.eval()
        with torch.no_grad():
            eval_probs = torch.softmax(net(X), dim=1)
        net.train(mode)
        off = "dropout was off (the network in evaluation mode): call net.train() before sampling"
        expect_close(mean, probs.mean(dim=0), f"{name}: the mean probabilities", mistakes={
            off: eval_probs,
            "averaged the logits and took the softmax of the mean: average the probabilities instead":
                torch.softmax(logits.mean(dim=0), dim=1),
        })
        expect_close(std, probs.std(dim=0), f"{name}: the standard deviations", mistakes={
            off: torch.zeros_like(eval_probs),
            "used the population standard deviation (correction 0) instead of torch.std's default":
                probs.std(dim=0, correction=0),
            "took the standard deviation of the logits, not of the probabilities": logits.std(dim=0),
        })
    return "mean and std of the softmax over the dropout samples equal a reference; the net's mode is restored"


# --- 7.3 Gaussian dropout --------------------------------------------------------------------

@checks("7.3")
def gaussian_dropout(GaussianDropout: Any) -> str:
    cls = _module_class(GaussianDropout, "GaussianDropout")
    g = torch.Generator().manual_seed(73)
    X = torch.randn(4, 6, generator=g)
    if not torch.equal(_run(cls(0.5, torch.Generator().manual_seed(1)).eval(), X, "eval mode"), X):
        raise Wrong("GaussianDropout(0.5) in eval mode changed its input: evaluation mode must be the identity")
    n = 1000 * 1000
    for p in (0.2, 0.6):
        name = f"GaussianDropout({p}) on ones of shape (1000, 1000)"
        factors = _run(cls(p, torch.Generator().manual_seed(int(p * 10))), torch.ones(1000, 1000), name).double()
        v = p / (1 - p)
        mean, var = factors.mean().item(), factors.var().item()
        tol_mean, tol_var = 5 * math.sqrt(v / n), 5 * v * math.sqrt(2 / n)
        if abs(mean) <= 5 * math.sqrt(v / n) and abs(mean - 1) > tol_mean:
            raise Wrong(f"{name}: the factors have mean {mean:.4f}, about 0: they must be 1 + σξ, with mean 1")
        if abs(mean - 1) > tol_mean:
            raise Wrong(f"{name}: the factors have mean {mean:.4f}, expected 1 ± {tol_mean:.4f}")
        if abs(var - v) > tol_var:
            if abs(var - v * v) <= 5 * v * v * math.sqrt(2 / n):
                hint = "the standard deviation is p / (1 − p); it should be its square root"
            elif abs(var - p) <= 5 * p * math.sqrt(2 / n):
                hint = "the variance is p; dropout's variance, which it should match, is p / (1 − p)"
            else:
                hint = f"expected p / (1 − p) = {v:.4f} ± {tol_var:.4f}"
            raise Wrong(f"{name}: the factors have variance {var:.4f}: {hint}")
    name = "GaussianDropout(0.5) on an input with zero entries"
    Xz = torch.randn(50, 8, generator=g)
    Xz[:, ::2] = 0
    out = _run(cls(0.5, torch.Generator().manual_seed(6)), Xz, name)
    if out[:, ::2].any():
        raise Wrong(f"{name}: zero activations did not stay zero: the noise was added instead of multiplied")
    _same_seed(cls, 0.5, Xz, name)
    return "factors with mean 1 and variance p / (1 − p) for p = 0.2 and 0.6, multiplicative, identity in eval mode"


# --- 7.4 predict: dropout on the inputs of a linear model ------------------------------------

@checks("7.4")
def input_dropout_shrinkage(prediction: Any, measured: Any) -> str:
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) or not prediction >= 0 \
            or not math.isfinite(prediction):
        raise Wrong(f"your prediction should be a number ≥ 0, got {describe(prediction)}")
    if isinstance(measured, bool) or not isinstance(measured, (int, float)):
        raise Wrong("run the experiment cell unchanged: it passes the measured ratio")
    return (f"you predicted {prediction:g}, measured {measured:.3f}: averaged over the masks, input dropout adds "
            "(λ/2)Σ w_j² x_j² with λ = p / (1 − p) = 1, weight decay on standardized features, which shrinks the "
            "least-squares weights by 1 / (1 + λ) = 1 − p = 0.5")
