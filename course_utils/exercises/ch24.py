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


def _smoothed(logits: torch.Tensor, target: torch.Tensor, eps: float, *, wrong_only: bool = False,
              uniform_sum: bool = False, reduce_sum: bool = False) -> torch.Tensor:
    log_p = F.log_softmax(logits.double(), dim=-1)
    K = logits.shape[-1]
    nll = -log_p.gather(1, target[:, None])[:, 0]
    if wrong_only:
        uniform = -(log_p.sum(dim=-1) + nll) / (K - 1)  # the mean of -log p over the wrong classes
    else:
        uniform = -log_p.sum(dim=-1) / (1 if uniform_sum else K)
    per_example = (1 - eps) * nll + eps * uniform
    return per_example.sum() if reduce_sum else per_example.mean()


@checks("24.1")
def label_smoothing(smooth_cross_entropy: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(241)
    cases = [("8 examples, 10 classes, ε = 0.1", torch.randn(8, 10, generator=g) * 3,
              torch.randint(0, 10, (8,), generator=g), 0.1),
             ("one example, 2 classes, ε = 0.2", torch.randn(1, 2, generator=g), torch.tensor([1]), 0.2),
             ("4 examples with logits of ±1000, 5 classes, ε = 0.1",
              (torch.randn(4, 5, generator=g).sign() * 1000), torch.tensor([0, 3, 1, 4]), 0.1),
             ("6 examples, 4 classes, ε = 0 (plain cross-entropy)", torch.randn(6, 4, generator=g),
              torch.randint(0, 4, (6,), generator=g), 0.0)]
    for name, logits, target, eps in cases:
        got = expect_shape(smooth_cross_entropy(logits, target, eps), (), f"the loss for {name}")
        if not bool(torch.isfinite(got)):
            raise Wrong(f"the loss for {name} is {describe(float(got))}: log(softmax(x)) is log 0 for large "
                        "logits; use log_softmax (F.log_softmax or the tensor method)")
        expected = F.cross_entropy(logits.double(), target, label_smoothing=eps)
        mistakes = {
            "ε is spread over the K - 1 wrong classes only; label smoothing spreads ε/K over all K classes "
            "(the true one gets 1 - ε + ε/K)": _smoothed(logits, target, eps, wrong_only=True),
            "the uniform part sums -log p over the classes instead of averaging it (ε/K per class)":
                _smoothed(logits, target, eps, uniform_sum=True),
            "summed over the batch instead of averaged": _smoothed(logits, target, eps, reduce_sum=True),
        }
        expect_close(got, expected, f"the loss for {name}", rtol=1e-5, atol=1e-5, mistakes=mistakes)
    return "equals F.cross_entropy(..., label_smoothing=ε) on four batches (logits of ±1000 and ε = 0 included)"


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
