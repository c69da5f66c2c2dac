"""Machine translation helpers: English–French data, masking, seq2seq training, decoding, BLEU.

Data: :func:`read_fra_eng` → :func:`preprocess_nmt` → :func:`tokenize_nmt` → :func:`load_data_nmt`
(vocabularies with ``<pad>``, ``<bos>``, ``<eos>``; sequences truncated/padded to ``num_steps``
with their valid lengths; a train/validation split).

Models follow one interface (see :class:`Seq2SeqModel`):

* ``net(src, src_valid_len, tgt_input)`` → logits ``(batch, steps, tgt_vocab)`` (teacher forcing);
* ``net.init_decoding(src, src_valid_len)`` → a decoder state for one source sentence;
* ``net.decode_step(tokens, state)`` → ``(logits (batch, tgt_vocab), new_state)``.

Decoding (:func:`greedy_search`, :func:`beam_search`) only needs a step function
``step(token, state) -> (log_probs over the vocabulary, state)``, so it can be tested on toy
models. :func:`translate` builds that from a model.

Copy with ``datafiles.py``, ``loaders.py``, ``text.py`` (the ``Vocab``), ``plotting.py`` and
``checkpoints.py``.
"""

from __future__ import annotations

import collections
import gzip
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import resume_if_requested, save_checkpoint, training_state
from .datafiles import ensure_file
from .loaders import tensor_loader
from .text import Vocab

__all__ = [
    "read_fra_eng", "preprocess_nmt", "tokenize_nmt", "truncate_pad", "build_array_nmt",
    "NMTData", "load_data_nmt", "sequence_mask", "masked_softmax", "masked_cross_entropy",
    "Seq2SeqModel", "Seq2SeqHistory", "train_seq2seq", "evaluate_seq2seq_loss",
    "greedy_search", "beam_search", "translate", "bleu",
]

SPECIALS = ("<pad>", "<bos>", "<eos>")


def read_fra_eng(root: str | os.PathLike[str] | None = None) -> str:
    """The English–French pairs shipped as ``data/fra-eng/fra.txt.gz`` (``English<TAB>French`` lines)."""
    return gzip.decompress(ensure_file("fra-eng/fra.txt.gz", root).read_bytes()).decode("utf-8")


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


def truncate_pad(line: Sequence[int], num_steps: int, padding_token: int) -> list[int]:
    """Cut ``line`` to ``num_steps`` tokens or pad it with ``padding_token`` up to that length."""
    if num_steps <= 0:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    line = list(line)
    return line[:num_steps] if len(line) > num_steps else line + [padding_token] * (num_steps - len(line))


