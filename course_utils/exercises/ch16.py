"""Checks for chapter 16's exercises (gated recurrent networks: GRU and LSTM)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import Wrong, checks, describe, expect_close, expect_shape

CellWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _build(layer: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """``layer(*args, **kwargs)`` without moving the global RNG (its own initialization draws from it)."""
    with torch.random.fork_rng(devices=[]):
        return layer(*args, **kwargs)


def _randomize(module: nn.Module, g: torch.Generator, scale: float = 0.7) -> nn.Module:
    module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return module


def _weights(cell: nn.Module) -> CellWeights:
    w_ih, w_hh, b_ih, b_hh = (getattr(cell, name).detach().clone()
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return w_ih, w_hh, b_ih, b_hh


def _gru_variant(x: torch.Tensor, h: torch.Tensor, w: CellWeights, *, swap_rz: bool = False,
                 swap_interpolation: bool = False, reset_first: bool = False, no_reset: bool = False) -> torch.Tensor:
    weight_ih, weight_hh, bias_ih, bias_hh = w
    H = h.shape[-1]
    x_r, x_z, x_n = (x @ weight_ih.T + bias_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ weight_hh.T + bias_hh).chunk(3, dim=-1)
    if swap_rz:
        x_r, x_z, h_r, h_z = x_z, x_r, h_z, h_r
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    if reset_first:
        n = torch.tanh(x_n + (r * h) @ weight_hh[2 * H:].T + bias_hh[2 * H:])
    else:
        n = torch.tanh(x_n + (h_n if no_reset else r * h_n))
    return (1 - z) * h + z * n if swap_interpolation else z * h + (1 - z) * n


@checks("16.1")
def gru_cell_check(gru_cell: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(161)
    for batch, features, hidden in [(4, 3, 5), (1, 6, 2), (3, 2, 7)]:
        name = f"batch {batch}, {features} features, {hidden} hidden units"
        cell = _randomize(_build(nn.GRUCell, features, hidden), g)
        x = torch.randn(batch, features, generator=g, dtype=torch.float64)
        h = torch.randn(batch, hidden, generator=g, dtype=torch.float64)
        w = _weights(cell)
        got = gru_cell(x.clone(), h.clone(), *(t.clone() for t in w))
        with torch.no_grad():
            expected = cell(x, h)
        mistakes = {
            "the reset and update gates are swapped: nn.GRU stacks them in the order r, z, n":
                _gru_variant(x, h, w, swap_rz=True),
            "z and 1 − z are swapped: where z ≈ 1 the old state must be kept, h' = z ⊙ h + (1 − z) ⊙ n":
                _gru_variant(x, h, w, swap_interpolation=True),
            "the reset gate was applied before the matrix product, (r ⊙ h) W_hn (d2l's variant), but PyTorch "
            "applies it after: r ⊙ (h W_hn + b_hn)": _gru_variant(x, h, w, reset_first=True),
            "the reset gate is missing from the candidate state": _gru_variant(x, h, w, no_reset=True),
        }
        expect_shape(got, (batch, hidden), f"{name}: the new state")
        expect_close(got, expected, f"{name}: the new state", rtol=1e-6, atol=1e-9, mistakes=mistakes)
    return "equals nn.GRUCell with the same weights for three sizes, batch 1 included"


def _lstm_variant(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: CellWeights, order: str = "ifgo", *,
                  tanh_out: bool = True, g_act: str = "tanh") -> tuple[torch.Tensor, torch.Tensor]:
    weight_ih, weight_hh, bias_ih, bias_hh = w
    chunks = dict(zip(order, (x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh).chunk(4, dim=-1),
                      strict=True))
    i, f, o = torch.sigmoid(chunks["i"]), torch.sigmoid(chunks["f"]), torch.sigmoid(chunks["o"])
    cand = torch.tanh(chunks["g"]) if g_act == "tanh" else torch.sigmoid(chunks["g"])
    c_new = f * c + i * cand
    return (o * torch.tanh(c_new) if tanh_out else o * c_new), c_new


@checks("16.2")
def lstm_cell_check(lstm_cell: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(162)
    for batch, features, hidden in [(4, 3, 5), (1, 6, 2), (3, 2, 7)]:
        name = f"batch {batch}, {features} features, {hidden} hidden units"
        cell = _randomize(_build(nn.LSTMCell, features, hidden), g)
        x = torch.randn(batch, features, generator=g, dtype=torch.float64)
        h = torch.randn(batch, hidden, generator=g, dtype=torch.float64)
        c = 2 * torch.randn(batch, hidden, generator=g, dtype=torch.float64)
        w = _weights(cell)
        got = lstm_cell(x.clone(), (h.clone(), c.clone()), *(t.clone() for t in w))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"{name}: return the pair (h, c), got {describe(got)}")
        with torch.no_grad():
            expected = cell(x, (h, c))
        variants = {
            "the gates are taken in the order i, f, o, g, but nn.LSTM stacks them as i, f, g, o":
                _lstm_variant(x, h, c, w, "ifog"),
            "the input and forget gates are swapped (the order is i, f, g, o)": _lstm_variant(x, h, c, w, "figo"),
            "h = o ⊙ c: the cell must go through tanh first, h = o ⊙ tanh(c)":
                _lstm_variant(x, h, c, w, tanh_out=False),
            "the candidate g must use tanh, not the sigmoid": _lstm_variant(x, h, c, w, g_act="sigmoid"),
        }
        expect_close(got[1], expected[1], f"{name}: the new memory cell c", rtol=1e-6, atol=1e-9,
                     mistakes={m: v[1] for m, v in variants.items()})
        expect_close(got[0], expected[0], f"{name}: the new hidden state h", rtol=1e-6, atol=1e-9,
                     mistakes={m: v[0] for m, v in variants.items()})
    return "h and c equal nn.LSTMCell's with the same weights for three sizes, batch 1 included"


@checks("16.3")
def last_valid_check(last_valid_outputs: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(163)
    cases = [([3, 1, 5, 2], 6), ([5, 2, 4], 5), ([4], 4)]
    for lengths, steps in cases:
        batch, features, hidden = len(lengths), 3, 4
        name = f"a batch of {batch} sequences of valid lengths {lengths}, padded to {steps} steps"
        gru = _randomize(_build(nn.GRU, features, hidden, batch_first=True), g)
        inputs = torch.randn(batch, steps, features, generator=g, dtype=torch.float64)
        valid_len = torch.tensor(lengths)
        with torch.no_grad():
            outputs, _ = gru(inputs)
            packed = nn.utils.rnn.pack_padded_sequence(inputs, valid_len, batch_first=True, enforce_sorted=False)
            _, h_n = gru(packed)
        got = last_valid_outputs(outputs.clone(), valid_len.clone())
        expect_shape(got, (batch, hidden), f"{name}: the result (batch, hidden)")
        mistakes = {"took the output at the last position, after the padding": outputs[:, -1]}
        if max(lengths) < steps:
            mistakes["took the output at position valid_len, one past the last valid one"] = \
                outputs[torch.arange(batch), valid_len]
        expect_close(got, h_n[-1], f"{name}: the output at the last valid position", rtol=1e-6, atol=1e-9,
                     mistakes=mistakes)
    return "equals nn.GRU's final state on packed sequences (pack_padded_sequence) for three padded batches"


@checks("16.4")
def lstm_parameters(prediction: Any) -> str:
    if isinstance(prediction, torch.Tensor) and prediction.numel() == 1:
        prediction = prediction.item()
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)):
        raise Wrong(f"the prediction should be one number (the total count), got {describe(prediction)}")
    if isinstance(prediction, float) and not prediction.is_integer():
        raise Wrong(f"a number of parameters is a whole number, got {prediction}")
    lstm = _build(nn.LSTM, 28, 64, num_layers=2, bidirectional=True)
    measured = sum(p.numel() for p in lstm.parameters())
    per_layer = [sum(p.numel() for n, p in lstm.named_parameters() if f"_l{k}" in n) for k in (0, 1)]
    verdict = "right" if int(prediction) == measured else (
        f"off by {int(prediction) - measured:+,}: the first layer has {per_layer[0]:,} parameters (both "
        f"directions), the second {per_layer[1]:,}, because it reads the 2 × 64 features of both directions")
    return (f"you predicted {int(prediction):,}; nn.LSTM(28, 64, num_layers=2, bidirectional=True) has "
            f"{measured:,}: {verdict}")
