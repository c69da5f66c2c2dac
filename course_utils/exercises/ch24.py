"""Checks for chapter 24's exercises (the CIFAR-10 ladder)."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_shape


def _cutmix(X: torch.Tensor, y: torch.Tensor, num_classes: int, perm: torch.Tensor, box: tuple[int, int, int, int],
            *, clip: bool = True, lam_from_sampled_box: bool = False, swap_axes: bool = False,
            inverse_partner: bool = False, lam_swapped: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix with a given box (or one of its known mistakes): (mixed images, mixed one-hot targets)."""
    H, W = X.shape[-2:]
    top, left, bottom, right = box
    if swap_axes:
        top, left, bottom, right = left, top, right, bottom
    if clip:
        top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
    partner = torch.argsort(perm) if inverse_partner else perm
    mixed = X.clone()
    mixed[..., top:bottom, left:right] = X[partner][..., top:bottom, left:right]
    sampled = (box[2] - box[0]) * (box[3] - box[1])
    lam = 1 - (sampled if lam_from_sampled_box else (bottom - top) * (right - left)) / (H * W)
    if lam_swapped:
        lam = 1 - lam
    Y = F.one_hot(y, num_classes).to(X.dtype)
    return mixed, lam * Y + (1 - lam) * Y[perm]


