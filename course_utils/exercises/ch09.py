"""Checks for chapter 09's exercises (layers, parameters, file IO and devices)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape

# --- 9.1 ---------------------------------------------------------------------------------------


class _Custom(nn.Module):
    """A direct parameter, a buffer, a frozen embedding and a recurrent layer."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.register_buffer("counts", torch.zeros(10))
        self.embedding = nn.Embedding(10, 3).requires_grad_(False)
        self.rnn = nn.GRU(3, 5)


def _count_problems() -> list[tuple[str, nn.Module]]:
    shared = nn.Linear(8, 8)
    tied = nn.Sequential(nn.Linear(4, 8).requires_grad_(False), nn.ReLU(), shared, nn.ReLU(),
                         shared, nn.BatchNorm1d(8), nn.Linear(8, 2))
    return [
        ("a Sequential with a frozen first layer, one layer used twice and batch norm", tied),
        ("a module with its own parameter, a buffer, a frozen nn.Embedding and an nn.GRU", _Custom()),
        ("nn.ReLU()", nn.ReLU()),
    ]


@checks("9.1")
def count_parameters(count_parameters: Callable[[nn.Module], Any]) -> str:
    with torch.random.fork_rng(devices=[]):  # the layers' initial draws leave the global RNG as it was
        problems = _count_problems()
    for name, module in problems:
        got = count_parameters(module)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise Wrong(f"{name}: return the pair (trainable, frozen), got {describe(got)}")
        got = tuple(int(v) for v in got)
        params = list(module.parameters())  # each shared tensor once
        every_use = [p for _, p in module.named_parameters(remove_duplicate=False)]
        trainable = sum(p.numel() for p in params if p.requires_grad)
        frozen = sum(p.numel() for p in params if not p.requires_grad)
        mistakes = {
            "counted the frozen parameters (requires_grad=False) as trainable too": (trainable + frozen, frozen),
            "counted parameter tensors, not the values in them (numel())":
                (sum(p.requires_grad for p in params), sum(not p.requires_grad for p in params)),
            "counted state_dict(): it also holds the buffers (batch norm's running statistics) and every use "
            "of a shared layer": (sum(t.numel() for t in module.state_dict().values()) - frozen, frozen),
            "counted a shared layer once per use instead of once":
                (sum(p.numel() for p in every_use if p.requires_grad),
                 sum(p.numel() for p in every_use if not p.requires_grad)),
        }
        expect_equal(got, (trainable, frozen), f"(trainable, frozen) of {name}", mistakes=mistakes)
    return "(trainable, frozen) counts right for tied, frozen, buffered, recurrent and parameter-free modules"


# --- 9.2 ---------------------------------------------------------------------------------------

@checks("9.2")
def standardize(Standardize: Callable[[torch.Tensor, torch.Tensor], nn.Module]) -> str:
    g = torch.Generator().manual_seed(92)
    cases = [
        ("features (7, 5) with statistics of shape (5,)", torch.randn(5, generator=g),
         torch.rand(5, generator=g) + 0.5, 3 * torch.randn(7, 5, generator=g) + 1),
        ("images (2, 3, 4, 4) with statistics of shape (3, 1, 1)", torch.randn(3, 1, 1, generator=g),
         torch.rand(3, 1, 1, generator=g) + 0.2, torch.rand(2, 3, 4, 4, generator=g)),
        ("one example (1, 4) with negative means", -5 * torch.rand(4, generator=g),
         torch.tensor([0.1, 1.0, 2.0, 30.0]), torch.randn(1, 4, generator=g)),
    ]
    for name, mean, std, X in cases:
        with torch.random.fork_rng(devices=[]):  # whatever the module draws, the global RNG is left as it was
            layer = Standardize(mean, std)
        expected = (X - mean) / std
        mistakes = {"divided by std before subtracting the mean": X / std - mean,
                    "multiplied by std instead of dividing by it": (X - mean) * std}
        expect_close(layer(X), expected, f"{name}: the output", mistakes=mistakes)
        params = [key for key, _ in layer.named_parameters()]
        if params:
            raise Wrong(f"{name}: {', '.join(params)} {'is a parameter' if len(params) == 1 else 'are parameters'}, "
                        f"which an optimizer would train; register the statistics as buffers")
        for key in ("mean", "std"):
            if key not in layer.state_dict():
                raise Wrong(f"{name}: {key} is not in state_dict() (keys: {list(layer.state_dict())}), so it would "
                            f"not be saved; store it with register_buffer({key!r}, ...)")
        fresh = Standardize(torch.zeros_like(mean), torch.ones_like(std))
        fresh.load_state_dict(layer.state_dict())
        expect_close(fresh(X), expected, f"{name}: a module built with mean 0 and std 1, after load_state_dict")
        layer.to(torch.float64)
        for key in ("mean", "std"):
            dtype = getattr(layer, key).dtype
            if dtype != torch.float64:
                raise Wrong(f"{name}: after .to(torch.float64) {key} is still {dtype}")
    return ("outputs right for dense, image and single-example inputs; mean and std are saved, loaded and "
            "converted, not trained")


# --- 9.3 ---------------------------------------------------------------------------------------

