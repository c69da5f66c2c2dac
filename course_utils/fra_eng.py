"""The English–French sentence pairs shipped in ``data/fra-eng`` (Tatoeba/ManyThings).

* :func:`read_fra_eng` → the raw ``English<TAB>French`` lines; :func:`preprocess_nmt` and
  :func:`tokenize_nmt` → word tokens of both sides.
* :func:`load_fra_eng` → the token lists of the first ``num_examples`` pairs.
* :func:`fra_eng_loaders` → an :class:`NMTData`: train/validation batches
  ``(src, src_valid_len, tgt_input, tgt, tgt_valid_len)`` and both vocabularies (with
  ``<pad>``, ``<bos>``, ``<eos>``), sequences truncated/padded to ``num_steps``.

Introduced in ``notebooks/18_seq2seq_beam_search.ipynb``.
Copy with: ``text.py``, ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``cores.py``,
``settings.py``.

>>> data = fra_eng_loaders(batch_size=4, num_steps=6, num_examples=100)
>>> src, src_len, tgt_in, tgt, tgt_len = next(iter(data.train_iter))
>>> tuple(src.shape), data.tgt_vocab.to_tokens(int(tgt_in[0, 0]))
((4, 6), '<bos>')
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import torch

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import ensure_file, read_data_bytes
    from .loaders import tensor_loader
    from .text import Vocab, build_array_nmt
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from datafiles import ensure_file, read_data_bytes
    from loaders import tensor_loader
    from text import Vocab, build_array_nmt

__all__ = ["SPECIALS", "read_fra_eng", "preprocess_nmt", "tokenize_nmt", "load_fra_eng", "NMTData",
           "fra_eng_loaders"]

SPECIALS = ("<pad>", "<bos>", "<eos>")


def read_fra_eng(root: str | os.PathLike[str] | None = None) -> str:
    """The English–French pairs shipped as ``data/fra-eng/fra.txt.gz`` (``English<TAB>French`` lines)."""
    return read_data_bytes(ensure_file("fra-eng/fra.txt.gz", root)).decode("utf-8")


def preprocess_nmt(text: str) -> str:
    """Replace non-breaking spaces, lower-case, and put a space before ``, . ! ?``."""
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    out = []
    for i, char in enumerate(text):
        if i > 0 and char in ",.!?" and text[i - 1] != " ":
            out.append(" ")
        out.append(char)
    return "".join(out)


def tokenize_nmt(text: str, num_examples: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """Word tokens of the source and target side of the first ``num_examples`` pairs."""
    source, target = [], []
    for i, line in enumerate(text.split("\n")):
        if num_examples is not None and i >= num_examples:
            break
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        source.append(parts[0].split())
        target.append(parts[1].split())
    return source, target


def load_fra_eng(num_examples: int | None = None, root: str | os.PathLike[str] | None = None
                 ) -> tuple[list[list[str]], list[list[str]]]:
    """English and French word tokens of the first ``num_examples`` pairs (all by default)."""
    return tokenize_nmt(preprocess_nmt(read_fra_eng(root)), num_examples)


@dataclass
class NMTData:
    """What :func:`fra_eng_loaders` returns."""

    train_iter: Any
    val_iter: Any
    src_vocab: Vocab
    tgt_vocab: Vocab
    val_pairs: list[tuple[list[str], list[str]]]
    num_steps: int


def fra_eng_loaders(
    batch_size: int,
    num_steps: int,
    num_examples: int = 600,
    *,
    val_fraction: float = 0.1,
    min_freq: int = 2,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
) -> NMTData:
    """Batches ``(src, src_valid_len, tgt_input, tgt_label, tgt_valid_len)`` of the first pairs.

    ``tgt_input`` is ``<bos>`` followed by the target shifted right (teacher forcing), and
    ``tgt_label`` the target itself. A random ``val_fraction`` of the pairs is held out (fixed by
    ``seed``); vocabularies are built from the training pairs only.
    """
    if batch_size <= 0 or num_steps <= 0 or num_examples <= 1:
        raise ValueError("batch_size and num_steps must be positive and num_examples > 1")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    source, target = load_fra_eng(num_examples, root)
    order = list(range(len(source)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(order) * val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    src_vocab = Vocab([source[i] for i in train_idx], min_freq, SPECIALS)
    tgt_vocab = Vocab([target[i] for i in train_idx], min_freq, SPECIALS)

    def arrays(indices: list[int]) -> tuple[torch.Tensor, ...]:
        src, src_len = build_array_nmt([source[i] for i in indices], src_vocab, num_steps)
        tgt, tgt_len = build_array_nmt([target[i] for i in indices], tgt_vocab, num_steps)
        bos = torch.full((len(indices), 1), tgt_vocab["<bos>"], dtype=torch.long)
        return src, src_len, torch.cat([bos, tgt[:, :-1]], dim=1), tgt, tgt_len

    return NMTData(
        train_iter=tensor_loader(*arrays(train_idx), batch_size=batch_size, shuffle=True,
                                 generator=torch.Generator().manual_seed(seed)),
        val_iter=tensor_loader(*arrays(val_idx), batch_size=batch_size),
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        val_pairs=[(source[i], target[i]) for i in val_idx],
        num_steps=num_steps,
    )