@checks("24.1")
def cutmix(cutmix: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(241)
    cases = [("6 images of 3 × 8 × 10, 10 classes, box rows -2..3, columns 3..8 (crossing the top edge)",
              torch.rand(6, 3, 8, 10, generator=g), torch.randint(0, 10, (6,), generator=g), 10,
              torch.tensor([2, 0, 5, 1, 3, 4]), (-2, 3, 4, 9)),
             ("5 images of 2 × 6 × 4, 3 classes, box rows 2..8, columns 1..2 (crossing the bottom edge)",
              torch.randn(5, 2, 6, 4, generator=g), torch.tensor([0, 2, 2, 1, 0]), 3, torch.tensor([4, 3, 0, 1, 2]),
              (2, 1, 9, 3)),
             ("4 images of 1 × 5 × 5, 4 classes, box rows -3..7, columns -3..7 (past every edge: all pasted)",
              torch.rand(4, 1, 5, 5, generator=g), torch.tensor([3, 1, 0, 1]), 4, torch.tensor([1, 2, 3, 0]),
              (-3, -3, 8, 8)),
             ("one image of 3 × 4 × 4 (perm = [0]), box rows 1..2, columns 0..2", torch.rand(1, 3, 4, 4, generator=g),
              torch.tensor([2]), 5, torch.tensor([0]), (1, 0, 3, 3))]
    for name, X, y, num_classes, perm, box in cases:
        saved = [t.clone() for t in (X, y, perm)]
        answer = cutmix(X, y, num_classes, perm, box)
        if not all(torch.equal(a, b) for a, b in zip(saved, (X, y, perm), strict=True)):
            raise Wrong(f"{name}: your function changed its inputs in place (X must stay as it was; paste into a "
                        "copy)")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return (mixed images, mixed targets), got {describe(answer)}")
        X_mixed, Y_mixed = answer
        expected_X, expected_Y = _cutmix(X, y, num_classes, perm, box)
        expect_close(X_mixed, expected_X, f"the mixed images for {name}", mistakes={
            "the box was not clipped to the image before slicing (a negative start counts from the end in Python "
            "slicing, so the wrong region, or none, was pasted)": _cutmix(X, y, num_classes, perm, box, clip=False)[0],
            "image i got its patch from the wrong partner (the inverse permutation: image perm[i] received image "
            "i's patch, whereas image i must take the patch of image perm[i])":
                _cutmix(X, y, num_classes, perm, box, inverse_partner=True)[0],
            "the box's rows and columns are swapped (box = (top, left, bottom, right): rows top..bottom - 1 along "
            "H, columns along W)": _cutmix(X, y, num_classes, perm, box, swap_axes=True)[0],
        })
        expect_close(Y_mixed, expected_Y, f"the mixed targets for {name}", mistakes={
            "λ was computed from the sampled box's area, before clipping it to the image (1 - λ must be the share "
            "of the image actually pasted)": _cutmix(X, y, num_classes, perm, box, lam_from_sampled_box=True)[1],
            "the label weights are swapped (the pasted share 1 - λ belongs to the partner's label y[perm])":
                _cutmix(X, y, num_classes, perm, box, lam_swapped=True)[1],
            "the targets are not mixed: they must be λ one_hot(y) + (1 - λ) one_hot(y[perm])":
                F.one_hot(y, num_classes).to(X.dtype),
        })
    return "the clipped box pasted from X[perm] into a copy of X, and targets weighted by the pasted area, on four " \
           "batches (boxes past the edges, non-square images, a batch of one)"


def _mixup(X: torch.Tensor, y: torch.Tensor, num_classes: int, lam: float,
           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    Y = F.one_hot(y, num_classes).to(X.dtype)
    return lam * X + (1 - lam) * X[perm], lam * Y + (1 - lam) * Y[perm]


@checks("24.2")
def mixup(mixup: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(242)
    cases = [("6 images of 3 × 4 × 4, 10 classes, λ = 0.7", torch.rand(6, 3, 4, 4, generator=g),
              torch.randint(0, 10, (6,), generator=g), 10, 0.7, torch.randperm(6, generator=g)),
             ("one image, λ = 0.3 (perm = [0])", torch.rand(1, 3, 2, 2, generator=g), torch.tensor([2]), 4, 0.3,
              torch.tensor([0])),
             ("5 rows of 2 features, 3 classes, λ = 0.55", torch.randn(5, 2, generator=g),
              torch.tensor([0, 2, 2, 1, 0]), 3, 0.55, torch.tensor([4, 3, 0, 1, 2]))]
    for name, X, y, num_classes, lam, perm in cases:
        saved = [t.clone() for t in (X, y, perm)]
        answer = mixup(X, y, num_classes, lam, perm)
        if not all(torch.equal(a, b) for a, b in zip(saved, (X, y, perm), strict=True)):
            raise Wrong(f"{name}: your function changed its inputs in place (X must stay as it was; mix into a "
                        "new tensor)")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return (mixed inputs, mixed targets), got {describe(answer)}")
        X_mixed, Y_mixed = answer
        expected_X, expected_Y = _mixup(X, y, num_classes, lam, perm)
        swapped_X, swapped_Y = _mixup(X, y, num_classes, 1 - lam, perm)
        expect_close(X_mixed, expected_X, f"the mixed inputs for {name}", mistakes={
            "λ and 1 - λ are swapped (λ weighs the batch itself, 1 - λ the permuted batch)": swapped_X})
        Y_one_hot = F.one_hot(y, num_classes).to(X.dtype)
        expect_close(Y_mixed, expected_Y, f"the mixed targets for {name}", mistakes={
            "the targets are not mixed: they must be λ one_hot(y) + (1 - λ) one_hot(y[perm])": Y_one_hot,
            "λ and 1 - λ are swapped in the targets": swapped_Y,
        })
    return "λ x + (1 - λ) x[perm] and the same mix of one-hot targets on three batches, the inputs untouched"


def _one_cycle(max_lr: float, total: int, pct_start: float, div: float, final_div: float, *,
               final_is_initial: bool = False, linear: bool = False, late_peak: bool = False,
               final_from_max: bool = False) -> torch.Tensor:
    initial = max_lr / div
    final = initial if final_is_initial else (max_lr if final_from_max else initial) / final_div
    peak = pct_start * total - (0 if late_peak else 1)
    out = []
    for step in range(total):
        if step <= peak:
            start, end, pct = initial, max_lr, step / peak
        else:
            start, end, pct = max_lr, final, (step - peak) / (total - 1 - peak)
        out.append(start + (end - start) * pct if linear else end + (start - end) * (1 + math.cos(math.pi * pct)) / 2)
    return torch.tensor(out, dtype=torch.float64)


def _pytorch_one_cycle(max_lr: float, total: int, pct_start: float, div: float, final_div: float) -> torch.Tensor:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=max_lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start,
                                                   div_factor=div, final_div_factor=final_div)
    rates = []
    with warnings.catch_warnings():  # no optimizer.step() (its first call imports the compiler: seconds)
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for _ in range(total):
            rates.append(optimizer.param_groups[0]["lr"])
            schedule.step()
    return torch.tensor(rates, dtype=torch.float64)


@checks("24.3")
def one_cycle(one_cycle_lrs: Callable[..., Any]) -> str:
    cases = [(0.1, 100, 0.25, 25.0, 1e4), (2e-2, 10, 0.3, 10.0, 100.0), (1.0, 7, 0.5, 25.0, 1e4),
             (0.4, 1000, 0.2, 25.0, 1e4)]
    for max_lr, total, pct_start, div, final_div in cases:
        name = (f"max_lr={max_lr:g}, total_steps={total}, pct_start={pct_start:g}, div_factor={div:g}, "
                f"final_div_factor={final_div:g}")
        got = one_cycle_lrs(max_lr, total, pct_start=pct_start, div_factor=div, final_div_factor=final_div)
        try:
            got = torch.as_tensor(got, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise Wrong(f"{name}: return a list of {total} learning rates, got {describe(got)}") from None
        got = expect_shape(got, (total,), f"the learning rates for {name}")
        args = (max_lr, total, pct_start, div, final_div)
        expect_close(got, _pytorch_one_cycle(*args), f"the learning rates for {name}", rtol=1e-6, atol=1e-9,
                     mistakes={
                         "the schedule ends at max_lr / div_factor, where it started; it ends lower, at "
                         "max_lr / (div_factor · final_div_factor)": _one_cycle(*args, final_is_initial=True),
                         "the final rate is max_lr / final_div_factor; it is the initial rate max_lr / div_factor "
                         "divided by final_div_factor": _one_cycle(*args, final_from_max=True),
                         "straight lines instead of half cosines between the rates": _one_cycle(*args, linear=True),
                         "the peak comes one step late: PyTorch reaches max_lr at step pct_start · total_steps - 1":
                             _one_cycle(*args, late_peak=True),
                     })
    return "the rate of every step equals torch.optim.lr_scheduler.OneCycleLR's on four schedules (7 to 1,000 steps)"


def _image_batches(generator: torch.Generator) -> list[torch.Tensor]:
    shift = torch.tensor([0, 60, 120])[None, :, None, None]
    batches = [(torch.randint(0, 120, (n, 3, 4, 6), generator=generator) + shift).to(torch.uint8) for n in (5, 5)]
    batches.append((torch.randint(100, 136, (2, 3, 4, 6), generator=generator) + shift).to(torch.uint8))  # brighter
    return batches


@checks("24.4")
def channel_statistics(channel_stats: Callable[[Iterable[torch.Tensor]], Any]) -> str:
    g = torch.Generator().manual_seed(244)
    cases = [("batches of 5, 5 and 2 images of 3 × 4 × 6 (the last one brighter)", _image_batches(g)),
             ("one batch of one 3 × 2 × 2 image", [torch.randint(0, 256, (1, 3, 2, 2), generator=g).to(torch.uint8)])]
    for name, batches in cases:
        copies = [b.clone() for b in batches]
        stream: Iterator[torch.Tensor] = iter(batches)  # read once, like a data loader over a large set
        answer = channel_stats(stream)
        if not all(torch.equal(a, b) for a, b in zip(copies, batches, strict=True)):
            raise Wrong(f"{name}: your function changed the images")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return (mean, std), got {describe(answer)}")
        mean, std = (expect_shape(v, (3,), f"the {what} of {name}") for v, what in zip(answer, ("mean", "std"),
                                                                                       strict=True))
        x = torch.cat(batches).double() / 255
        expected_mean = x.mean(dim=(0, 2, 3))
        expected_std = x.std(dim=(0, 2, 3), unbiased=False)
        batch_means = torch.stack([b.double().mean(dim=(0, 2, 3)) / 255 for b in batches]).mean(dim=0)
        expect_close(mean, expected_mean, f"the mean of {name}", mistakes={
            "the mean of the batch means: the smaller last batch weighs as much as a full one (weigh by pixels)":
                batch_means,
            "the pixels were not divided by 255 (the statistics are of values in [0, 1])": expected_mean * 255,
        })
        expect_close(std, expected_std, f"the standard deviation of {name}", mistakes={
            "the root mean square, not the standard deviation (subtract the squared mean)":
                (x ** 2).mean(dim=(0, 2, 3)).sqrt(),
            "the pixels were not divided by 255 (the statistics are of values in [0, 1])": expected_std * 255,
            "the sample standard deviation (divided by n - 1); use the population one (divide by n)":
                x.std(dim=(0, 2, 3)),
        })
    return "per-channel mean and population std of all pixels in [0, 1] over batches of unequal size, read once"


def _tta_model(generator: torch.Generator) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(4 * 5 * 7, 6))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        bn = model[1]
        assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
        bn.running_mean.copy_(torch.randn(4, generator=generator))
        bn.running_var.copy_(torch.rand(4, generator=generator) + 0.5)
    return model.train()  # handed over in training mode, as after a training loop


@checks("24.5")
def flip_tta(flip_tta: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(245)
    for name, X in [("6 images of 3 × 5 × 7", torch.randn(6, 3, 5, 7, generator=g)),
                    ("one image of 3 × 5 × 7", torch.randn(1, 3, 5, 7, generator=g))]:
        model = _tta_model(g)
        reference = copy.deepcopy(model).eval()
        state = copy.deepcopy(model.state_dict())
        X_before = X.clone()
        got = flip_tta(model, X)
        if not torch.equal(X, X_before):
            raise Wrong(f"{name}: your function changed the images in place (flip returns a new tensor)")
        for key, value in state.items():
            if not torch.equal(model.state_dict()[key], value):
                raise Wrong(f"{name}: the model's {key} changed: it ran in training mode (batch-norm statistics "
                            "move, dropout is on); call model.eval() before predicting")
        got = expect_shape(got, (X.shape[0], 6), f"the probabilities for {name}")
        if got.requires_grad:
            raise Wrong(f"the probabilities for {name} require grad: predict under torch.no_grad() (no graph is "
                        "needed at test time)")
        with torch.no_grad():
            plain = reference(X).softmax(dim=1)
            mirror = reference(X.flip(dims=[-1])).softmax(dim=1)
            mistakes = {
                "the logits were averaged, then turned into probabilities; average the probabilities":
                    ((reference(X) + reference(X.flip(dims=[-1]))) / 2).softmax(dim=1),
                "flipped upside down (dims=-2); the mirror image flips the width axis (dims=-1)":
                    (plain + reference(X.flip(dims=[-2])).softmax(dim=1)) / 2,
                "the prediction of the image alone, without its mirror image": plain,
            }
        expect_close(got, (plain + mirror) / 2, f"the probabilities for {name}", rtol=1e-5, atol=1e-6,
                     mistakes=mistakes)
    return "the mean of the softmax of the image and of its mirror image, in eval mode without a graph, on two " \
           "batches; the model's state untouched"
