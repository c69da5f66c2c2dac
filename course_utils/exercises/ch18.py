"""Checks for chapter 18's exercises (sequence to sequence learning, BLEU and beam search)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..attention import sequence_mask
from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape


@checks("18.1")
def sequence_mask_check(sequence_mask_fn: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(181)
    cases: list[tuple[str, torch.Tensor, list[int], float]] = [
        ("X of shape (2, 4), valid lengths [1, 3], value 0", torch.randn(2, 4, generator=g), [1, 3], 0.0),
        ("X of shape (3, 3, 3), valid lengths [0, 2, 3], value -1", torch.randn(3, 3, 3, generator=g), [0, 2, 3],
         -1.0),
        ("X of shape (2, 5, 4), valid lengths [5, 0], value -1e6", torch.randn(2, 5, 4, generator=g), [5, 0], -1e6),
        ("integer X of shape (1, 6), valid length [4], value 0", torch.arange(1, 7)[None], [4], 0.0),
    ]
    for name, X, lengths, value in cases:
        valid_len = torch.tensor(lengths)
        before = X.clone()
        got = sequence_mask_fn(X, valid_len.clone(), value)
        if not torch.equal(X, before):
            raise Wrong(f"{name}: your function changed X in place; return a masked copy (the caller may "
                        f"still need X)")
        expected = sequence_mask(X, valid_len, value)
        keep = torch.arange(X.shape[1])[None, :] < valid_len[:, None]
        mistakes = {
            "one padding position too many was kept (<= instead of < valid_len)":
                sequence_mask(X, (valid_len + 1).clamp(max=X.shape[1]), value),
            "the padding was set to 0 instead of value": sequence_mask(X, valid_len, 0.0),
        }
        if X.dim() == 3 and X.shape[0] == X.shape[1] == X.shape[2]:
            mistakes["the mask was applied along the last axis: give it shape (batch, steps, 1) so that it "
                     "broadcasts over the features"] = torch.where(keep[None], X, torch.full_like(X, value))
        expect_shape(got, tuple(X.shape), f"{name}: the result")
        expect_equal(got, expected, f"{name}: the masked X", mistakes=mistakes)
    return "equals course_utils.attention.sequence_mask on 2-D and 3-D inputs, lengths 0 to full, X unchanged"


def _ngrams(tokens: Sequence[str], n: int) -> collections.Counter[tuple[str, ...]]:
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _precision_variant(pred: Sequence[str], refs: Sequence[Sequence[str]], n: int, *, clip: bool = True,
                       summed: bool = False, distinct: bool = False) -> float:
    counts = _ngrams(pred, n)
    total = len(counts) if distinct else sum(counts.values())
    if total == 0:
        return 0.0
    limit: collections.Counter[tuple[str, ...]] = collections.Counter()
    for ref in refs:
        for gram, count in _ngrams(ref, n).items():
            limit[gram] = limit[gram] + count if summed else max(limit[gram], count)
    matches = sum((min(c, limit[gram]) if clip else (c if limit[gram] else 0)) for gram, c in counts.items())
    return matches / total


@checks("18.2")
def clipped_precision_check(clipped_precision: Callable[..., Any]) -> str:
    cases: list[tuple[str, str, list[str], int]] = [
        ("unigrams of 'the the the the the the the'", "the the the the the the the",
         ["the cat is on the mat", "there is a cat on the mat"], 1),
        ("unigrams of 'le chat le chat le' against two references", "le chat le chat le",
         ["le chat est là", "le chat et le chien"], 1),
        ("bigrams of 'le chat le chat le chat'", "le chat le chat le chat",
         ["le chat dort", "le chat le chien"], 2),
        ("bigrams of 'il est calme .' against one reference", "il est calme .", ["elle est calme ."], 2),
        ("trigrams of a two-word prediction (no trigram at all)", "va !", ["va !"], 3),
        ("unigrams of a prediction with no match", "bonjour", ["il est calme .", "il est tranquille ."], 1),
    ]
    for name, pred, refs, n in cases:
        pred_tokens, ref_tokens = pred.split(), [r.split() for r in refs]
        got = clipped_precision(list(pred_tokens), [list(r) for r in ref_tokens], n)
        expected = _precision_variant(pred_tokens, ref_tokens, n)
        mistakes = {
            "the counts were not clipped: an n-gram of the prediction may match at most as often as it occurs "
            "in one reference": _precision_variant(pred_tokens, ref_tokens, n, clip=False),
            "the counts were clipped by their total over all references, not by the largest count in one":
                _precision_variant(pred_tokens, ref_tokens, n, summed=True),
            "divided by the number of distinct n-grams instead of all the prediction's n-grams":
                _precision_variant(pred_tokens, ref_tokens, n, distinct=True),
        }
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        expect_close(got, expected, f"the {n}-gram precision, {name}", rtol=1e-9, atol=1e-12, mistakes=mistakes)
    return "clipped n-gram precision with several references, n = 1 to 3, repeated n-grams and no n-gram at all"


@checks("18.3")
def beam_step_check(beam_step: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(183)
    cases = [(3, 5, 3), (1, 6, 3), (4, 7, 2), (2, 3, 6)]  # hypotheses, vocabulary, beam size
    for k, V, beam_size in cases:
        name = f"{k} hypotheses, a vocabulary of {V}, beam size {beam_size}"
        scores = torch.zeros(1) if k == 1 else -3 * torch.rand(k, generator=g)
        log_probs = torch.log_softmax(2 * torch.randn(k, V, generator=g), dim=-1)
        got = beam_step(scores.clone(), log_probs.clone(), beam_size)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Wrong(f"{name}: return (scores, parents, tokens), got {describe(got)}")
        totals = (scores[:, None] + log_probs).reshape(-1)
        best, index = totals.topk(beam_size)
        parents, tokens = index // V, index % V
        new_scores, got_parents, got_tokens = got
        expect_shape(new_scores, (beam_size,), f"{name}: the new scores")
        expect_close(new_scores, best, f"{name}: the new scores (best first)", rtol=1e-6, atol=1e-7, mistakes={
            "the hypotheses' scores were not added to the log-probabilities of their extensions":
                log_probs.reshape(-1).topk(beam_size).values,
        })
        index_mistakes = {
            "parents and tokens are swapped: the flat index is parent · V + token, so the parent is index // V":
                (tokens, parents),
            "the flat index was split by the number of hypotheses instead of the vocabulary size":
                (index // k, index % k),
        }
        got_p, got_t = (torch.as_tensor(t).long() for t in (got_parents, got_tokens))
        expect_equal(got_p, parents, f"{name}: the parents", mistakes={m: v[0] for m, v in index_mistakes.items()})
        expect_equal(got_t, tokens, f"{name}: the tokens", mistakes={m: v[1] for m, v in index_mistakes.items()})
    return "equals a brute-force ranking of all k × V extensions, first step (k = 1) and beam larger than k included"


PAD, BOS, EOS = 0, 1, 2


def _greedy_rows(tables: torch.Tensor, max_len: int, keep_going: bool = False) -> list[list[int]]:
    """Greedy decoding row by row; with keep_going, rows continue after <eos> up to max_len."""
    rows = []
    for table in tables:
        token, out = BOS, []
        for _ in range(max_len):
            token = int(table[token].argmax())
            out.append(token)
            if token == EOS and not keep_going:
                break
        rows.append(out)
    return rows


def _pad(rows: list[list[int]], length: int) -> torch.Tensor:
    return torch.tensor([(r + [PAD] * length)[:length] for r in rows])


@checks("18.4")
def greedy_batch_check(greedy_batch: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(184)
    cases = [(4, 7, 6, 1.5), (1, 6, 5, 2.0), (3, 6, 4, -4.0), (5, 8, 7, 0.8)]  # batch, vocabulary, max_len, eos bias
    for batch, V, max_len, eos_bias in cases:
        tables = 2 * torch.randn(batch, V, V, generator=g)
        tables[:, :, EOS] += eos_bias
        tables[:, :, BOS] -= 100  # <bos> and <pad> are never generated
        tables[:, :, PAD] -= 100
        tables = torch.log_softmax(tables, dim=-1)
        rows = _greedy_rows(tables, max_len)
        length = max(len(r) for r in rows)
        first = min(len(r) for r in rows)
        name = f"a batch of {batch}, vocabulary {V}, max_len {max_len}, row lengths {[len(r) for r in rows]}"
        calls = []

        def step(tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            calls.append(1)  # noqa: B023  (called now, inside this iteration)
            return state[torch.arange(state.shape[0]), tokens.long()], state

        got = greedy_batch(step, tables.clone(), BOS, EOS, PAD, batch, max_len)
        expected = _pad(rows, length)
        mistakes = {
            "a row went on generating after its <eos>: replace its later tokens by <pad>":
                _pad(_greedy_rows(tables, max_len, keep_going=True), length),
            "the <eos> itself was replaced by <pad>: only the tokens after it are padding":
                torch.where(expected == EOS, torch.full_like(expected, PAD), expected),
            "the loop stopped when the first row finished; go on until every row has emitted <eos>":
                expected[:, :first],
            "the loop did not stop when every row had finished: stop as soon as all rows have emitted <eos>":
                _pad(rows, max_len),
        }
        if not isinstance(got, torch.Tensor):
            raise Wrong(f"{name}: return a (batch, steps) tensor of tokens, got {describe(got)}")
        expect_equal(got.long(), expected, f"{name}: the tokens", mistakes=mistakes)
        if len(calls) != length:
            raise Wrong(f"{name}: the step function was called {len(calls)} times for {length} steps")
    return "equals greedy decoding row by row on four batches of Markov tables, rows of different lengths"