def build_array_nmt(lines: Sequence[Sequence[str]], vocab: Vocab, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index, append ``<eos>``, truncate/pad each line; return the array and the valid lengths."""
    rows = [truncate_pad(vocab[list(line)] + [vocab["<eos>"]], num_steps, vocab["<pad>"])  # type: ignore[operator]
            for line in lines]
    array = torch.tensor(rows, dtype=torch.long)
    valid_len = (array != vocab["<pad>"]).sum(dim=1)
    return array, valid_len


@dataclass
class NMTData:
    """What :func:`load_data_nmt` returns."""

    train_iter: Any
    val_iter: Any
    src_vocab: Vocab
    tgt_vocab: Vocab
    val_pairs: list[tuple[list[str], list[str]]]
    num_steps: int


def load_data_nmt(
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
    source, target = tokenize_nmt(preprocess_nmt(read_fra_eng(root)), num_examples)
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


def _check_valid_len(valid_len: torch.Tensor, maxlen: int, batch: int) -> torch.Tensor:
    valid_len = torch.as_tensor(valid_len)
    if valid_len.shape[0] != batch:
        raise ValueError(f"valid lengths {tuple(valid_len.shape)} do not match batch size {batch}")
    if bool((valid_len > maxlen).any()) or bool((valid_len < 0).any()):
        raise ValueError(
            f"valid lengths must be in [0, {maxlen}] (the sequence length), got "
            f"{valid_len.min().item()}..{valid_len.max().item()}"
        )
    return valid_len


def sequence_mask(X: torch.Tensor, valid_len: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Return ``X`` (batch, steps, ...) with positions ``>= valid_len`` set to ``value``."""
    if X.dim() < 2:
        raise ValueError(f"sequence_mask needs (batch, steps, ...), got {tuple(X.shape)}")
    valid_len = _check_valid_len(valid_len, X.shape[1], X.shape[0]).to(X.device)
    mask = torch.arange(X.shape[1], device=X.device)[None, :] < valid_len[:, None]
    mask = mask.reshape(mask.shape + (1,) * (X.dim() - 2))
    return torch.where(mask, X, torch.as_tensor(value, dtype=X.dtype, device=X.device))


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of ``X`` (batch, queries, keys), ignoring keys past the valid length.

    ``valid_lens`` is ``(batch,)`` (one length per example) or ``(batch, queries)``. Each row sums
    to 1 over its valid keys and is 0 elsewhere (a row with valid length 0 is all zeros).
    """
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    if X.dim() != 3:
        raise ValueError(f"masked_softmax needs (batch, queries, keys), got {tuple(X.shape)}")
    B, Q, K = X.shape
    valid_lens = torch.as_tensor(valid_lens, device=X.device)
    if valid_lens.dim() == 1:
        valid_lens = _check_valid_len(valid_lens, K, B)[:, None].expand(B, Q)
    elif tuple(valid_lens.shape) == (B, Q):
        _check_valid_len(valid_lens.reshape(-1), K, B * Q)
    else:
        raise ValueError(f"valid_lens must be (batch,) or (batch, queries), got {tuple(valid_lens.shape)}")
    mask = torch.arange(K, device=X.device)[None, None, :] < valid_lens[..., None]
    weights = F.softmax(X.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(weights, nan=0.0)  # rows with no valid key


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, valid_len: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the valid (non-padding) target positions only."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not fit labels {tuple(labels.shape)}")
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    weights = sequence_mask(torch.ones_like(per_token), valid_len)
    total = weights.sum()
    if total == 0:
        raise ValueError("masked_cross_entropy: no valid target positions in the batch")
    return (per_token * weights).sum() / total


class Seq2SeqModel(Protocol):
    def __call__(self, src: torch.Tensor, src_valid_len: torch.Tensor, tgt_input: torch.Tensor) -> torch.Tensor: ...
    def init_decoding(self, src: torch.Tensor, src_valid_len: torch.Tensor) -> Any: ...
    def decode_step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@dataclass
class Seq2SeqHistory:
    """Per-epoch losses and speed of :func:`train_seq2seq`."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    tokens_per_sec: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[Any]]:
        return asdict(self)


def evaluate_seq2seq_loss(net: nn.Module, data_iter: Iterable[tuple[torch.Tensor, ...]],
                          device: torch.device | str | None = None) -> float:
    """Mean masked cross-entropy per valid target token over a dataset (eval mode)."""
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for src, src_len, tgt_in, tgt, tgt_len in data_iter:
                src, src_len, tgt_in, tgt, tgt_len = (t.to(device) for t in (src, src_len, tgt_in, tgt, tgt_len))
                n = int(tgt_len.sum())
                total += float(masked_cross_entropy(net(src, src_len, tgt_in), tgt, tgt_len)) * n
                count += n
    finally:
        net.train(was_training)
    if count == 0:
        raise ValueError("evaluate_seq2seq_loss got an empty dataset")
    return total / count


def train_seq2seq(
    net: nn.Module,
    train_iter: Iterable[tuple[torch.Tensor, ...]],
    val_iter: Iterable[tuple[torch.Tensor, ...]] | None,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    device: torch.device | str | None = None,
    *,
    grad_clip: float | None = 1.0,
    scheduler: Any = None,
    progress: bool | None = None,
    plot: bool = True,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, Seq2SeqHistory], None] | None = None,
) -> Seq2SeqHistory:
    """Teacher-forced training with the masked loss and gradient clipping; returns the history.

    ``scheduler`` is stepped once per epoch. ``checkpoint_path`` saves model, optimizer,
    scheduler, RNG states (global and the loader's) and history atomically after every epoch;
    ``resume=True`` continues from that file if it exists, giving the same parameters as an
    uninterrupted run. ``on_epoch_end(epoch, history)`` is called after each epoch.
    """
    if not isinstance(num_epochs, int) or num_epochs <= 0:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net.to(device)
    done, saved = resume_if_requested(checkpoint_path, resume, net, optimizer, scheduler,
                                      loader=train_iter, map_location=device)
    history = Seq2SeqHistory(**saved)

    from .plotting import TrainingMonitor

    monitor = TrainingMonitor(legend=["train", "validation"], ylabel="loss per token", num_epochs=num_epochs,
                              batches_per_epoch=train_iter, done_epochs=done,
                              progress=progress, plot=plot)
    for i, e in enumerate(history.epoch):
        monitor.epoch(e, {"train": history.train_loss[i], "validation": history.val_loss[i]})

    try:
        for epoch in range(done + 1, num_epochs + 1):
            net.train()
            loss_sum, tokens, batches = 0.0, 0, 0
            tic = time.perf_counter()
            for src, src_len, tgt_in, tgt, tgt_len in train_iter:
                src, src_len, tgt_in, tgt, tgt_len = (t.to(device) for t in (src, src_len, tgt_in, tgt, tgt_len))
                loss = masked_cross_entropy(net(src, src_len, tgt_in), tgt, tgt_len)
                optimizer.zero_grad()
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
                optimizer.step()
                value = float(loss.detach())
                batches += 1
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"the training loss became {value} in epoch {epoch}, batch {batches}; "
                        "try a lower learning rate or gradient clipping (grad_clip=...)")
                n = int(tgt_len.sum())
                loss_sum += value * n
                tokens += n
                monitor.step()
            if tokens == 0:
                raise ValueError("the training data yielded no batches")
            if scheduler is not None:
                scheduler.step()
            seconds = time.perf_counter() - tic
            val_loss = evaluate_seq2seq_loss(net, val_iter, device) if val_iter is not None else None
            history.epoch.append(epoch)
            history.train_loss.append(loss_sum / tokens)
            history.val_loss.append(val_loss)
            history.tokens_per_sec.append(tokens / seconds if seconds > 0 else float("inf"))
            history.seconds.append(seconds)
            monitor.note(epoch=epoch, loss=f"{loss_sum / tokens:.3f}")
            monitor.epoch(epoch, {"train": loss_sum / tokens, "validation": val_loss})
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, training_state(
                    net, optimizer, scheduler, epoch=epoch, history=history.as_dict(), loader=train_iter))
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
    finally:
        monitor.close()
    return history


