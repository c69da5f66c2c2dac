"""Train and sample recurrent language models.

Models follow one interface: ``logits, state = net(X, state)`` with ``X`` of token indices,
shape ``(batch, num_steps)``, ``logits`` of shape ``(batch, num_steps, vocab_size)`` and
``state`` anything made of tensors (``None`` for a fresh start). :class:`RNNLanguageModel` wraps
``nn.RNN``/``nn.GRU``/``nn.LSTM`` this way; a from-scratch model only has to do the same.

* :func:`train_language_model` — carries the state between batches of a sequential loader
  (detached every batch: truncated backpropagation through time), resets it for random
  sampling, clips gradients, reports perplexity (train and held-out validation) and tokens/s,
  with a progress bar and live plot, and returns a :class:`LMHistory`.
* :func:`generate` — continue a prefix greedily or by sampling.

Copy with ``plotting.py`` (for the live plot) and ``checkpoints.py`` (for ``checkpoint_path``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import resume_if_requested, save_checkpoint, training_state

__all__ = [
    "detach_state",
    "RNNLanguageModel",
    "perplexity",
    "evaluate_perplexity",
    "LMHistory",
    "train_language_model",
    "generate",
]

State = Any


def detach_state(state: State) -> State:
    """Detach a state made of tensors (a tensor, or nested tuples/lists of tensors)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"cannot detach a state of type {type(state).__name__}")


class RNNLanguageModel(nn.Module):
    """One-hot inputs → a PyTorch recurrent layer (``batch_first=True``) → a linear output layer.

    ``bidirectional`` layers are accepted for teaching, but cannot generate text: they read
    the future.
    """

    def __init__(self, rnn: nn.RNNBase, vocab_size: int) -> None:
        super().__init__()
        if not rnn.batch_first:
            raise ValueError("RNNLanguageModel expects a recurrent layer built with batch_first=True")
        if rnn.input_size != vocab_size:
            raise ValueError(f"the recurrent layer's input_size is {rnn.input_size}, "
                             f"but inputs are one-hot over {vocab_size} tokens")
        self.rnn = rnn
        self.vocab_size = vocab_size
        directions = 2 if rnn.bidirectional else 1
        self.output = nn.Linear(rnn.hidden_size * directions, vocab_size)

    def forward(self, X: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        if X.dim() != 2:
            raise ValueError(f"expected token indices of shape (batch, num_steps), got {tuple(X.shape)}")
        inputs = F.one_hot(X, self.vocab_size).to(self.output.weight.dtype)
        outputs, state = self.rnn(inputs, state)
        return self.output(outputs), state


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean cross-entropy): 1 for perfect predictions, the vocabulary size for uniform ones."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not fit targets {tuple(targets.shape)}")
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return math.exp(float(loss))


def evaluate_perplexity(
    net: nn.Module, data_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> float:
    """Perplexity over a whole (sequential) dataset, carrying the state, in eval mode."""
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    total, count, state = 0.0, 0, None
    sequential = getattr(data_iter, "sequential", True)
    try:
        with torch.inference_mode():
            for X, Y in data_iter:
                X, Y = X.to(device), Y.to(device)
                logits, new_state = net(X, state if sequential else None)
                state = new_state
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1),
                                               reduction="sum"))
                count += Y.numel()
    finally:
        net.train(was_training)
    if count == 0:
        raise ValueError("evaluate_perplexity got an empty dataset")
    return math.exp(total / count)


@dataclass
class LMHistory:
    """Per-epoch perplexities and speed of :func:`train_language_model`."""

    epoch: list[int] = field(default_factory=list)
    train_ppl: list[float] = field(default_factory=list)
    val_ppl: list[float | None] = field(default_factory=list)
    tokens_per_sec: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[Any]]:
        return asdict(self)

    def __repr__(self) -> str:
        if not self.epoch:
            return "LMHistory(empty)"
        val = self.val_ppl[-1]
        shown = "n/a" if val is None else f"{val:.2f}"
        return (f"LMHistory({len(self.epoch)} epochs: train ppl {self.train_ppl[-1]:.2f}, "
                f"val ppl {shown}, {self.tokens_per_sec[-1]:.0f} tokens/s)")


