"""Checks for chapter 13's exercises (ResNet and DenseNet)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_shape

# --- 13.1 --------------------------------------------------------------------------------------


def _bn(X: torch.Tensor, bn: Any) -> torch.Tensor:
    return F.batch_norm(X, None, None, bn.weight, bn.bias, training=True, eps=1e-5)


def _is_identity(module: Any) -> bool:
    """nn.Identity, or an empty nn.Sequential (a common way to write an identity shortcut)."""
    return isinstance(module, nn.Identity) or (isinstance(module, nn.Sequential) and len(module) == 0)


def _bottleneck_scratch(blk: Any, X: torch.Tensor, stride: int, *, relu_branch: bool = False) -> torch.Tensor:
    """The bottleneck block in training mode, from the block's own weights with functional operations."""
    with torch.no_grad():
        Y = F.relu(_bn(F.conv2d(X, blk.conv1.weight), blk.bn1))
        Y = F.relu(_bn(F.conv2d(Y, blk.conv2.weight, stride=stride, padding=1), blk.bn2))
        Y = _bn(F.conv2d(Y, blk.conv3.weight), blk.bn3)
        if relu_branch:
            Y = F.relu(Y)
        if _is_identity(blk.shortcut):
            S = X
        else:
            conv, bn = blk.shortcut
            S = _bn(F.conv2d(X, conv.weight, stride=stride), bn)
        return F.relu(Y + S)


@checks("13.1")
def bottleneck(Bottleneck: Callable[..., nn.Module]) -> str:
    g = torch.Generator().manual_seed(131)
    for c_in, mid, s, x_shape in [(64, 16, 1, (2, 64, 6, 6)), (32, 16, 1, (3, 32, 5, 5)), (64, 8, 2, (2, 64, 7, 7))]:
        name, c_out = f"Bottleneck({c_in}, {mid}, strides={s})", 4 * mid
        with torch.random.fork_rng(devices=[]):  # its initial draws leave the global RNG as it was
            blk = Bottleneck(c_in, mid, strides=s)
        for attr, kind in [("conv1", nn.Conv2d), ("bn1", nn.BatchNorm2d), ("conv2", nn.Conv2d),
                           ("bn2", nn.BatchNorm2d), ("conv3", nn.Conv2d), ("bn3", nn.BatchNorm2d)]:
            if not isinstance(getattr(blk, attr, None), kind):
                raise Wrong(f"{name}: {attr} should be an nn.{kind.__name__}, got {describe(getattr(blk, attr, None))}")
        for attr, shape in [("conv1", (mid, c_in, 1, 1)), ("conv2", (mid, mid, 3, 3)), ("conv3", (c_out, mid, 1, 1))]:
            expect_shape(getattr(blk, attr).weight, shape, f"{name}: {attr}.weight")
        if blk.conv1.stride != (1, 1) or blk.conv2.stride != (s, s):
            raise Wrong(f"{name}: conv1 has stride {blk.conv1.stride} and conv2 {blk.conv2.stride}; the stride belongs "
                        f"on the 3 × 3 convolution (conv2), the 1 × 1 convolutions keep stride 1")
        convs = [m for m in blk.modules() if isinstance(m, nn.Conv2d)]
        if any(m.bias is not None for m in convs):
            raise Wrong(f"{name}: every convolution is followed by batch norm, which removes a bias: use bias=False")
        needs_projection = s != 1 or c_in != c_out
        shortcut = getattr(blk, "shortcut", None)
        if needs_projection and (_is_identity(shortcut) or shortcut is None):
            why = f"stride {s}" if s != 1 else f"{c_in} input channels against {c_out} output channels"
            raise Wrong(f"{name}: with {why} the shortcut needs a projection: a 1 × 1 convolution with stride {s} "
                        f"and batch norm")
        if not needs_projection and not _is_identity(shortcut):
            raise Wrong(f"{name}: input and output have the same shape, so the shortcut is the identity (nn.Identity)")
        if needs_projection:
            if not (isinstance(shortcut, nn.Sequential) and len(shortcut) == 2 and isinstance(shortcut[0], nn.Conv2d)
                    and isinstance(shortcut[1], nn.BatchNorm2d)):
                raise Wrong(f"{name}: the projection shortcut should be nn.Sequential(nn.Conv2d, nn.BatchNorm2d), got "
                            f"{describe(shortcut)}")
            expect_shape(shortcut[0].weight, (c_out, c_in, 1, 1), f"{name}: the shortcut's convolution weight")
            if shortcut[0].stride != (s, s):
                raise Wrong(f"{name}: the shortcut's convolution has stride {shortcut[0].stride}, expected ({s}, {s})")
        count = mid * c_in + 9 * mid * mid + c_out * mid + 2 * (2 * mid + c_out) + (
            c_out * c_in + 2 * c_out if needs_projection else 0)
        got_count = sum(p.numel() for p in blk.parameters())
        if got_count != count:
            raise Wrong(f"{name} has {got_count:,} parameters, expected {count:,}")
        with torch.no_grad():
            for p in blk.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(max(1, p[0].numel())) + (p.dim() == 1))
        blk.train()
        X = torch.randn(x_shape, generator=g)
        expected = _bottleneck_scratch(blk, X, s)
        mistakes = {"applied a ReLU to the branch before adding the shortcut; the ReLU comes after the sum":
                    _bottleneck_scratch(blk, X, s, relu_branch=True)}
        expect_close(blk(X), expected, f"{name}: the output for an input of shape {x_shape}", mistakes=mistakes)
    return "layers, strides, shortcuts, parameter counts and outputs right for 3 blocks (identity, 1 × 1, strided)"


