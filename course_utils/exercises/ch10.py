"""Checks for chapter 10's exercises (convolutions, padding and stride, pooling)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape

# --- 10.1 --------------------------------------------------------------------------------------


@checks("10.1")
def conv2d(conv2d: Callable[..., torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(101)
    cases = [  # N, c_i, (h, w), c_o, (k_h, k_w), padding, stride
        (2, 3, (7, 9), 4, (3, 2), (1, 0), (2, 3)),
        (1, 1, (5, 5), 2, (3, 3), (2, 2), (1, 1)),
        (3, 2, (6, 8), 1, (1, 1), (0, 1), (2, 2)),
    ]
    for N, c_i, (h, w), c_o, (k_h, k_w), padding, stride in cases:
        X = torch.randn(N, c_i, h, w, generator=g)
        K = torch.randn(c_o, c_i, k_h, k_w, generator=g)
        b = torch.randn(c_o, generator=g)
        what = (f"conv2d of a {tuple(X.shape)} batch with {tuple(K.shape)} kernels, padding={padding}, "
                f"stride={stride}")
        got = conv2d(X, K, b, padding=padding, stride=stride)
        expected = F.conv2d(X, K, b, padding=padding, stride=stride)
        (p_h, p_w), (out_h, out_w) = padding, expected.shape[-2:]
        stride_one = F.conv2d(X, K, b, padding=padding)
        mistakes = {
            "the bias is missing": F.conv2d(X, K, padding=padding, stride=stride),
            "all the padding went to the bottom and right (padding counts rows/columns on each side)":
                F.conv2d(F.pad(X, (0, 2 * p_w, 0, 2 * p_h)), K, b, stride=stride),
            "the window moved by 1 instead of by the stride": stride_one[:, :, :out_h, :out_w],
            "one output row short: the height is floor((h + 2 p - k) / s) + 1": expected[:, :, :-1],
            "one output column short: the width is floor((w + 2 p - k) / s) + 1": expected[..., :-1],
        }
        expect_close(got, expected, what, mistakes=mistakes)
    return "equals F.conv2d on 3 batches (rectangular kernels, strides (2, 3) and (2, 2), padding up to 2, N = 1)"


# --- 10.2 --------------------------------------------------------------------------------------

def _measured_field(layers: list[tuple[int, int]]) -> int:
    """The span of input positions one output position of a stack of all-ones conv1d depends on."""
    jump = math.prod(s for _, s in layers)
    length = sum(k for k, _ in layers) * jump + 3 * jump + 1
    x = torch.ones(1, 1, length, dtype=torch.float64, requires_grad=True)
    y = x
    for k, s in layers:
        y = F.conv1d(y, torch.ones(1, 1, k, dtype=torch.float64), stride=s)
    (grad,) = torch.autograd.grad(y[0, 0, y.shape[-1] // 2], x)
    seen = grad[0, 0].nonzero()
    return int(seen.max() - seen.min()) + 1  # a span: strided layers can leave holes inside it


def _formula(layers: list[tuple[int, int]], *, stride_first: bool = False, own_stride: bool = False,
             no_stride: bool = False, full_kernel: bool = False) -> int:
    size, jump = 1, 1
    for k, s in layers:
        if stride_first:
            jump *= s
        factor = s if own_stride else 1 if no_stride else jump
        size += (k if full_kernel else k - 1) * factor
        if not stride_first:
            jump *= s
    return size


@checks("10.2")
def receptive_field(receptive_field: Callable[[list[tuple[int, int]]], Any]) -> str:
    stacks = [
        ("no layers", []),
        ("three 3-wide convolutions", [(3, 1)] * 3),
        ("LeNet (conv 5, pool 2, conv 5, pool 2)", [(5, 1), (2, 2), (5, 1), (2, 2)]),
        ("two VGG blocks (conv 3, conv 3, pool 2, twice)", [(3, 1), (3, 1), (2, 2)] * 2),
        ("a 1 × 1 convolution with stride 2, then a 3-wide one", [(1, 2), (3, 1)]),
        ("AlexNet's eight convolution and pooling layers",
         [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]),
    ]
    for name, layers in stacks:
        got = receptive_field(list(layers))
        expected = _measured_field(layers)
        if expected != _formula(layers):  # the formula and the measurement must agree: a bug in this check
            raise RuntimeError(f"receptive field of {name}: measured {expected}, formula {_formula(layers)}")
        mistakes = {
            "multiplied in the layer's own stride before widening (use the strides of the layers before it)":
                _formula(layers, stride_first=True),
            "widened by (k - 1) times the layer's own stride instead of the product of the earlier strides":
                _formula(layers, own_stride=True),
            "ignored the strides: the k - 1 new positions are a product of earlier strides apart":
                _formula(layers, no_stride=True),
            "widened by k instead of k - 1 per layer": _formula(layers, full_kernel=True),
        }
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        expect_equal(got, expected, f"the receptive field of {name}", mistakes=mistakes)
    return "matches the field measured by the gradient of one output for 6 stacks, LeNet and AlexNet included"


# --- 10.3 --------------------------------------------------------------------------------------

def _adaptive(X: torch.Tensor, size: tuple[int, int], *, floor_end: bool = False, fixed: bool = False,
              all_axes: bool = False) -> torch.Tensor:
    (h, w), (o_h, o_w) = X.shape[-2:], size

    def bounds(i: int, n: int, o: int) -> tuple[int, int]:
        if fixed:
            return i * (n // o), (i + 1) * (n // o)
        return math.floor(i * n / o), (math.floor if floor_end else math.ceil)((i + 1) * n / o)

    Y = torch.zeros(*X.shape[:-2], o_h, o_w, dtype=X.dtype)
    for i in range(o_h):
        top, bottom = bounds(i, h, o_h)
        for j in range(o_w):
            left, right = bounds(j, w, o_w)
            window = X[..., top:bottom, left:right]
            Y[..., i, j] = window.mean() if all_axes else window.mean(dim=(-2, -1))
    return Y


@checks("10.3")
def adaptive_avg_pool2d(adaptive_avg_pool2d: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(103)
    cases = [((2, 3, 7, 5), (3, 2)), ((1, 1, 9, 9), (4, 4)), ((2, 4, 6, 6), (1, 1)), ((1, 2, 3, 5), (5, 7)),
             ((3, 8, 8), (2, 4))]
    for shape, size in cases:
        X = torch.randn(shape, generator=g)
        what = f"adaptive_avg_pool2d of a {shape} input to {size}"
        got = adaptive_avg_pool2d(X, size)
        expected = F.adaptive_avg_pool2d(X, size)
        with torch.no_grad():
            mistakes = {
                "rounded the window ends down: row i ends at ceil((i + 1) h / o_h)": _adaptive(X, size, floor_end=True),
                "used windows of h // o_h rows (and w // o_w columns), which leave the last rows out when o_h does "
                "not divide h": _adaptive(X, size, fixed=True),
                "averaged over the batch and channel axes too (average over the last two axes only)":
                    _adaptive(X, size, all_axes=True),
            }
        expect_close(got, expected, what, mistakes={k: v for k, v in mistakes.items() if not v.isnan().any()})
    return "equals F.adaptive_avg_pool2d on 5 inputs (7 × 5 to 3 × 2, 9 × 9 to 4 × 4, global, 3 × 5 up to 5 × 7)"


# --- 10.4 --------------------------------------------------------------------------------------

def _matrix(K: torch.Tensor, h: int, w: int, *, flip: bool = False, column_major: bool = False) -> torch.Tensor:
    k_h, k_w = K.shape
    out_h, out_w = h - k_h + 1, w - k_w + 1
    M = torch.zeros(out_h * out_w, h * w, dtype=K.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for a in range(k_h):
                for b in range(k_w):
                    column = (i + a) + (j + b) * h if column_major else (i + a) * w + (j + b)
                    M[i * out_w + j, column] = K[k_h - 1 - a, k_w - 1 - b] if flip else K[a, b]
    return M


@checks("10.4")
def conv_matrix(conv_matrix: Callable[[torch.Tensor, int, int], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(104)
    for (k_h, k_w), (h, w) in [((2, 3), (4, 5)), ((3, 3), (3, 3)), ((1, 1), (2, 3)), ((2, 2), (5, 4))]:
        K = torch.randn(k_h, k_w, generator=g, dtype=torch.float64)
        what = f"conv_matrix of a {k_h} × {k_w} kernel for {h} × {w} inputs"
        M = conv_matrix(K, h, w)
        if not isinstance(M, torch.Tensor):
            raise Wrong(f"{what} should be a tensor, got {describe(M)}")
        expect_shape(M, ((h - k_h + 1) * (w - k_w + 1), h * w), what)
        mistakes = {"flipped the kernel (that is the mathematical convolution, not cross-correlation)":
                        _matrix(K, h, w, flip=True),
                    "indexed the input column by column; reshape flattens row by row, pixel (r, c) is r * w + c":
                        _matrix(K, h, w, column_major=True)}
        expect_close(M.double(), _matrix(K, h, w), what, rtol=1e-6, atol=1e-9, mistakes=mistakes)
        X = torch.randn(h, w, generator=g, dtype=torch.float64)
        expect_close((M.double() @ X.reshape(-1)).reshape(h - k_h + 1, w - k_w + 1),
                     F.conv2d(X[None, None], K[None, None])[0, 0], f"{what}: M @ X.reshape(-1)", rtol=1e-6)
        Y = torch.randn(h - k_h + 1, w - k_w + 1, generator=g, dtype=torch.float64)
        expect_close((M.double().T @ Y.reshape(-1)).reshape(h, w),
                     F.conv_transpose2d(Y[None, None], K[None, None])[0, 0], f"{what}: M.T @ Y.reshape(-1)", rtol=1e-6)
    return "M @ x equals F.conv2d and M.T @ y equals F.conv_transpose2d for 4 kernel and input sizes"
