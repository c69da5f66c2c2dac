"""Sequence-to-sequence models: the masked loss, training, decoding (greedy, beam) and BLEU.

Models follow one interface (see :class:`Seq2SeqModel`):

* ``net(src, src_valid_len, tgt_input)`` → logits ``(batch, steps, tgt_vocab)`` (teacher forcing);
* ``net.init_decoding(src, src_valid_len)`` → a decoder state for one source sentence;
* ``net.decode_step(tokens, state)`` → ``(logits (batch, tgt_vocab), new_state)``.

:func:`train_seq2seq` is :func:`training.fit` with a teacher-forced step and the
:func:`masked_cross_entropy` loss. Decoding (:func:`greedy_search`, :func:`beam_search`) only
needs a step function ``step(token, state) -> (log_probs over the vocabulary, state)``, so it
can be tested on toy models; :func:`translate` builds that from a model. Batches come from
``fra_eng.fra_eng_loaders`` or any loader of ``(src, src_valid_len, tgt_input, tgt, tgt_valid_len)``.

Introduced in ``notebooks/18_seq2seq_beam_search.ipynb``.
Copy with: ``attention.py``, ``text.py``, ``datafiles.py``, ``training.py``, ``checkpoints.py``,
``atomic_write.py``, ``plotting.py``, ``settings.py``, ``fast_settings.py``.

>>> bleu("il est calme .".split(), "il est calme .".split())
1.0
>>> table = torch.log_softmax(torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 2.0, 1.0]]), -1)
>>> greedy_search(lambda token, state: (table[token], state), None, bos=2, eos=0, max_len=5)[0]
[1]
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

if __package__:  # part of course_utils (or of your own package)
    from .attention import sequence_mask
    from .text import Vocab, build_array_nmt
    from .training import ClipGradNorm, FitOptions, History, Throughput, fit_with, model_device
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from attention import sequence_mask
    from text import Vocab, build_array_nmt
    from training import ClipGradNorm, FitOptions, History, Throughput, fit_with, model_device
if TYPE_CHECKING:  # only for the type checker: typing.Unpack for **kwargs needs Python 3.12
    from typing_extensions import Unpack

__all__ = [
    "masked_cross_entropy", "Seq2SeqModel", "train_seq2seq", "evaluate_seq2seq_loss",
    "greedy_search", "beam_search", "translate", "bleu",
]


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


def evaluate_seq2seq_loss(net: nn.Module, data_iter: Iterable[tuple[torch.Tensor, ...]],
                          device: torch.device | str | None = None) -> float:
    """Mean masked cross-entropy per valid target token over a dataset (eval mode)."""
    device = model_device(net, device)
    was_training = net.training
    net.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for batch in data_iter:
                src, src_len, tgt_in, tgt, tgt_len = (t.to(device) for t in batch)
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
    **fit_options: Unpack[FitOptions],
) -> History:
    """Teacher-forced training with the masked loss (:func:`training.fit`); return the history.

    Per epoch the history holds ``train_loss`` (per valid target token), ``val_loss`` (when
    ``val_iter`` is given), ``tokens_per_sec`` and ``seconds``. ``grad_clip`` clips the global
    gradient norm (``None``: no clipping). Every option of :func:`training.fit` (``FitOptions``:
    ``scheduler``, ``scheduler_interval``, ``callbacks``, ``checkpoint_path``, ...) goes to it.
    """
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
    device = model_device(net, device)
    net.to(device)

    def step(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
        src, src_len, tgt_in, tgt, tgt_len = (t.to(device, non_blocking=True) for t in batch)
        return masked_cross_entropy(model(src, src_len, tgt_in), tgt, tgt_len), int(tgt_len.sum())

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {} if val_iter is None else {"val_loss": evaluate_seq2seq_loss(model, val_iter, device)}

    extras: list[Any] = [Throughput("tokens_per_sec")]
    if grad_clip is not None:
        extras.append(ClipGradNorm(grad_clip))
    return fit_with(net, train_iter, step, num_epochs, optimizer, fit_options, evaluate=evaluate, callbacks=extras)


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
            for value, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                expansions.append((tokens, logp + value, new_state, token))
        expansions.sort(key=lambda e: -e[1])
        live = []
        for tokens, logp, st, token in expansions[:beam_size]:
            if token == eos:
                candidates.append((tokens, logp, len(tokens) + 1))
            elif t == max_len - 1:
                candidates.append(([*tokens, token], logp, len(tokens) + 1))
            else:
                live.append(([*tokens, token], logp, st, token))
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
    """Translate one (preprocessed) sentence; ``beam_size=1`` is greedy decoding.

    ``net`` follows :class:`Seq2SeqModel`: it has ``init_decoding`` and ``decode_step``.
    """
    device = model_device(net, device)
    model = cast(Seq2SeqModel, net)  # an nn.Module with the two decoding methods
    src, src_len = build_array_nmt([sentence.lower().split()], src_vocab, num_steps)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            state = model.init_decoding(src.to(device), src_len.to(device))

            def step(token: int, st: Any) -> tuple[torch.Tensor, Any]:
                logits, st = model.decode_step(torch.tensor([token], device=device), st)
                return F.log_softmax(logits[0].float(), dim=-1), st

            bos, eos = tgt_vocab["<bos>"], tgt_vocab["<eos>"]
            if beam_size == 1:
                tokens, _ = greedy_search(step, state, bos, eos, num_steps)
            else:
                tokens, _ = beam_search(step, state, bos, eos, num_steps, beam_size, alpha)
    finally:
        net.train(was_training)
    return tgt_vocab.to_tokens(tokens)


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
