"""Checks for chapter 14's exercises (text preprocessing and language-model data)."""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..text import Vocab, seq_data_iter_sequential
from . import Wrong, checks, describe, expect_close, expect_equal

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def _vocab_variant(tokens: Sequence[str], min_freq: int, reserved: Sequence[str], *, strict: bool = False,
                   alphabetical: bool = True, dedupe: bool = True) -> list[str]:
    """The vocabulary list as a known mistake builds it (flags switch the mistakes on)."""
    counts = collections.Counter(tokens)
    items = sorted(counts.items(), key=(lambda kv: (-kv[1], kv[0])) if alphabetical else (lambda kv: -kv[1]))
    out = ["<unk>", *reserved]
    for token, count in items:
        keep = count > min_freq if strict else count >= min_freq
        if keep and (not dedupe or token not in out):
            out.append(token)
    return out


@checks("14.1")
def vocabulary(build_vocab: Callable[..., Any]) -> str:
    text = "the time traveller for so it will be convenient to speak of him was expounding a recondite " \
           "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated"
    words = text.split() + ["<pad>", "<pad>", "<eos>"]
    cases: list[tuple[str, list[str], int, tuple[str, ...]]] = [
        ("the characters of 'zebra bars a zoo'", list("zebra bars a zoo"), 1, ()),
        ("words, min_freq=2, reserved ('<pad>', '<bos>', '<eos>') that also occur in the text", words, 2,
         ("<pad>", "<bos>", "<eos>")),
        ("words, min_freq=1", words, 1, ()),
        ("words, min_freq=100 (no token is frequent enough)", words, 100, ("<pad>",)),
        ("an empty text", [], 1, ("<bos>",)),
    ]
    for name, tokens, min_freq, reserved in cases:
        got = build_vocab(list(tokens), min_freq, reserved)
        if not isinstance(got, list):
            raise Wrong(f"{name}: build_vocab should return a list of tokens, got {type(got).__name__}: "
                        f"{describe(got)}")
        expected = Vocab(tokens, min_freq=min_freq, reserved_tokens=list(reserved)).idx_to_token
        mistakes = {
            "the tokens seen exactly min_freq times are missing (use count >= min_freq)":
                _vocab_variant(tokens, min_freq, reserved, strict=True),
            "tokens of equal frequency are in order of first appearance, not alphabetical":
                _vocab_variant(tokens, min_freq, reserved, alphabetical=False),
            "a reserved token that occurs in the text is listed twice":
                _vocab_variant(tokens, min_freq, reserved, dedupe=False),
            "'<unk>' must be index 0, before the reserved tokens":
                [*reserved, "<unk>", *_vocab_variant(tokens, min_freq, reserved)[1 + len(reserved):]],
        }
        expect_equal(got, expected, f"the vocabulary of {name}", mistakes=mistakes)
    return "equals Vocab(...).idx_to_token on characters, words, reserved tokens, a high min_freq and an empty text"


def _sequential_reference(corpus: list[int], batch_size: int, num_steps: int, offset: int) -> Batches:
    return list(seq_data_iter_sequential(corpus, batch_size, num_steps, offset=offset))


def _consecutive_blocks(corpus: list[int], batch_size: int, num_steps: int, offset: int) -> Batches:
    data = torch.tensor(corpus[offset:], dtype=torch.long)
    block = batch_size * num_steps
    count = len(_sequential_reference(corpus, batch_size, num_steps, offset))
    return [(data[i * block:(i + 1) * block].reshape(batch_size, num_steps),
             data[i * block + 1:(i + 1) * block + 1].reshape(batch_size, num_steps)) for i in range(count)]


def _same_batches(got: Any, expected: Batches) -> bool:
    try:
        return len(got) == len(expected) and all(
            isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == ex.shape
            and y.shape == ey.shape and torch.equal(x.long(), ex) and torch.equal(y.long(), ey)
            for (x, y), (ex, ey) in zip(got, expected, strict=True))
    except (TypeError, ValueError):
        return False


