"""Checks for chapter 19's exercises (attention mechanisms and Transformers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import Wrong, checks, expect_close, expect_shape


def _softmax_masked(scores: torch.Tensor, mask: torch.Tensor, fill: float = float("-inf"),
                    zero_empty: bool = True) -> torch.Tensor:
    weights = torch.softmax(scores.masked_fill(~mask, fill), dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0) if zero_empty else weights


def _no_nan(got: Any, what: str, cause: str) -> None:
    if isinstance(got, torch.Tensor) and bool(torch.isnan(got).any()):
        raise Wrong(f"{what}: the result contains NaN; {cause}")


@checks("19.1")
def masked_softmax_check(masked_softmax: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(191)
    lengths = torch.tensor([3, 2])
    some_rows = torch.rand(2, 3, 4, generator=g) < 0.6
    some_rows[0, 1] = False  # a query with no key to attend to
    some_rows[1, 2] = True
    huge = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    huge[1] -= 3e6  # very negative scores: -1e6 is no longer "minus infinity" for them
    cases: list[tuple[str, torch.Tensor, torch.Tensor]] = [
        ("scores (2, 3, 4) with a key-padding mask (2, 1, 4) for valid lengths [3, 2]",
         torch.randn(2, 3, 4, generator=g, dtype=torch.float64), (torch.arange(4) < lengths[:, None])[:, None, :]),
        ("scores (2, 3, 4) with a mask (2, 3, 4) in which query 1 of example 0 may attend to no key",
         torch.randn(2, 3, 4, generator=g, dtype=torch.float64), some_rows),
        ("scores (2, 5, 5) with a causal mask (5, 5)", torch.randn(2, 5, 5, generator=g, dtype=torch.float64),
         torch.ones(5, 5, dtype=torch.bool).tril()),
        ("scores (2, 3, 4) whose second example's scores are about −3,000,000, key-padding mask", huge,
         (torch.arange(4) < lengths[:, None])[:, None, :]),
        ("4-D scores (2, 2, 3, 5) (batch, heads, queries, keys), mask (2, 1, 1, 5) for valid lengths [3, 0]",
         torch.randn(2, 2, 3, 5, generator=g, dtype=torch.float64),
         (torch.arange(5) < torch.tensor([3, 0])[:, None])[:, None, None, :]),
    ]
    for name, scores, mask in cases:
        got = masked_softmax(scores.clone(), mask.clone())
        _no_nan(got, name, "a row whose keys are all masked holds only −∞ and its softmax is 0/0: set such "
                           "rows to 0")
        expect_shape(got, tuple(scores.shape), f"{name}: the weights")
        mistakes = {
            "the masked keys were filled with −10⁶, which is not small enough for very negative scores and "
            "gives a row without any allowed key uniform weights instead of zeros":
                _softmax_masked(scores, mask, fill=-1e6, zero_empty=False),
            "the masked keys got the weights: True in the mask means 'may attend'": _softmax_masked(scores, ~mask),
        }
        expect_close(got, _softmax_masked(scores, mask), f"{name}: the weights", rtol=1e-6, atol=1e-9,
                     mistakes=mistakes)
    return ("weights sum to 1 over the allowed keys and are 0 elsewhere, rows without an allowed key all 0, "
            "for padding, causal and 4-D masks and very negative scores")


@checks("19.2")
def attention_check(attention: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(192)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    cases = [
        ("4-D queries (2, 3, 5, 8), keys and values (2, 3, 7, 8) and (2, 3, 7, 6)", rand(2, 3, 5, 8), rand(2, 3, 7, 8),
         rand(2, 3, 7, 6), False),
        ("causal, 4-D queries, keys and values (2, 2, 6, 4)", rand(2, 2, 6, 4), rand(2, 2, 6, 4), rand(2, 2, 6, 4),
         True),
        ("causal, 3-D (1, 4, 16), values of width 3", rand(1, 4, 16), rand(1, 4, 16), rand(1, 4, 3), True),
    ]
    for name, q, k, v, causal in cases:
        got = attention(q.clone(), k.clone(), v.clone(), causal=causal)
        _no_nan(got, name, "the first query has no key left to attend to: the causal mask must let query i "
                           "see key i (hide only j > i)")
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        d = q.shape[-1]
        n_q, n_k = q.shape[-2], k.shape[-2]
        future = torch.ones(n_q, n_k, dtype=torch.bool).triu(diagonal=1) if causal else torch.zeros(
            n_q, n_k, dtype=torch.bool)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        mistakes = {
            "the scores were divided by d instead of √d": F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                                       scale=1 / d),
            "the softmax ran over the queries (dim=-2) instead of the keys":
                torch.softmax(scores.masked_fill(future, float("-inf")), dim=-2) @ v,
        }
        if causal:
            mistakes["the mask hides the past instead of the future: query i may see keys 0..i"] = \
                F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(n_q, n_k, dtype=torch.bool).triu())
        expect_close(got, expected, f"{name}: the output", rtol=1e-6, atol=1e-9, mistakes=mistakes)
    return "equals F.scaled_dot_product_attention with and without is_causal, on 3-D and 4-D inputs"


def _smoothed_variant(logits: torch.Tensor, targets: torch.Tensor, epsilon: float, ignore_index: int, *,
                      others: bool = False, with_padding: bool = False, no_one_minus: bool = False,
                      summed: bool = False) -> torch.Tensor:
    log_probs = torch.log_softmax(logits, dim=-1)
    valid = targets != ignore_index
    nll = -log_probs.gather(-1, torch.where(valid, targets, 0).unsqueeze(-1)).squeeze(-1)
    V = logits.shape[-1]
    if others:
        uniform = (-log_probs.sum(dim=-1) - nll) / (V - 1)
    else:
        uniform = -log_probs.sum(dim=-1) if summed else -log_probs.mean(dim=-1)
    loss = (1.0 if no_one_minus else 1 - epsilon) * nll + epsilon * uniform
    return loss.mean() if with_padding else loss[valid].mean()


@checks("19.3")
def label_smoothing_check(smoothed_cross_entropy: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(193)
    padded = torch.randint(1, 7, (3, 5), generator=g)
    padded[0, 3:] = 0
    padded[2, :] = 0  # a sentence made of padding only
    cases: list[tuple[str, torch.Tensor, torch.Tensor, float, int]] = [
        ("logits (3, 5, 7), targets padded with index 0, ε = 0.1", 2 * torch.randn(3, 5, 7, generator=g), padded,
         0.1, 0),
        ("logits (6, 4) without padding, ε = 0.3", torch.randn(6, 4, generator=g), torch.randint(0, 4, (6,),
                                                                                                  generator=g),
         0.3, -100),
        ("logits (1, 1, 5), one target, ε = 0.2", torch.randn(1, 1, 5, generator=g), torch.tensor([[3]]), 0.2, 0),
        ("logits (4, 6), ε = 0 (plain cross-entropy)", torch.randn(4, 6, generator=g),
         torch.tensor([5, 0, 2, 2]), 0.0, -100),
    ]
    for name, logits, targets, epsilon, ignore_index in cases:
        logits = logits.double()
        got = smoothed_cross_entropy(logits.clone(), targets.clone(), epsilon, ignore_index)
        expected = F.cross_entropy(logits.movedim(-1, 1), targets, label_smoothing=epsilon, ignore_index=ignore_index)

        def variant(**flags: bool) -> torch.Tensor:
            return _smoothed_variant(logits, targets, epsilon, ignore_index, **flags)  # noqa: B023

        mistakes = {
            "ε was spread over the V − 1 wrong classes; PyTorch spreads it uniformly over all V classes":
                variant(others=True),
            "the padded positions were averaged in: average over the targets that are not ignore_index":
                variant(with_padding=True),
            "the true class's term must be weighted by 1 − ε": variant(no_one_minus=True),
            "ε multiplies the sum of −log p over the classes; it should multiply their mean":
                variant(summed=True),
        }
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        expect_close(got, expected, f"the loss for {name}", rtol=1e-6, atol=1e-9, mistakes=mistakes)
    return "equals F.cross_entropy(label_smoothing=ε, ignore_index=...) with classes on the last axis, four cases"


def _encoding(num_positions: int, num_hiddens: int) -> torch.Tensor:
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    freq = torch.pow(10000, torch.arange(0, num_hiddens, 2, dtype=torch.float64) / num_hiddens)
    P = torch.zeros(num_positions, num_hiddens, dtype=torch.float64)
    P[:, 0::2] = torch.sin(position / freq)
    P[:, 1::2] = torch.cos(position / freq)
    return P


def _rotation(delta: float, num_hiddens: int, exponent: float = 2.0) -> torch.Tensor:
    M = torch.zeros(num_hiddens, num_hiddens, dtype=torch.float64)
    for j in range(num_hiddens // 2):
        angle = delta / 10000 ** (exponent * j / num_hiddens)
        c, s = math.cos(angle), math.sin(angle)
        M[2 * j, 2 * j], M[2 * j, 2 * j + 1], M[2 * j + 1, 2 * j], M[2 * j + 1, 2 * j + 1] = c, -s, s, c
    return M


@checks("19.4")
def shift_matrix_check(shift_matrix: Callable[..., Any]) -> str:
    for delta, d in [(1, 8), (5, 16), (-3, 2), (0, 32), (7, 6)]:
        name = f"δ = {delta}, num_hiddens = {d}"
        got = shift_matrix(delta, d)
        expect_shape(got, (d, d), f"{name}: the matrix")
        P = _encoding(40, d)
        M = _rotation(delta, d)
        lo = max(0, -delta)
        assert torch.allclose(P[lo:lo + 20] @ M, P[lo + delta:lo + delta + 20])  # the reference is right
        mistakes = {
            "this matrix shifts by −δ (it is the transpose of the right one): with row vectors, "
            "P[i + δ] = P[i] @ M": _rotation(-delta, d),
            "the frequency of pair j is 1 / 10000^(2j/d), not 1 / 10000^(j/d)": _rotation(delta, d, exponent=1.0),
            "every pair of dimensions was rotated by the same angle δ; pair j turns by δ / 10000^(2j/d)":
                _rotation(delta, d, exponent=0.0),
        }
        expect_close(got, M, f"{name}: the matrix", rtol=1e-5, atol=1e-6, mistakes=mistakes)
        expect_close(P[lo:lo + 20] @ got.double(), P[lo + delta:lo + delta + 20],
                     f"{name}: P[i] @ M against P[i + δ]", rtol=1e-5, atol=1e-6)
    return "P[i] @ M equals P[i + δ] for shifts from −3 to 7 and widths 2 to 32"
