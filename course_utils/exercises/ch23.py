"""Checks for chapter 23's exercises (the character-model ladder)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_shape


def _penalize(logits: torch.Tensor, generated: torch.Tensor, theta: float, *, per_occurrence: bool = False,
              ignore_sign: bool = False, inverted: bool = False, whole_batch: bool = False) -> torch.Tensor:
    """CTRL's repetition penalty (or one of its known mistakes), in float64."""
    logits = logits.double()
    counts = torch.zeros_like(logits).scatter_add(1, generated, torch.ones_like(generated, dtype=logits.dtype))
    if whole_batch:
        counts = counts.sum(dim=0, keepdim=True).expand_as(counts)
    factor = theta ** counts if per_occurrence else torch.ones_like(logits).masked_fill(counts > 0, theta)
    if inverted:
        factor = 1 / factor
    if ignore_sign:
        return logits / factor
    return torch.where(logits > 0, logits / factor, logits * factor)


@checks("23.1")
def repetition_penalty(penalize_repeats: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(231)
    cases = [("3 rows of 10 logits, 6 generated tokens per row with repeats, θ = 1.3",
              torch.randn(3, 10, generator=g) * 3, torch.tensor([[1, 4, 4, 7, 1, 4], [0, 9, 2, 9, 9, 5],
                                                                  [3, 3, 3, 3, 8, 6]]), 1.3),
             ("one row of 7 negative logits, token 2 generated 4 times and token 5 once, θ = 2",
              torch.randn(1, 7, generator=g) - 4.0, torch.tensor([[2, 5, 2, 2, 2]]), 2.0),
             ("2 rows of 65 logits (a character vocabulary), 40 generated tokens each, θ = 1.2",
              torch.randn(2, 65, generator=g) * 2, torch.randint(0, 65, (2, 40), generator=g), 1.2),
             ("2 rows of 5 logits, nothing generated yet (shape (2, 0)), θ = 1.5",
              torch.randn(2, 5, generator=g), torch.zeros(2, 0, dtype=torch.long), 1.5)]
    for name, logits, generated, theta in cases:
        logits_before, generated_before = logits.clone(), generated.clone()
        got = penalize_repeats(logits, generated, theta)
        if not torch.equal(logits, logits_before) or not torch.equal(generated, generated_before):
            raise Wrong(f"{name}: your function changed its input in place (penalize a copy of the logits)")
        got = expect_shape(got, tuple(logits.shape), f"the penalized logits for {name}")
        expect_close(got, _penalize(logits, generated, theta), f"the penalized logits for {name}", rtol=1e-5,
                     atol=1e-6, mistakes={
                         "a token was penalized once per occurrence (θ to the power of its count); CTRL penalizes "
                         "every generated token once": _penalize(logits, generated, theta, per_occurrence=True),
                         "the negative logits were divided by θ too, which raises them (multiply a negative logit "
                         "by θ)": _penalize(logits, generated, theta, ignore_sign=True),
                         "the generated tokens were made more likely (positive logits multiplied by θ, negative "
                         "ones divided)": _penalize(logits, generated, theta, inverted=True),
                         "each row was penalized for the tokens generated in every row of the batch, not its own":
                             _penalize(logits, generated, theta, whole_batch=True),
                     })
    return "positive logits of generated tokens divided by θ, negative ones multiplied, once per token and row, " \
           "on four batches (repeats, all-negative logits, nothing generated yet)"


def _masked_mean(x: torch.Tensor, lengths: torch.Tensor, *, divide_by_t: bool = False,
                 extra: int = 0) -> torch.Tensor:
    T = x.shape[1]
    mask = (torch.arange(T)[None, :] < (lengths[:, None] + extra)).double()
    total = (x.double() * mask[:, :, None]).sum(dim=1)
    count = torch.full_like(total[:, :1], float(T)) if divide_by_t else mask.sum(dim=1, keepdim=True).clamp(min=1)
    return total / count


@checks("23.2")
def masked_mean(masked_mean: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(232)
    cases = [("4 sequences of lengths 6, 2, 0 and 4 padded to 6", torch.randn(4, 6, 3, generator=g),
              torch.tensor([6, 2, 0, 4])),
             ("one sequence of length 3 padded to 5", torch.randn(1, 5, 2, generator=g), torch.tensor([3])),
             ("3 sequences of lengths 1, 0, 1 padded to 1", torch.randn(3, 1, 4, generator=g), torch.tensor([1, 0, 1]))]
    for name, x, lengths in cases:
        got = expect_shape(masked_mean(x, lengths), (x.shape[0], x.shape[2]), f"the means of {name}")
        if bool(torch.isnan(got).any()):
            raise Wrong(f"the means of {name} contain NaN ({describe(got)}): a sequence of length 0 must get a mean "
                        "of 0 (divide by the length clamped at 1)")
        mistakes = {
            "the padded positions are included in the mean": x.double().mean(dim=1),
            "divided by the padded length T instead of each sequence's length": _masked_mean(x, lengths,
                                                                                             divide_by_t=True),
            "one position too many: the mask must keep positions 0 .. length - 1 (use <, not <=)":
                _masked_mean(x, lengths, extra=1),
        }
        expect_close(got, _masked_mean(x, lengths), f"the means of {name}", mistakes=mistakes)
    return "the mean over each sequence's first `length` positions (0 for length 0) on three batches"


def _concat_pool(outputs: torch.Tensor, lengths: torch.Tensor, order: tuple[str, str, str] = ("last", "max", "mean"),
                 *, last_padded: bool = False, max_padded: bool = False, mean_over_t: bool = False) -> torch.Tensor:
    rows = []
    for b in range(outputs.shape[0]):
        n = int(lengths[b])
        real = outputs[b, :n].double()
        parts = {"last": outputs[b, -1].double() if last_padded else real[-1],
                 "max": outputs[b].double().amax(dim=0) if max_padded else real.amax(dim=0),
                 "mean": real.sum(dim=0) / (outputs.shape[1] if mean_over_t else n)}
        rows.append(torch.cat([parts[name] for name in order]))
    return torch.stack(rows)


def _packed_gru_outputs(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs of a GRU run on packed sequences (zeros past each length) and its final hidden state."""
    lengths = torch.tensor([5, 2, 4, 1])
    gru = nn.GRU(3, 4, batch_first=True)
    with torch.no_grad():
        for p in gru.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.8)
        packed = nn.utils.rnn.pack_padded_sequence(torch.randn(4, 5, 3, generator=generator), lengths,
                                                   batch_first=True, enforce_sorted=False)
        out, h_n = gru(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    return outputs, lengths, h_n[-1]


@checks("23.3")
def concat_pooling(concat_pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(233)
    outputs, lengths, h_last = _packed_gru_outputs(g)
    negative = -torch.rand(3, 4, 2, generator=g) - 0.1  # every real value below the padding's 0
    negative_lengths = torch.tensor([2, 4, 1])
    negative[torch.arange(4)[None, :] >= negative_lengths[:, None]] = 0.0
    cases = [("the outputs of a GRU on 4 packed sequences of lengths 5, 2, 4, 1", outputs, lengths),
             ("3 sequences of negative outputs, lengths 2, 4, 1, zero-padded to 4", negative, negative_lengths),
             ("one sequence of length 3, not padded", torch.randn(1, 3, 5, generator=g), torch.tensor([3]))]
    for name, x, n in cases:
        D = x.shape[2]
        got = expect_shape(concat_pool(x, n), (x.shape[0], 3 * D), f"the pooled features of {name}")
        mistakes = {
            "the 'last' part is the last position of the padded tensor, not each sequence's last real output":
                _concat_pool(x, n, last_padded=True),
            "the max includes the padded positions (their zeros beat negative outputs); mask them with -inf":
                _concat_pool(x, n, max_padded=True),
            "the mean is divided by the padded length T, not the sequence's length":
                _concat_pool(x, n, mean_over_t=True),
            "the parts are in another order (it is [last, max, mean])": _concat_pool(x, n, ("last", "mean", "max")),
        }
        expect_close(got, _concat_pool(x, n), f"the pooled features of {name}", mistakes=mistakes)
        if x is outputs:
            expect_close(got[:, :D], h_last, "the 'last' part for the packed GRU (it must equal the GRU's final "
                         "hidden state h_n)")
    return "[last, max, mean] over the real positions, on three batches; 'last' equals h_n of a packed GRU"


def _top_p(logits: torch.Tensor, p: float, *, keep_crossing: bool = True, descending: bool = True,
           renormalize: bool = True) -> torch.Tensor:
    probs = torch.softmax(logits.double(), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=descending)
    before = sorted_probs.cumsum(dim=-1) - (sorted_probs if keep_crossing else 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(before >= p, 0.0))
    return kept / kept.sum(dim=-1, keepdim=True) if renormalize else kept


@checks("23.4")
def nucleus_sampling(top_p_probs: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(234)
    cases = [("3 rows of 8 logits, p = 0.8", torch.randn(3, 8, generator=g) * 2, 0.8),
             ("2 rows of 6 logits, p = 0.3", torch.randn(2, 6, generator=g) * 1.5, 0.3),
             ("one row where one token has probability 0.9, p = 0.5", torch.tensor([[4.0, 0.5, 0.2, 0.0, -1.0]]), 0.5),
             ("2 rows of 6 logits, p = 1 (every token)", torch.randn(2, 6, generator=g), 1.0)]
    for name, logits, p in cases:
        before = logits.clone()
        got = top_p_probs(logits, p)
        if not torch.equal(logits, before):
            raise Wrong(f"{name}: your function changed the logits in place")
        got = expect_shape(got, tuple(logits.shape), f"the probabilities for {name}")
        if bool(torch.isnan(got).any()):
            raise Wrong(f"the probabilities for {name} contain NaN ({describe(got)}): a row kept no token. Keep a "
                        "token while the more likely tokens before it add up to less than p, so that the token "
                        "that takes the total past p is kept too")
        mistakes = {
            "the token that takes the total past p was dropped (keep a token while the tokens before it add up to "
            "less than p)": _top_p(logits, p, keep_crossing=False),
            "the least likely tokens were kept (sort in descending order)": _top_p(logits, p, descending=False),
            "the kept probabilities were not renormalized to sum to 1": _top_p(logits, p, renormalize=False),
        }
        expect_close(got, _top_p(logits, p), f"the probabilities for {name}", rtol=1e-5, atol=1e-6,
                     mistakes=mistakes)
    return "the smallest set of most likely tokens with probability at least p, renormalized, on four batches " \
           "(one token, and every token, included)"