@checks("14.2")
def sequential_partitioning(sequential_batches: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(14)
    random_text = torch.randint(0, 28, (200,), generator=g).tolist()
    cases = [
        ("corpus 0..34, batch_size=2, num_steps=5, offset=0", list(range(35)), 2, 5, 0),
        ("corpus 0..34, batch_size=2, num_steps=5, offset=3", list(range(35)), 2, 5, 3),
        ("corpus 0..99, batch_size=3, num_steps=6, offset=5", list(range(100)), 3, 6, 5),
        ("a random corpus of 200 tokens, batch_size=4, num_steps=6, offset=1", random_text, 4, 6, 1),
        ("corpus 0..29, batch_size=1, num_steps=7, offset=2", list(range(30)), 1, 7, 2),
    ]
    for name, corpus, batch_size, num_steps, offset in cases:
        got = sequential_batches(list(corpus), batch_size, num_steps, offset)
        expected = _sequential_reference(corpus, batch_size, num_steps, offset)
        if _same_batches(got, expected):
            continue
        mistakes = {
            "the targets Y are not the inputs shifted by one token": [(x, x) for x, _ in expected],
            "row i of a minibatch does not continue row i of the previous one: the text was cut into "
            "consecutive blocks of batch_size × num_steps tokens instead of batch_size long rows":
                _consecutive_blocks(corpus, batch_size, num_steps, offset),
            "the offset was ignored (the batches start at corpus[0])":
                _sequential_reference(corpus, batch_size, num_steps, 0),
        }
        for mistake, value in mistakes.items():
            if _same_batches(got, value):
                raise Wrong(f"{name}: {mistake}")
        try:
            count = len(got)
        except TypeError:
            raise Wrong(f"{name}: return a list of (X, Y) pairs, got {describe(got)}") from None
        if count != len(expected):
            raise Wrong(f"{name}: expected {len(expected)} minibatches, got {count} (drop an incomplete "
                        f"last chunk of fewer than num_steps columns)")
        for k, (pair, (ex, ey)) in enumerate(zip(got, expected, strict=True)):
            x, y = pair
            expect_equal(torch.as_tensor(x).long(), ex, f"{name}: X of minibatch {k}")
            expect_equal(torch.as_tensor(y).long(), ey, f"{name}: Y of minibatch {k}")
        raise Wrong(f"{name}: the minibatches differ from the expected ones")
    return "equals seq_data_iter_sequential on five corpora and offsets, batch size 1 included"


def _ppl_variants(batches: Batches) -> dict[str, float]:
    losses = [F.cross_entropy(lg.reshape(-1, lg.shape[-1]).double(), t.reshape(-1), reduction="none")
              for lg, t in batches]
    total = sum(float(loss.sum()) for loss in losses)
    count = sum(loss.numel() for loss in losses)
    return {
        "right": math.exp(total / count),
        "the minibatches were weighted equally (mean of the per-batch mean losses), not by their "
        "numbers of tokens": math.exp(sum(float(loss.mean()) for loss in losses) / len(losses)),
        "averaged the per-batch perplexities instead of exponentiating the mean loss per token":
            sum(math.exp(float(loss.mean())) for loss in losses) / len(losses),
        "averaged the per-token values exp(−log p) instead of exponentiating the mean of −log p":
            sum(float(loss.exp().sum()) for loss in losses) / count,
    }


@checks("14.3")
def whole_text_perplexity(corpus_perplexity: Callable[[Batches], Any]) -> str:
    g = torch.Generator().manual_seed(143)
    V = 9

    def batch(rows: int, steps: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        return (scale * torch.randn(rows, steps, V, generator=g),
                torch.randint(0, V, (rows, steps), generator=g))

    cases = [
        ("three minibatches of 4 × 10, 4 × 10 and 2 × 3 tokens", [batch(4, 10, 1.0), batch(4, 10, 1.0),
                                                                   batch(2, 3, 6.0)]),
        ("a short first minibatch (1 × 2 tokens) and a long one (5 × 12)", [batch(1, 2, 5.0), batch(5, 12, 0.5)]),
        ("one minibatch of a single token", [batch(1, 1, 2.0)]),
    ]
    for name, batches in cases:
        got = corpus_perplexity([(lg.clone(), t.clone()) for lg, t in batches])
        variants = _ppl_variants(batches)
        expected = variants.pop("right")
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise Wrong(f"{name}: return one number, got {describe(got)}")
            got = got.detach().reshape(())
        expect_close(got, expected, f"the perplexity of {name}", rtol=1e-5, mistakes=variants)
    return "exp(mean −log p per token) over minibatches of different sizes, three corpora"