StepFn = Callable[[int, Any], tuple[torch.Tensor, Any]]


def greedy_search(step: StepFn, state: Any, bos: int, eos: int, max_len: int) -> tuple[list[int], float]:
    """Pick the most likely token at each step; return (tokens without bos/eos, total log P)."""
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    tokens: list[int] = []
    score, token = 0.0, bos
    for _ in range(max_len):
        log_probs, state = step(token, state)
        token = int(log_probs.argmax())
        score += float(log_probs[token])
        if token == eos:
            break
        tokens.append(token)
    return tokens, score


def beam_search(
    step: StepFn, state: Any, bos: int, eos: int, max_len: int, beam_size: int, alpha: float = 0.75
) -> tuple[list[int], float]:
    """Beam search; return the candidate with the best length-normalized score ``log P / L**alpha``.

    Each step expands every live hypothesis and keeps the ``beam_size`` best by total
    log-probability. Only each hypothesis's ``beam_size`` most likely next tokens can be among
    those, so only they are expanded (the same result as expanding the whole vocabulary, at a
    cost independent of its size). A hypothesis that emits ``<eos>`` (or reaches ``max_len`` tokens)
    becomes a candidate. ``L`` counts the generated tokens including ``<eos>``. With
    ``beam_size=1`` this is greedy search; with a beam as large as the number of possible
    sequences it is exhaustive search.
    """
    if beam_size <= 0 or max_len <= 0:
        raise ValueError(f"beam_size and max_len must be positive, got {beam_size}, {max_len}")
    live: list[tuple[list[int], float, Any, int]] = [([], 0.0, state, bos)]
    candidates: list[tuple[list[int], float, int]] = []
    for t in range(max_len):
        expansions = []
        for tokens, logp, st, last in live:
            log_probs, new_state = step(last, st)
            top = torch.topk(log_probs.detach().float().cpu(), min(beam_size, log_probs.shape[0]))
            for value, token in zip(top.values.tolist(), top.indices.tolist()):
                expansions.append((tokens, logp + value, new_state, token))
        expansions.sort(key=lambda e: -e[1])
        live = []
        for tokens, logp, st, token in expansions[:beam_size]:
            if token == eos:
                candidates.append((tokens, logp, len(tokens) + 1))
            elif t == max_len - 1:
                candidates.append((tokens + [token], logp, len(tokens) + 1))
            else:
                live.append((tokens + [token], logp, st, token))
        if not live:
            break
    best = max(candidates, key=lambda c: c[1] / c[2] ** alpha)
    return best[0], best[1] / best[2] ** alpha


