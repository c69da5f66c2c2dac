"""Checks for chapter 04's exercises (softmax regression)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import Wrong, checks, describe, expect_close

Tensor = torch.Tensor


def _finite(got: Any, what: str, hint: str) -> None:
    if isinstance(got, Tensor) and got.is_floating_point() and not torch.isfinite(got.detach()).all():
        raise Wrong(f"{what} contains {got.detach()[~torch.isfinite(got.detach())].flatten()[0].item()}: {hint}")


# --- 4.1 label smoothing ---------------------------------------------------------------------

@checks("4.1")
def smoothed_cross_entropy(smoothed_cross_entropy: Callable[[Tensor, Tensor, float], Tensor]) -> str:
    g = torch.Generator().manual_seed(41)
    cases = [
        ("5 examples, 4 classes, ε = 0.1", 3 * torch.randn(5, 4, generator=g), torch.randint(0, 4, (5,), generator=g),
         0.1),
        ("a batch of one example, 10 classes, ε = 0.2", torch.randn(1, 10, generator=g), torch.tensor([7]), 0.2),
        ("logits of size ±1000, ε = 0.1",
         torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0], [0.0, -1000.0, 1000.0]]),
         torch.tensor([0, 2, 1]), 0.1),
        ("6 examples, 7 classes, ε = 0 (plain cross-entropy)", torch.randn(6, 7, generator=g),
         torch.randint(0, 7, (6,), generator=g), 0.0),
    ]
    for name, logits, y, eps in cases:
        got = smoothed_cross_entropy(logits.clone(), y.clone(), eps)
        what = f"the losses for {name}"
        _finite(got, what, "take logs with the log-sum-exp trick (log_softmax), not log(softmax(...)), "
                           "whose probabilities underflow to 0")
        K = logits.shape[1]
        logp = torch.log_softmax(logits, dim=1)
        nll = -logp[torch.arange(len(y)), y]
        expect_close(got, F.cross_entropy(logits, y, label_smoothing=eps, reduction="none"), what, mistakes={
            "normalized the log-softmax over the batch axis (dim 0) instead of the classes":
                (1 - eps) * -torch.log_softmax(logits, dim=0)[torch.arange(len(y)), y]
                - eps * torch.log_softmax(logits, dim=0).mean(dim=1),
            "spread ε over the other K − 1 classes; the target puts ε / K on every class, the true one included":
                (1 - eps) * nll - eps * (logp.sum(dim=1) + nll) / (K - 1),
            "forgot the factor (1 − ε) on the true class's term": nll - eps * logp.mean(dim=1),
            "averaged over the batch: return one loss per example":
                F.cross_entropy(logits, y, label_smoothing=eps),
        })
    return "equals F.cross_entropy(label_smoothing=ε, reduction='none') on four batches (logits ±1000 included)"


# --- 4.2 class weights and ignored labels ----------------------------------------------------

@checks("4.2")
def weighted_cross_entropy(weighted_cross_entropy: Callable[..., Tensor]) -> str:
    g = torch.Generator().manual_seed(42)
    cases = [
        ("6 examples, 4 classes, two labels ignored (-100)", torch.randn(6, 4, generator=g) * 2,
         torch.tensor([3, -100, 0, 1, -100, 1]), torch.tensor([0.5, 2.0, 1.0, 4.0]), -100),
        ("5 examples, 3 classes, none ignored", torch.randn(5, 3, generator=g),
         torch.tensor([2, 0, 2, 1, 2]), torch.tensor([3.0, 1.0, 0.2]), -100),
        ("4 examples, 5 classes, only one counts (ignore_index = -1)", torch.randn(4, 5, generator=g),
         torch.tensor([-1, -1, 4, -1]), torch.rand(5, generator=g) + 0.1, -1),
    ]
    for name, logits, y, weight, ignore in cases:
        got = weighted_cross_entropy(logits.clone(), y.clone(), weight.clone(), ignore_index=ignore)
        what = f"the loss for {name}"
        keep = y != ignore
        labels = torch.where(keep, y, torch.zeros_like(y))
        losses = -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), labels]
        w = weight[labels] * keep
        expect_close(got, F.cross_entropy(logits, y, weight=weight, ignore_index=ignore), what, mistakes={
            "divided by the number of examples instead of the sum of their class weights":
                (w * losses).sum() / keep.sum(),
            "the denominator includes the weights of the ignored examples": (w * losses).sum() / weight[labels].sum(),
            "did not skip the examples labelled ignore_index (they counted as class 0)":
                (weight[labels] * losses).sum() / weight[labels].sum(),
            "left out the class weights": F.cross_entropy(logits, y, ignore_index=ignore),
        })
    return "equals F.cross_entropy(weight=..., ignore_index=...) on three batches (one with a single counted label)"


# --- 4.3 top-k accuracy ----------------------------------------------------------------------

def _hits(logits: Tensor, y: Tensor, k: int) -> Tensor:
    """For each row: is y among the k largest logits? (no ties in the check's random logits)"""
    true = logits[torch.arange(len(y)), y].unsqueeze(1)
    return (logits > true).sum(dim=1) < k


@checks("4.3")
def topk_accuracy(topk_accuracy: Callable[[Tensor, Tensor, int], Any]) -> str:
    g = torch.Generator().manual_seed(43)
    cases = [
        ("4 examples, 4 classes", torch.randn(4, 4, generator=g), torch.tensor([0, 3, 1, 1]), (1, 2, 3, 4)),
        ("a batch of one, 5 classes", torch.randn(1, 5, generator=g), torch.tensor([2]), (1, 3, 5)),
        ("1000 examples, 10 classes", torch.randn(1000, 10, generator=g), torch.randint(0, 10, (1000,), generator=g),
         (3, 1, 10)),
    ]
    for name, logits, y, ks in cases[2:] + cases[:2]:  # the large batch first: there the mistakes differ most
        for k in ks:
            got = topk_accuracy(logits.clone(), y.clone(), k)
            if isinstance(got, Tensor) and got.numel() == 1:
                got = got.item()
            if not isinstance(got, (int, float)) or isinstance(got, bool):
                raise Wrong(f"return the accuracy as a Python float, got {describe(got)}")
            expected = _hits(logits, y, k).float().mean().item()
            top = torch.topk(logits, k, dim=1).indices
            expect_close(got, expected, f"topk_accuracy with k = {k} for {name}", atol=1e-6, mistakes={
                "took the k smallest logits instead of the k largest": _hits(-logits, y, k).float().mean().item(),
                "counted the k − 1 largest logits (off by one)": _hits(logits, y, k - 1).float().mean().item(),
                "returned the number of hits instead of the fraction": float(_hits(logits, y, k).sum()),
                "reduced the hits over the batch axis (dim 0) instead of the k candidates (dim 1)":
                    (top == y.unsqueeze(1)).any(dim=0).float().mean().item(),
            })
    return "equals a reference for k from 1 to K on three batches (4 × 4, a batch of one, 1000 × 10)"
