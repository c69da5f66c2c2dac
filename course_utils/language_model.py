"""Train and sample recurrent language models.

Models follow one interface: ``logits, state = net(X, state)`` with ``X`` of token indices,
shape ``(batch, num_steps)``, ``logits`` of shape ``(batch, num_steps, vocab_size)`` and
``state`` anything made of tensors (``None`` for a fresh start). :class:`RNNLanguageModel` wraps
``nn.RNN``/``nn.GRU``/``nn.LSTM`` this way; a from-scratch model only has to do the same.

* :func:`train_language_model` — :func:`training.fit` with a next-token step: it carries the
  state between the batches of a sequential loader (:class:`CarryState`, detached every batch:
  truncated backpropagation through time), starts it fresh for random sampling, clips
  gradients and reports perplexity (train and held-out validation) and tokens/s.
* :func:`perplexity`, :func:`evaluate_perplexity` — ``exp`` of the mean cross-entropy (``inf``
  when that overflows).
* :func:`generate` — continue a prefix greedily or by sampling.

Introduced in ``notebooks/14_text_and_language_models.ipynb`` (training: ``15_rnn.ipynb``).
Copy with: ``training.py``, ``checkpoints.py``, ``atomic_write.py``, ``plotting.py``, ``settings.py``,
``fast_settings.py``.

>>> net = RNNLanguageModel(nn.GRU(5, 8, batch_first=True), vocab_size=5)
>>> logits, state = net(torch.tensor([[0, 1, 2]]))
>>> tuple(logits.shape), round(perplexity(torch.zeros(1, 3, 5), torch.tensor([[0, 1, 2]])), 4)
((1, 3, 5), 5.0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

if __package__:  # part of course_utils (or of your own package)
    from .training import ClipGradNorm, FitOptions, FitState, History, Throughput, fit_with, model_device
else:  # copied flat next to its siblings (see the README, "Copying a module")
    from training import ClipGradNorm, FitOptions, FitState, History, Throughput, fit_with, model_device
if TYPE_CHECKING:  # only for the type checker: typing.Unpack for **kwargs needs Python 3.12
    from typing_extensions import Unpack

__all__ = [
    "detach_state",
    "RNNLanguageModel",
    "perplexity",
    "evaluate_perplexity",
    "CarryState",
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
    return _exp(float(loss))


def _exp(mean_loss: float) -> float:
    """``exp`` of a mean cross-entropy: ``inf`` (not an ``OverflowError``) for a huge loss."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def evaluate_perplexity(
    net: nn.Module, data_iter: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> float:
    """Perplexity over a whole (sequential) dataset, carrying the state, in eval mode."""
    device = model_device(net, device)
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
    return _exp(total / count)


class CarryState:
    """A callback for truncated backpropagation through time: ``state`` is carried from batch
    to batch by the step function (detached there) and reset at the start of every epoch."""

    def __init__(self) -> None:
        self.state: State = None

    def before_epoch(self, run: FitState) -> None:
        self.state = None


class _TrainPerplexity:
    def after_epoch(self, run: FitState) -> None:
        run.metrics["train_ppl"] = _exp(run.metrics["train_loss"])


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
    **fit_options: Unpack[FitOptions],
) -> History:
    """Train a language model with next-token cross-entropy (:func:`training.fit`).

    Per epoch the history holds ``train_loss`` (mean cross-entropy per token), ``train_ppl``,
    ``val_ppl`` (when ``val_iter`` is given), ``tokens_per_sec``, ``seconds`` and, with
    ``grad_clip``, ``grad_norm`` (the mean norm before clipping). ``sequential`` (default: the
    loader's ``sequential`` attribute) carries the hidden state from batch to batch, detached
    so gradients stop at the batch boundary; otherwise every batch starts from a fresh state.
    ``grad_clip`` clips the global gradient norm (``None``: no clipping). Every option of
    :func:`training.fit` (``FitOptions``: ``scheduler``, ``scheduler_interval``, ``callbacks``,
    ``checkpoint_path``, ...) goes to it; ``plot=True`` (the default) shows the two perplexities.
    """
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
    device = model_device(net, device)
    net.to(device)
    if sequential is None:
        sequential = bool(getattr(train_iter, "sequential", False))
    carry = CarryState()

    def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        X, Y = (t.to(device, non_blocking=True) for t in batch)
        logits, carry.state = model(X, detach_state(carry.state) if sequential else None)
        if logits.shape[:-1] != Y.shape:
            raise ValueError(f"the model returned logits {tuple(logits.shape)} for targets "
                             f"{tuple(Y.shape)}; expected (batch, num_steps, vocab)")
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1)), Y.numel()

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {} if val_iter is None else {"val_ppl": evaluate_perplexity(model, val_iter, device)}

    extras: list[Any] = [carry, _TrainPerplexity(), Throughput("tokens_per_sec")]
    if grad_clip is not None:
        extras.append(ClipGradNorm(grad_clip, record="grad_norm"))
    if fit_options.get("plot", True) is True:
        fit_options["plot"] = ["train_ppl", "val_ppl"]
    return fit_with(net, train_iter, step, num_epochs, optimizer, fit_options, evaluate=evaluate, callbacks=extras)


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
    device = model_device(net, device)
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
