"""Checks for chapter 11's exercises (modern convolutional networks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_equal

# --- 11.1 --------------------------------------------------------------------------------------

Arch = Sequence[tuple[int, int]]


def _vgg(arch: Arch, in_channels: int, image_size: int, hidden: int, num_classes: int) -> tuple[int, int]:
    """(conv, dense) parameter counts of the chapter's VGG, from modules on the meta device."""
    convs: list[nn.Module] = []
    c, size = in_channels, image_size
    for num_convs, out_channels in arch:
        for _ in range(num_convs):
            convs += [nn.Conv2d(c, out_channels, 3, padding=1, device="meta"), nn.ReLU()]
            c, size = out_channels, (size + 2 * 1 - 3) // 1 + 1
        convs.append(nn.MaxPool2d(2, stride=2))
        size = (size - 2) // 2 + 1
    body = nn.Sequential(*convs, nn.Flatten())
    flat = c * size * size
    head = nn.Sequential(nn.Linear(flat, hidden, device="meta"), nn.Linear(hidden, hidden, device="meta"),
                         nn.Linear(hidden, num_classes, device="meta"))
    return sum(p.numel() for p in body.parameters()), sum(p.numel() for p in head.parameters())


def _vgg_mistake(arch: Arch, in_channels: int, image_size: int, hidden: int, num_classes: int, *,
                 no_bias: bool = False, late_channels: bool = False, no_pool: bool = False) -> tuple[int, int]:
    conv, c, size = 0, in_channels, image_size
    for num_convs, out_channels in arch:
        for _ in range(num_convs):
            conv += out_channels * (c * 9 + (0 if no_bias else 1))
            if not late_channels:
                c = out_channels
        c = out_channels
        size = size if no_pool else size // 2
    flat = c * size * size
    return conv, hidden * (flat + 1) + hidden * (hidden + 1) + num_classes * (hidden + 1)


@checks("11.1")
def vgg_params(vgg_params: Callable[..., Any]) -> str:
    vgg11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    cases = [
        ("VGG-11 on 224 × 224 RGB images, 1000 classes", (vgg11, 3, 224, 4096, 1000)),
        ("the chapter's small VGG-11 (widths / 8) on 32 × 32 grey images", (
            tuple((n, c // 8) for n, c in vgg11), 1, 32, 512, 10)),
        ("arch ((2, 8), (1, 16)) on 13 × 13 images with 2 channels, hidden 20, 5 classes",
         (((2, 8), (1, 16)), 2, 13, 20, 5)),
    ]
    for name, args in cases:
        expected = _vgg(*args)
        if name.startswith("VGG-11") and sum(expected) != 132_863_336:  # the published count
            raise RuntimeError(f"the check's VGG-11 has {sum(expected):,} parameters")
        got = vgg_params(*args)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise Wrong(f"{name}: return the pair (conv, dense), got {describe(got)}")
        got = tuple(int(v) for v in got)
        mistakes = {
            "the convolutions' biases are missing (c_o (c_i k_h k_w + 1) each)": _vgg_mistake(*args, no_bias=True),
            "the later convolutions of a block read the block's input channels; only the first does, the others "
            "read out_channels": _vgg_mistake(*args, late_channels=True),
            "the flatten size ignores the max-pool that halves the height and width after every block":
                _vgg_mistake(*args, no_pool=True),
        }
        expect_equal(got, expected, f"(conv, dense) for {name}", mistakes=mistakes)
    return "(conv, dense) equal the modules' counts for 3 VGGs, VGG-11's 132,863,336 included"


# --- 11.2 --------------------------------------------------------------------------------------

class _Parallel(nn.Module):
    """Two nested paths over the same input, concatenated (like an Inception block)."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 6, 1))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.left(X), self.right(X)), dim=1)


def _macs(net: nn.Module, shape: tuple[int, ...], *, whole_batch: bool = False, no_groups: bool = False,
          top_level: bool = False, convs_only: bool = False) -> int:
    total = 0

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            groups = 1 if no_groups else module.groups
            total += output.numel() * (module.in_channels // groups) * k_h * k_w
        elif isinstance(module, nn.Linear) and not convs_only:
            total += output.numel() * module.in_features

    modules = net.children() if top_level else net.modules()
    handles = [m.register_forward_hook(hook) for m in modules if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(shape))
    for handle in handles:
        handle.remove()
    return total if whole_batch else total // shape[0]


@checks("11.2")
def count_macs(count_macs: Callable[[nn.Module, tuple[int, ...]], Any]) -> str:
    with torch.random.fork_rng(devices=[]):  # the layers' initial draws leave the global RNG as it was
        lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                              nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
        branchy = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), _Parallel(),
                                nn.Conv2d(10, 12, (3, 1), stride=(1, 2)), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(12, 5))
        mlp = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    nets = [("LeNet on a batch of 3 images of 1 × 28 × 28", lenet, (3, 1, 28, 28)),
            ("a CNN with a strided convolution and nested parallel paths (one of them grouped), on a batch of 2 "
             "images of 3 × 17 × 15", branchy, (2, 3, 17, 15)),
            ("an MLP 20-64-3 on one example", mlp, (1, 20))]
    for name, net, shape in nets:
        got = count_macs(net, shape)
        left = [type(m).__name__ for m in net.modules() if m._forward_hooks]
        if left:
            raise Wrong(f"{name}: forward hooks are still registered on {', '.join(left)}; remove them "
                        f"(handle.remove()) or every later forward pass will run them too")
        expected = _macs(net, shape)
        if name.startswith("LeNet") and expected != 416_520:  # 117,600 + 240,000 + 58,920
            raise RuntimeError(f"the check counts {expected:,} MACs for LeNet")
        mistakes = {
            "counted the whole batch; divide by the batch size for the count per example":
                _macs(net, shape, whole_batch=True),
            "left out the groups: a grouped convolution sees in_channels / groups channels per output":
                _macs(net, shape, no_groups=True),
            "counted only the top-level layers (net.children()); net.modules() also visits the nested ones":
                _macs(net, shape, top_level=True),
            "counted only the convolutions; the dense layers count too": _macs(net, shape, convs_only=True),
        }
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        expect_equal(got, expected, f"the multiply-adds per example of {name}", mistakes=mistakes)
    return "MACs per example right for LeNet (416,520), a grouped and nested CNN and an MLP; no hooks left behind"


# --- 11.3 --------------------------------------------------------------------------------------

@checks("11.3")
def concat_pool(concat_pool: Callable[[torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(113)
    for shape in [(4, 3, 5, 6), (2, 5, 1, 1), (1, 7, 3, 2)]:
        X = torch.randn(shape, generator=g) - 1  # mostly negative: a maximum is not a ReLU'd maximum
        avg, top = F.adaptive_avg_pool2d(X, 1).flatten(1), F.adaptive_max_pool2d(X, 1).flatten(1)
        mistakes = {"the maxima came first; the averages go first": torch.cat((top, avg), dim=1),
                    "the averages and maxima are interleaved (stacked, then flattened); concatenate them along "
                    "the channel axis": torch.stack((avg, top), dim=2).flatten(1),
                    "summed over the positions instead of averaging":
                        torch.cat((X.sum(dim=(2, 3)), top), dim=1)}
        expect_close(concat_pool(X), torch.cat((avg, top), dim=1), f"concat_pool of a {shape} batch",
                     mistakes=mistakes)
    return "equals [adaptive_avg_pool2d, adaptive_max_pool2d] on 3 batches (negative values, 1 × 1 maps, N = 1)"