# --- 13.2 --------------------------------------------------------------------------------------

class _Head(nn.Module):
    """A head without global pooling: a linear layer over the flattened maps."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels * size * size, classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.fc(X.flatten(1))


def _cam_nets(g: torch.Generator) -> list[tuple[str, nn.Module, str, torch.Tensor, torch.Tensor]]:
    with torch.random.fork_rng(devices=[]):
        pooled = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
        flat = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), _Head(4, 4, 3))
    for net in (pooled, flat):
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    fan_in = module.weight[0].numel()
                    module.weight.copy_(torch.randn(module.weight.shape, generator=g) / math.sqrt(fan_in))
                    if module.bias is not None:
                        module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))
                elif isinstance(module, nn.BatchNorm2d):  # statistics far from those of the batches below
                    assert module.running_mean is not None and module.running_var is not None
                    module.running_mean.copy_(torch.randn(module.num_features, generator=g))
                    module.running_var.copy_(torch.rand(module.num_features, generator=g) + 2)
        net.train()
    return [
        ("a CNN with global average pooling, maps of its last block, 3 images", pooled, "3",
         torch.randn(3, 3, 8, 8, generator=g), torch.tensor([4, 0, 2])),
        ("the same CNN on a single image", pooled, "3", torch.randn(1, 3, 6, 6, generator=g), torch.tensor([1])),
        ("a CNN whose head flattens its maps (no global pooling), 2 images", flat, "2",
         torch.randn(2, 2, 6, 6, generator=g), torch.tensor([2, 2])),
    ]


def _grad_cam(net: nn.Module, name: str, X: torch.Tensor, target: torch.Tensor, *, train: bool = False,
              relu: bool = True, all_classes: bool = False, channel_weights: bool = False) -> torch.Tensor:
    net = copy.deepcopy(net).train(train)
    store: dict[str, torch.Tensor] = {}
    dict(net.named_modules())[name].register_forward_hook(lambda m, i, output: store.update(maps=output))
    logits = net(X)
    scores = logits if all_classes else logits[torch.arange(len(X)), target]
    (grads,) = torch.autograd.grad(scores.sum(), store["maps"])
    weights = grads.mean(dim=1, keepdim=True) if channel_weights else grads.mean(dim=(2, 3), keepdim=True)
    cam = (weights * store["maps"]).sum(dim=1)
    return (F.relu(cam) if relu else cam).detach()


@checks("13.2")
def grad_cam(grad_cam: Callable[[nn.Module, nn.Module, torch.Tensor, torch.Tensor], Any]) -> str:
    g = torch.Generator().manual_seed(132)
    for what, net, layer_name, X, target in _cam_nets(g):
        net.train()
        expected = _grad_cam(net, layer_name, X, target)
        mistakes = {
            "computed in training mode: batch norm used the batch's statistics; call net.eval() first":
                _grad_cam(net, layer_name, X, target, train=True),
            "the ReLU is missing: Grad-CAM keeps the positive part of the weighted sum":
                _grad_cam(net, layer_name, X, target, relu=False),
            "took the gradient of the sum of all class scores; each map needs the score of its target class":
                _grad_cam(net, layer_name, X, target, all_classes=True),
            "averaged the gradients over the channels; each channel's weight is its gradient averaged over the "
            "positions": _grad_cam(net, layer_name, X, target, channel_weights=True),
        }
        got = grad_cam(net, dict(net.named_modules())[layer_name], X, target)
        left = [type(m).__name__ for m in net.modules() if m._forward_hooks]
        if left:
            raise Wrong(f"{what}: a forward hook is still registered on {', '.join(left)}; remove it "
                        f"(handle.remove()), or every later forward pass runs it")
        expect_close(got, expected, f"the Grad-CAM maps of {what}", rtol=1e-4, atol=1e-5, mistakes=mistakes)
    return "maps equal a reference Grad-CAM (evaluation mode) on 3 inputs, with and without global pooling"


# --- 13.3 --------------------------------------------------------------------------------------

@checks("13.3")
def drop_path(drop_path: Callable[..., torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(133)
    branch = torch.rand(4000, 3, 2, 2, generator=g) + 0.5
    before = branch.clone()

    def call(p: float, training: bool, seed: int, x: torch.Tensor = branch) -> torch.Tensor:
        out = drop_path(x, p, training, generator=torch.Generator().manual_seed(seed))
        if not torch.equal(branch, before):
            raise Wrong("drop_path changed the branch in place; return a new tensor (the branch may be needed for "
                        "the backward pass)")
        return expect_shape(out, tuple(x.shape), f"drop_path(branch of shape {tuple(x.shape)})")

    if not torch.equal(call(0.3, False, 1), branch):
        raise Wrong("in evaluation mode (training=False) drop_path must return the branch unchanged: at test time "
                    "every block is used")
    if not torch.equal(call(0.0, True, 1), branch):
        raise Wrong("with p = 0 drop_path must return the branch unchanged")
    p = 0.3
    out = call(p, True, 2)
    flat_out, flat_in = out.reshape(len(out), -1), branch.reshape(len(branch), -1)
    zero = flat_out == 0
    partial = (zero.any(dim=1) & ~zero.all(dim=1)).nonzero()
    if len(partial):
        i = int(partial[0])
        raise Wrong(f"example {i} is partly zeroed ({int(zero[i].sum())} of {zero.shape[1]} values): stochastic depth "
                    f"drops an example's whole branch, one draw per example (a mask of shape (N, 1, 1, 1))")
    kept = ~zero.all(dim=1)
    ratio = flat_out[kept] / flat_in[kept]
    if torch.allclose(ratio, torch.ones_like(ratio)):
        raise Wrong("the kept examples are not rescaled: divide them by 1 - p, so that the expected output equals "
                    "the branch")
    if torch.allclose(ratio, torch.full_like(ratio, 1 - p)):
        raise Wrong("multiplied the kept examples by 1 - p; divide them by 1 - p")
    expect_close(ratio, torch.full_like(ratio, 1 / (1 - p)), f"kept value / branch value with p = {p}")
    dropped = 1 - kept.double().mean().item()
    if abs(dropped - p) > 4 * math.sqrt(p * (1 - p) / len(branch)):
        raise Wrong(f"with p = {p} drop_path dropped {dropped:.1%} of 4,000 examples; each example should be dropped "
                    f"with probability p" + (" (you kept them with probability p)" if abs(dropped - (1 - p)) < 0.03
                                            else ""))
    if not torch.equal(call(p, True, 2), out):
        raise Wrong("two calls with identically seeded generators gave different results: draw the mask from the "
                    "generator passed in")
    single = call(0.5, True, 3, branch[:1])
    if not (torch.equal(single, torch.zeros_like(single)) or torch.allclose(single, 2 * branch[:1])):
        raise Wrong(f"for one example and p = 0.5 the result should be 0 or twice the branch, got {describe(single)}")
    return f"whole examples dropped ({dropped:.1%} of 4,000 at p = 0.3), the rest scaled by 1 / (1 - p); none in eval"