def translate(
    net: nn.Module,
    sentence: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    num_steps: int,
    *,
    beam_size: int = 1,
    alpha: float = 0.75,
    device: torch.device | str | None = None,
) -> list[str]:
    """Translate one (preprocessed) sentence; ``beam_size=1`` is greedy decoding."""
    device = torch.device(device) if device is not None else next(net.parameters()).device
    src_tokens = sentence.lower().split()
    src, src_len = build_array_nmt([src_tokens], src_vocab, num_steps)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            state = net.init_decoding(src.to(device), src_len.to(device))  # type: ignore[operator]

            def step(token: int, st: Any) -> tuple[torch.Tensor, Any]:
                logits, st = net.decode_step(torch.tensor([token], device=device), st)  # type: ignore[operator]
                return F.log_softmax(logits[0].float(), dim=-1), st

            bos, eos = tgt_vocab["<bos>"], tgt_vocab["<eos>"]
            if beam_size == 1:
                tokens, _ = greedy_search(step, state, bos, eos, num_steps)  # type: ignore[arg-type]
            else:
                tokens, _ = beam_search(step, state, bos, eos, num_steps, beam_size, alpha)  # type: ignore[arg-type]
    finally:
        net.train(was_training)
    return tgt_vocab.to_tokens(tokens)  # type: ignore[return-value]


def bleu(pred_tokens: Sequence[str], label_tokens: Sequence[str], k: int = 4) -> float:
    """BLEU as in d2l: ``exp(min(0, 1 - len_label/len_pred)) · Π_n p_n^(1/2^n)``, n = 1..k.

    n-grams longer than the prediction are skipped; an empty prediction scores 0. The result
    is in [0, 1]: 1 for a perfect match, 0 when no unigram matches.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    if len_pred == 0 or len_label == 0:
        return 0.0
    score = math.exp(min(0.0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        label_ngrams = collections.Counter(tuple(label_tokens[i:i + n]) for i in range(len_label - n + 1))
        matches = 0
        for i in range(len_pred - n + 1):
            gram = tuple(pred_tokens[i:i + n])
            if label_ngrams[gram] > 0:
                matches += 1
                label_ngrams[gram] -= 1
        score *= (matches / (len_pred - n + 1)) ** (0.5 ** n)
    return score