def train_language_model(
    net: nn.Module,
    train_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    val_iter: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    device: torch.device | str | None = None,
    *,
    grad_clip: float | None = 1.0,
    sequential: bool | None = None,
    scheduler: Any = None,
    eval_every: int = 1,
    progress: bool | None = None,
    plot: bool = True,
    on_epoch_end: Callable[[int, LMHistory], None] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> LMHistory:
    """Train a language model with next-token cross-entropy; return its :class:`LMHistory`.

    ``sequential`` (default: the loader's ``sequential`` attribute) carries the hidden state
    from batch to batch, detached so gradients stop at the batch boundary; otherwise the state
    starts fresh every batch. ``grad_clip`` clips the global gradient norm (``None`` turns it
    off; the mean pre-clipping norm per epoch is recorded). Validation perplexity is computed
    every ``eval_every`` epochs and at the end.

    ``checkpoint_path`` saves model, optimizer, scheduler, RNG states (global and the loader's)
    and history atomically after every epoch; ``resume=True`` continues from that file if it
    exists, giving the same parameters as a run that was never interrupted.
    """
    if not isinstance(num_epochs, int) or num_epochs <= 0:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
    if eval_every <= 0:
        raise ValueError(f"eval_every must be positive, got {eval_every}")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net.to(device)
    if sequential is None:
        sequential = bool(getattr(train_iter, "sequential", False))
    done, saved = resume_if_requested(checkpoint_path, resume, net, optimizer, scheduler,
                                      loader=train_iter, map_location=device)
    history = LMHistory(**saved)

    from .plotting import TrainingMonitor

    monitor = TrainingMonitor(legend=["train", "validation"], ylabel="perplexity", num_epochs=num_epochs,
                              batches_per_epoch=train_iter, done_epochs=done,
                              progress=progress, plot=plot)
    for i, e in enumerate(history.epoch):
        monitor.epoch(e, {"train": history.train_ppl[i], "validation": history.val_ppl[i]})

    try:
        for epoch in range(done + 1, num_epochs + 1):
            net.train()
            state = None
            loss_sum = torch.zeros((), device=device)
            norm_sum, tokens, batches = 0.0, 0, 0
            tic = time.perf_counter()
            for X, Y in train_iter:
                X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True)
                state = detach_state(state) if sequential else None
                logits, state = net(X, state)
                if logits.shape[:-1] != Y.shape:
                    raise ValueError(f"the model returned logits {tuple(logits.shape)} for targets "
                                     f"{tuple(Y.shape)}; expected (batch, num_steps, vocab)")
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                if grad_clip is not None:
                    norm_sum += float(nn.utils.clip_grad_norm_(net.parameters(), grad_clip))
                optimizer.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"the training loss became {value} in epoch {epoch}, batch {batches + 1}; "
                        "try a lower learning rate or gradient clipping (grad_clip=...)"
                    )
                loss_sum += loss.detach() * Y.numel()
                tokens += Y.numel()
                batches += 1
                if batches % 20 == 1:
                    monitor.note(epoch=epoch, ppl=f"{math.exp(value):.2f}")
                monitor.step()
            if tokens == 0:
                raise ValueError("the training data yielded no batches")
            if scheduler is not None:
                scheduler.step()
            seconds = time.perf_counter() - tic
            train_ppl = math.exp(float(loss_sum) / tokens)
            val_ppl = None
            if val_iter is not None and (epoch % eval_every == 0 or epoch == num_epochs):
                val_ppl = evaluate_perplexity(net, val_iter, device)
            history.epoch.append(epoch)
            history.train_ppl.append(train_ppl)
            history.val_ppl.append(val_ppl)
            history.tokens_per_sec.append(tokens / seconds if seconds > 0 else float("inf"))
            history.grad_norm.append(norm_sum / batches if grad_clip is not None else float("nan"))
            monitor.epoch(epoch, {"train": train_ppl, "validation": val_ppl})
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, training_state(
                    net, optimizer, scheduler, epoch=epoch, history=history.as_dict(), loader=train_iter))
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
    finally:
        monitor.close()
    return history


def generate(
    net: nn.Module,
    prefix: Sequence[int],
    num_preds: int,
    *,
    strategy: str = "greedy",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> list[int]:
    """Continue ``prefix`` (token indices) by ``num_preds`` tokens; return the whole sequence.

    ``strategy="greedy"`` takes the most likely token each step; ``"sample"`` draws from the
    softmax of ``logits / temperature`` with ``torch.multinomial``.
    """
    if not prefix:
        raise ValueError("generate needs a non-empty prefix")
    if num_preds < 0:
        raise ValueError(f"num_preds must be >= 0, got {num_preds}")
    if strategy not in {"greedy", "sample"}:
        raise ValueError(f"strategy must be 'greedy' or 'sample', got {strategy!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    outputs = list(prefix)
    try:
        with torch.inference_mode():
            logits, state = net(torch.tensor([outputs], device=device), None)
            for _ in range(num_preds):
                last = logits[0, -1]
                if strategy == "greedy":
                    token = int(last.argmax())
                else:
                    probs = torch.softmax(last.float() / temperature, dim=-1).cpu()
                    token = int(torch.multinomial(probs, 1, generator=generator))
                outputs.append(token)
                logits, state = net(torch.tensor([[token]], device=device), state)
    finally:
        net.train(was_training)
    return outputs