@checks("9.3")
def low_rank_linear(LowRankLinear: Callable[[int, int, int], nn.Module]) -> str:
    g = torch.Generator().manual_seed(93)
    for in_f, out_f, rank, x_shape in [(6, 4, 2, (5, 6)), (3, 7, 3, (2, 4, 3)), (20, 20, 1, (1, 20))]:
        name = f"LowRankLinear({in_f}, {out_f}, rank={rank})"
        with torch.random.fork_rng(devices=[]):
            layer = LowRankLinear(in_f, out_f, rank)
        params = dict(layer.named_parameters())
        for key, shape in [("U", (out_f, rank)), ("V", (rank, in_f)), ("bias", (out_f,))]:
            if key not in params:
                if isinstance(getattr(layer, key, None), torch.Tensor):
                    raise Wrong(f"{name}: {key} is a plain tensor, not a registered parameter (an optimizer "
                                f"would never see it): wrap it in nn.Parameter")
                raise Wrong(f"{name} has no parameter named {key!r} (its parameters: {sorted(params)})")
            expect_shape(params[key], shape, f"{name}: {key}")
        if set(params) != {"U", "V", "bias"}:
            raise Wrong(f"{name} should have exactly the parameters U, V and bias, got {sorted(params)}")
        U, V, bias = params["U"], params["V"], params["bias"]
        if not U.detach().any() and not V.detach().any():
            raise Wrong(f"{name}: U and V both start at zero, so each one's gradient (which goes through the "
                        f"other) is zero and neither ever trains; initialize them randomly")
        with torch.no_grad():
            U.copy_(torch.randn(U.shape, generator=g))
            V.copy_(torch.randn(V.shape, generator=g))
            bias.copy_(torch.randn(bias.shape, generator=g))
        X = torch.randn(x_shape, generator=g, requires_grad=True)
        got = layer(X)
        U0, V0, b0 = (t.detach().clone().requires_grad_(True) for t in (U, V, bias))
        X0 = X.detach().clone().requires_grad_(True)
        expected = F.linear(X0, U0 @ V0, b0)
        with torch.no_grad():
            mistakes = {"the bias is missing": F.linear(X0, U0 @ V0),
                        "the weight is (U V) transposed: X (U V) needs in_features == out_features":
                            X0 @ (U0 @ V0) + b0 if in_f == out_f else None}
        expect_close(got, expected, f"{name}: the output for an input of shape {x_shape}",
                     mistakes={k: v for k, v in mistakes.items() if v is not None})
        upstream = torch.randn(expected.shape, generator=g)
        ours = torch.autograd.grad((expected * upstream).sum(), (U0, V0, b0, X0))
        theirs = torch.autograd.grad((got * upstream).sum(), (U, V, bias, X), allow_unused=True)
        for label, mine, yours in zip(("U", "V", "bias", "the input"), ours, theirs, strict=True):
            if yours is None:
                raise Wrong(f"{name}: the output does not depend on {label}")
            expect_close(yours, mine, f"{name}: the gradient with respect to {label}")
    return "U, V and bias registered with the right shapes; outputs and gradients equal F.linear(X, U @ V, bias)"


# --- 9.4 ---------------------------------------------------------------------------------------

def _small_net(seed: int) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the initial draws leave the global RNG as it was
        net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / 2)
    return net


def _step(net: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(net(X), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@checks("9.4")
def checkpoint(save_checkpoint: Callable[..., Any], load_checkpoint: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(94)
    batches = [(torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    net = _small_net(940)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for X, y in batches[:3]:
        _step(net, optimizer, X, y)
    saved_state = copy.deepcopy(net.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        save_checkpoint(path, net, optimizer, 7)
        if not path.exists():
            raise Wrong(f"save_checkpoint(path, ...) wrote no file at path ({path.name})")
        try:
            torch.load(path, weights_only=True)
        except Exception as error:  # any refusal: the file holds more than tensors and plain data
            lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
            reason = next((line for line in lines if "Unsupported global" in line), lines[0])
            raise Wrong(f"torch.load(path, weights_only=True) refuses your file ({reason[:100]}): save state_dicts "
                        f"and plain numbers, not the module or optimizer objects") from None
        restored = _small_net(941)
        fresh_state = copy.deepcopy(restored.state_dict())
        restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.05)
        epoch = load_checkpoint(path, restored, restored_optimizer)
    for key, value in saved_state.items():
        expect_close(restored.state_dict()[key], value, f"the restored network's {key!r}",
                     mistakes={"the network's state was not restored (net.load_state_dict)": fresh_state[key]})
    expect_equal(epoch, 7, "the epoch load_checkpoint returned")
    without_optimizer = _small_net(941)
    without_optimizer.load_state_dict(saved_state)
    X, y = batches[3]
    _step(without_optimizer, torch.optim.Adam(without_optimizer.parameters(), lr=0.05), X, y)
    _step(net, optimizer, X, y)
    _step(restored, restored_optimizer, X, y)
    for (key, mine), yours, other in zip(net.state_dict().items(), restored.state_dict().values(),
                                         without_optimizer.state_dict().values(), strict=True):
        expect_close(yours, mine, f"after one more step, {key!r} of the restored run",
                     mistakes={"the optimizer's state (Adam's running averages and step count) was not restored "
                               "(optimizer.load_state_dict)": other})
    return "the restored run takes the uninterrupted run's next Adam step; the file loads with weights_only=True"
