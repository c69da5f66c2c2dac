"""Text for language models: The Time Machine, tokenization, a vocabulary, minibatch sampling.

* :func:`read_time_machine` / :func:`preprocess` / :func:`tokenize` — raw text to tokens.
* :class:`Vocab` — tokens ↔ indices, sorted by frequency, with ``<unk>`` and reserved tokens.
* :func:`seq_data_iter_random` / :func:`seq_data_iter_sequential` — (input, target) minibatches
  of ``num_steps`` tokens, with random or sequential (state-carrying) partitioning.
* :func:`language_model_data` — train/validation iterators and the vocabulary in one call; the
  last ``val_fraction`` of the book is held out, so perplexity is measured on unseen text.
* :func:`truncate_pad` / :func:`build_array_nmt` — token lines to a fixed-length index array
  with ``<eos>`` and padding, and the valid lengths (the input of a seq2seq model).

Introduced in ``notebooks/14_text_and_language_models.ipynb``.
Copy with: ``datafiles.py``, ``atomic_write.py``, ``settings.py``.

>>> train_iter, val_iter, vocab = language_model_data(batch_size=32, num_steps=35)
>>> X, Y = next(iter(train_iter))
>>> X.shape, len(vocab)
(torch.Size([32, 35]), 28)
"""

from __future__ import annotations

import collections
import os
import random
import re
from typing import Any, Hashable, Iterable, Iterator, Sequence, overload

import torch

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import ensure_file
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from datafiles import ensure_file

__all__ = [
    "read_time_machine",
    "preprocess",
    "tokenize",
    "count_corpus",
    "Vocab",
    "seq_data_iter_random",
    "seq_data_iter_sequential",
    "SeqDataLoader",
    "load_corpus_time_machine",
    "language_model_data",
    "truncate_pad",
    "build_array_nmt",
]


def read_time_machine(root: str | os.PathLike[str] | None = None) -> str:
    """The raw text of H. G. Wells' *The Time Machine* shipped in ``data/timemachine``."""
    return ensure_file("timemachine/timemachine.txt", root).read_text(encoding="utf-8")


def preprocess(text: str) -> str:
    """Lower-case and replace every run of non-letters with one space (d2l's preprocessing)."""
    return re.sub("[^A-Za-z]+", " ", text).lower().strip()


def tokenize(text: str, level: str = "char") -> list[str]:
    """Split ``text`` into characters (``level="char"``) or words (``level="word"``)."""
    if level == "char":
        return list(text)
    if level == "word":
        return text.split()
    raise ValueError(f"level must be 'char' or 'word', got {level!r}")


def count_corpus(tokens: Iterable[Any]) -> collections.Counter[Hashable]:
    """Token frequencies; a list of token *lists* (lines) is flattened first.

    Tokens may be any hashable value, e.g. tuples for n-grams: ``count_corpus([("a", "b")])``.
    """
    items = list(tokens)
    if items and isinstance(items[0], list):
        items = [tok for line in items for tok in line]
    return collections.Counter(items)


