"""Checks for chapter 15's exercises (recurrent neural networks)."""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..datafiles import ensure_file
from ..language_model import RNNLanguageModel, generate
from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape

LayerParams = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _random_rnn(g: torch.Generator, input_size: int, hidden: int, num_layers: int,
                nonlinearity: str = "tanh") -> nn.RNN:
    with torch.random.fork_rng(devices=[]):  # the layer's own initialization must not move the global RNG
        rnn = nn.RNN(input_size, hidden, num_layers, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        for p in rnn.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return rnn


def _run(rnn: nn.RNN, inputs: torch.Tensor, h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        outputs, h_n = rnn(inputs) if h0 is None else rnn(inputs, h0)
    return outputs, h_n


def _param(rnn: nn.RNN, kind: str, layer: int) -> torch.Tensor:
    return getattr(rnn, f"{kind}_l{layer}").detach().clone()


@checks("15.1")
def stacked_rnn(rnn_forward: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(15)
    cases = [(4, 3, 6, 5, 1), (5, 2, 3, 4, 3), (1, 1, 2, 3, 2)]  # steps, batch, features, hidden, layers
    for steps, batch, features, hidden, layers in cases:
        name = f"{layers} layer(s), {steps} steps, batch {batch}, {features} features, {hidden} hidden units"
        rnn = _random_rnn(g, features, hidden, layers)
        inputs = torch.randn(steps, batch, features, generator=g, dtype=torch.float64)
        h0 = torch.randn(layers, batch, hidden, generator=g, dtype=torch.float64)
        params: list[LayerParams] = [
            (_param(rnn, "weight_ih", k), _param(rnn, "weight_hh", k), _param(rnn, "bias_ih", k),
             _param(rnn, "bias_hh", k)) for k in range(layers)]
        inputs_before, h0_before = inputs.clone(), h0.clone()
        got = rnn_forward(inputs, h0, params)
        if not torch.equal(inputs, inputs_before) or not torch.equal(h0, h0_before):
            raise Wrong(f"{name}: your function changed its inputs or h0 in place")
        if not isinstance(got, tuple) or len(got) != 2:
            raise Wrong(f"{name}: return a pair (outputs, h_n) as nn.RNN does, got {describe(got)}")
        expected_out, expected_h = _run(rnn, inputs, h0)
        relu = _random_rnn(g, features, hidden, layers, nonlinearity="relu")
        relu.load_state_dict(rnn.state_dict())
        one_bias = _random_rnn(g, features, hidden, layers)
        one_bias.load_state_dict(rnn.state_dict())
        with torch.no_grad():
            for k in range(layers):
                getattr(one_bias, f"bias_hh_l{k}").zero_()
        wrong = {
            "ReLU instead of tanh": _run(relu, inputs, h0),
            "bias_hh is missing (nn.RNN adds both biases, bias_ih and bias_hh)": _run(one_bias, inputs, h0),
            "the state started from zeros instead of h0": _run(rnn, inputs, None),
        }
        outputs, h_n = got
        expect_shape(outputs, (steps, batch, hidden), f"{name}: outputs (steps, batch, hidden) of the top layer")
        expect_shape(h_n, (layers, batch, hidden), f"{name}: h_n (one final state per layer)")
        expect_close(outputs, expected_out, f"{name}: outputs", rtol=1e-6, atol=1e-8,
                     mistakes={m: v[0] for m, v in wrong.items()})
        expect_close(h_n, expected_h, f"{name}: h_n", rtol=1e-6, atol=1e-8,
                     mistakes={m: v[1] for m, v in wrong.items()})
    return "outputs and h_n equal nn.RNN's (batch_first=False) for 1, 2 and 3 layers, batch 1 included"


def _top_k_variant(logits: torch.Tensor, temperature: float, k: int | None, *, multiply: bool = False,
                   renormalize: bool = True, keep: int = 0) -> torch.Tensor:
    scaled = logits * temperature if multiply else logits / temperature
    probs = torch.softmax(scaled, dim=-1)
    if k is None:
        return probs
    kept = min(k + keep, logits.shape[-1])
    threshold = scaled.sort(dim=-1, descending=True).values[..., kept - 1:kept]
    probs = probs.masked_fill(scaled < threshold, 0.0)
    return probs / probs.sum(dim=-1, keepdim=True) if renormalize else probs


@checks("15.2")
def top_k_sampling(next_token_probs: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(152)
    vector = torch.randn(10, generator=g, dtype=torch.float64) * 2
    batch = torch.randn(3, 10, generator=g, dtype=torch.float64) * 3 - 1
    cases: list[tuple[str, torch.Tensor, float, int | None]] = [
        ("10 logits, temperature 0.5, k=3", vector, 0.5, 3),
        ("a batch of 3 × 10 negative and positive logits, temperature 2, k=4", batch, 2.0, 4),
        ("10 logits, temperature 1, k=1", vector, 1.0, 1),
        ("a batch of 3 × 10 logits, temperature 0.7, k=None (no top-k)", batch, 0.7, None),
        ("10 logits, temperature 1.5, k=10 (every token)", vector, 1.5, 10),
    ]
    for name, logits, temperature, k in cases:
        before = logits.clone()
        got = next_token_probs(logits, temperature, k)
        if not torch.equal(logits, before):
            raise Wrong(f"{name}: your function changed the logits in place")
        mistakes = {
            "the logits were multiplied by the temperature instead of divided by it":
                _top_k_variant(logits, temperature, k, multiply=True),
            "the probabilities of the k kept tokens do not sum to 1: renormalize after dropping the others":
                _top_k_variant(logits, temperature, k, renormalize=False),
            "k + 1 tokens were kept instead of k (off by one)": _top_k_variant(logits, temperature, k, keep=1),
        }
        expect_close(got, _top_k_variant(logits, temperature, k), f"the distribution for {name}",
                     rtol=1e-6, atol=1e-9, mistakes=mistakes)
    return "softmax(logits / temperature) on the k largest logits, on vectors and batches, k = 1 to all"


def _random_language_model(g: torch.Generator, vocab_size: int, hidden: int) -> RNNLanguageModel:
    with torch.random.fork_rng(devices=[]):  # the layer's own initialization must not move the global RNG
        net = RNNLanguageModel(nn.GRU(vocab_size, hidden, num_layers=2, dropout=0.5, batch_first=True), vocab_size)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(1.5 * torch.randn(p.shape, generator=g))
    return net.train()


def _generate_variant(net: nn.Module, prefix: list[int], num_preds: int, *, carry: bool = True,
                      first_position: bool = False, twice: bool = False) -> list[int]:
    was_training = net.training
    net.eval()
    outputs = list(prefix)
    with torch.no_grad():
        logits, state = net(torch.tensor([outputs]), None)
        if twice:
            logits, state = net(torch.tensor([outputs[-1:]]), state)
        for n in range(num_preds):
            token = int(logits[0, 0 if first_position and n == 0 else -1].argmax())
            outputs.append(token)
            logits, state = net(torch.tensor([[token]]), state if carry else None)
    net.train(was_training)
    return outputs


@checks("15.3")
def greedy_generation(generate_greedy: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(153)
    vocab_size = 12
    net = _random_language_model(g, vocab_size, 24)
    cases = [("prefix [3, 1, 4, 1, 5], 15 predictions", [3, 1, 4, 1, 5], 15),
             ("prefix [7], 12 predictions", [7], 12),
             ("prefix [2, 9], 0 predictions", [2, 9], 0)]
    for name, prefix, num_preds in cases:
        expected = generate(net, prefix, num_preds)
        net.train()
        got = generate_greedy(net, list(prefix), num_preds)
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, list):
            raise Wrong(f"{name}: return a list of token indices, got {describe(got)}")
        got = [int(t) for t in got]
        if got == expected:
            continue
        if net.training and _generate_variant(net, prefix, num_preds) == expected:
            raise Wrong(f"{name}: the network was left in training mode, so dropout changed its predictions; "
                        f"call net.eval() before generating")
        mistakes = {
            "the state was not carried from one step to the next": _generate_variant(net, prefix, num_preds,
                                                                                      carry=False),
            "the first prediction used the logits after the first prefix token instead of the last":
                _generate_variant(net, prefix, num_preds, first_position=True),
            "the last prefix token was read twice": _generate_variant(net, prefix, num_preds, twice=True),
            "the result should start with the prefix": expected[len(prefix):],
        }
        expect_equal(got, expected, f"the generated tokens for {name}", mistakes=mistakes)
    return "equals course_utils.language_model.generate (greedy) on a 2-layer GRU with dropout, three prefixes"


# --- 15.4: a character model on tiny-shakespeare -----------------------------------------------

_HELD_OUT_CHARS = 30_000


def _index_counts(text: str, vocab: Any, size: int) -> torch.Tensor:
    counts = torch.zeros(size, dtype=torch.float64)
    for char, count in collections.Counter(text).items():
        counts[int(vocab[char])] += count
    return counts


@checks("15.4")
def shakespeare_model(net: nn.Module, vocab: Any) -> str:
    text = ensure_file("tinyshakespeare/input.txt").read_text(encoding="utf-8")
    split = int(len(text) * 0.9)
    train_text, held_out = text[:split], text[split:split + _HELD_OUT_CHARS]
    if not isinstance(net, nn.Module):
        raise Wrong(f"pass your trained network (an nn.Module) and its vocabulary, got {describe(net)}")
    try:
        size = len(vocab)
        tokens = torch.tensor(vocab[list(held_out)], dtype=torch.long)
    except (TypeError, KeyError) as error:
        raise Wrong(f"the second argument should be the Vocab your model was trained with ({error})") from None
    rows = 10
    n = (len(tokens) - 1) // rows * rows
    X, Y = tokens[:n].reshape(rows, -1), tokens[1:n + 1].reshape(rows, -1)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            logits, _ = net(X.to(device), None)
    finally:
        net.train(was_training)
    expect_shape(logits, (rows, X.shape[1], size), "the logits of net(X, None) (batch, steps, len(vocab))")
    nll = F.cross_entropy(logits.reshape(-1, size).double().cpu(), Y.reshape(-1))
    ppl = math.exp(float(nll))
    unigram = _index_counts(train_text, vocab, size) + 1
    floor = math.exp(-float((unigram / unigram.sum()).log()[Y].mean()))
    train_tokens = torch.tensor(vocab[list(train_text[:200_000])], dtype=torch.long)
    pairs = torch.bincount(train_tokens[:-1] * size + train_tokens[1:], minlength=size * size)
    pairs = pairs.reshape(size, size).double() + 1
    bigram = math.exp(-float((pairs / pairs.sum(dim=1, keepdim=True)).log()[X, Y].mean()))
    if not ppl < floor:
        raise Wrong(f"validation perplexity {ppl:.2f} on {len(held_out):,} held-out characters is not below "
                    f"{floor:.2f}, the perplexity of the character frequencies alone (unigram model): "
                    f"the network has not learned to use the context")
    return (f"validation perplexity {ppl:.2f} on {len(held_out):,} held-out characters, below the unigram "
            f"model's {floor:.2f} (an add-one bigram model counted on 200,000 characters: {bigram:.2f})")