class Vocab:
    """Map tokens to indices and back.

    Index 0 is ``<unk>``; then ``reserved_tokens`` (e.g. ``<pad>``, ``<bos>``, ``<eos>``) in the
    given order; then every token seen at least ``min_freq`` times, most frequent first (ties
    broken by the token's text, so the order is reproducible). Unknown tokens map to ``<unk>``.
    ``vocab[list_of_tokens]`` maps a list to a list of indices; anything else (a string, a
    tuple n-gram) is one token and gives one index.

    >>> v = Vocab(list("abracadabra"), reserved_tokens=["<pad>"])
    >>> v.idx_to_token[:4], v["a"], v["z"], v.to_tokens([2, 3])
    (['<unk>', '<pad>', 'a', 'b'], 2, 0, ['a', 'b'])
    """

    def __init__(
        self,
        tokens: Iterable[Any] = (),
        min_freq: int = 0,
        reserved_tokens: Sequence[str] = (),
    ) -> None:
        if min_freq < 0:
            raise ValueError(f"min_freq must be >= 0, got {min_freq}")
        reserved = list(reserved_tokens)
        if len(set(reserved)) != len(reserved) or "<unk>" in reserved:
            raise ValueError(f"reserved tokens must be distinct and not '<unk>': {reserved}")
        counter = count_corpus(tokens)
        self.token_freqs: list[tuple[Any, int]] = sorted(
            counter.items(), key=lambda kv: (-kv[1], str(kv[0]))
        )
        self.idx_to_token: list[Any] = ["<unk>", *reserved]
        known = set(self.idx_to_token)
        for token, freq in self.token_freqs:
            if freq >= min_freq and token not in known:
                self.idx_to_token.append(token)
                known.add(token)
        self.token_to_idx: dict[Hashable, int] = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self.token_to_idx

    @overload
    def __getitem__(self, tokens: list[Any]) -> list[int]: ...
    @overload
    def __getitem__(self, tokens: Hashable) -> int: ...

    def __getitem__(self, tokens: Hashable | list[Any]) -> int | list[int]:
        if isinstance(tokens, list):
            return [self.token_to_idx.get(t, self.unk) for t in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    @overload
    def to_tokens(self, indices: int) -> Any: ...
    @overload
    def to_tokens(self, indices: Sequence[int] | torch.Tensor) -> list[Any]: ...

    def to_tokens(self, indices: int | Sequence[int] | torch.Tensor) -> Any:
        """Tokens for indices (one index gives one token, a list or 1-D tensor a list);
        raises ``IndexError`` naming an index outside the vocabulary."""
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        if isinstance(indices, int):
            if not 0 <= indices < len(self):
                raise IndexError(f"index {indices} is outside the vocabulary (size {len(self)})")
            return self.idx_to_token[indices]
        return [self.to_tokens(int(i)) for i in indices]

    @property
    def unk(self) -> int:
        return 0


def _check_sampling_args(corpus: Sequence[int], batch_size: int, num_steps: int) -> None:
    if batch_size <= 0 or num_steps <= 0:
        raise ValueError(f"batch_size and num_steps must be positive, got {batch_size}, {num_steps}")
    if len(corpus) < batch_size * num_steps + 1:
        raise ValueError(
            f"the corpus has {len(corpus)} tokens, too few for one batch of {batch_size} × "
            f"{num_steps} tokens (+1 for the targets)"
        )


def seq_data_iter_random(
    corpus: Sequence[int], batch_size: int, num_steps: int, rng: random.Random | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random partitioning: subsequences start at a random offset and come in random order.

    Adjacent minibatches are *not* adjacent in the text, so a model's state must be reset
    for every minibatch. Targets are the inputs shifted by one token.
    """
    _check_sampling_args(corpus, batch_size, num_steps)
    rng = rng or random.Random()
    corpus = corpus[rng.randint(0, num_steps - 1):]
    num_subseqs = (len(corpus) - 1) // num_steps
    starts = list(range(0, num_subseqs * num_steps, num_steps))
    rng.shuffle(starts)
    data = torch.as_tensor(corpus, dtype=torch.long)
    for i in range(0, batch_size * (num_subseqs // batch_size), batch_size):
        idx = torch.tensor(starts[i:i + batch_size])
        offsets = idx[:, None] + torch.arange(num_steps)
        yield data[offsets], data[offsets + 1]


def seq_data_iter_sequential(
    corpus: Sequence[int], batch_size: int, num_steps: int, rng: random.Random | None = None,
    offset: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential partitioning: row ``i`` of batch ``t+1`` continues row ``i`` of batch ``t``.

    So a model may carry its hidden state from one minibatch to the next (detaching it). The
    start offset is random (drawn from ``rng``) unless ``offset`` is given.
    """
    _check_sampling_args(corpus, batch_size, num_steps)
    if offset is None:
        offset = (rng or random.Random()).randint(0, num_steps)
    elif not 0 <= offset <= num_steps:
        raise ValueError(f"offset must be in [0, num_steps], got {offset}")
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    if num_tokens < batch_size * num_steps:
        offset = 0
        num_tokens = ((len(corpus) - 1) // batch_size) * batch_size
    data = torch.as_tensor(corpus, dtype=torch.long)
    Xs = data[offset:offset + num_tokens].reshape(batch_size, -1)
    Ys = data[offset + 1:offset + 1 + num_tokens].reshape(batch_size, -1)
    for i in range(0, (Xs.shape[1] // num_steps) * num_steps, num_steps):
        yield Xs[:, i:i + num_steps], Ys[:, i:i + num_steps]


class SeqDataLoader:
    """An iterable over language-model minibatches; ``sequential`` tells training loops
    whether the hidden state may be carried over between batches."""

    def __init__(
        self,
        corpus: Sequence[int],
        batch_size: int,
        num_steps: int,
        use_random_iter: bool,
        seed: int | None = None,
        fixed_offset: bool = False,
    ) -> None:
        _check_sampling_args(corpus, batch_size, num_steps)
        self.corpus, self.batch_size, self.num_steps = corpus, batch_size, num_steps
        self.sequential = not use_random_iter
        if fixed_offset and not self.sequential:
            raise ValueError("fixed_offset only applies to sequential partitioning")
        self.fixed_offset = fixed_offset
        self.rng = random.Random(seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.sequential:
            return seq_data_iter_random(self.corpus, self.batch_size, self.num_steps, self.rng)
        return seq_data_iter_sequential(self.corpus, self.batch_size, self.num_steps, self.rng,
                                        offset=0 if self.fixed_offset else None)

    def __len__(self) -> int:
        return max(1, (len(self.corpus) - self.num_steps) // (self.batch_size * self.num_steps))


def load_corpus_time_machine(
    level: str = "char", max_tokens: int = -1, root: str | os.PathLike[str] | None = None
) -> tuple[list[int], Vocab]:
    """Token indices of the whole (preprocessed) book and its vocabulary."""
    tokens = tokenize(preprocess(read_time_machine(root)), level)
    vocab = Vocab(tokens)
    corpus = vocab[tokens]
    if max_tokens > 0:
        corpus = corpus[:max_tokens]
    return corpus, vocab


def language_model_data(
    batch_size: int,
    num_steps: int,
    *,
    use_random_iter: bool = False,
    level: str = "char",
    max_tokens: int = -1,
    val_fraction: float = 0.1,
    seed: int | None = 0,
    root: str | os.PathLike[str] | None = None,
) -> tuple[SeqDataLoader, SeqDataLoader, Vocab]:
    """Train and validation iterators over The Time Machine, and the vocabulary.

    The first ``1 - val_fraction`` of the (possibly truncated) corpus is for training, the rest
    for validation (always read sequentially from its start, so every evaluation sees the same
    batches). ``max_tokens`` keeps only the first tokens (smoke mode).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    corpus, vocab = load_corpus_time_machine(level, max_tokens, root)
    split = int(len(corpus) * (1 - val_fraction))
    train = SeqDataLoader(corpus[:split], batch_size, num_steps, use_random_iter, seed)
    val_batch = max(1, min(batch_size, (len(corpus) - split - 1) // num_steps))
    val = SeqDataLoader(corpus[split:], val_batch, num_steps, False, seed, fixed_offset=True)
    return train, val, vocab


def truncate_pad(line: Sequence[int], num_steps: int, padding_token: int) -> list[int]:
    """Cut ``line`` to ``num_steps`` tokens or pad it with ``padding_token`` up to that length."""
    if num_steps <= 0:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    line = list(line)
    return line[:num_steps] if len(line) > num_steps else line + [padding_token] * (num_steps - len(line))


def build_array_nmt(lines: Sequence[Sequence[str]], vocab: Vocab, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index each line, append ``<eos>``, truncate/pad to ``num_steps`` with ``<pad>``; return the
    ``(lines, num_steps)`` array and the valid (non-padding) length of each line."""
    eos, pad = vocab["<eos>"], vocab["<pad>"]
    rows = [truncate_pad([*vocab[list(line)], eos], num_steps, pad) for line in lines]
    array = torch.tensor(rows, dtype=torch.long)
    valid_len = (array != pad).sum(dim=1)
    return array, valid_len
