"""Synthetic data with a known answer: :func:`synthetic_linear_data` draws ``y = Xw + b + noise``.

Training on data whose true parameters we know lets a notebook check what it learned.

Introduced in ``notebooks/03_linear_regression.ipynb``.
Copy alone.

>>> X, y = synthetic_linear_data(torch.tensor([2.0, -3.4]), 4.2, 1000)
>>> X.shape, y.shape
(torch.Size([1000, 2]), torch.Size([1000, 1]))
"""

from __future__ import annotations

import torch

__all__ = ["synthetic_linear_data"]


def synthetic_linear_data(
    w: torch.Tensor,
    b: float,
    num_examples: int,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``X ~ N(0, 1)`` and ``y = X w + b + N(0, noise²)``; return ``(X, y)`` with y of shape (n, 1)."""
    w = torch.as_tensor(w, dtype=torch.float32)
    if w.dim() != 1:
        raise ValueError(f"w must be a 1-D tensor of weights, got shape {tuple(w.shape)}")
    if num_examples <= 0:
        raise ValueError(f"num_examples must be positive, got {num_examples}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    X = torch.randn(num_examples, len(w), generator=generator)
    y = X @ w + b
    y = y + noise * torch.randn(y.shape, generator=generator)
    return X, y.reshape(-1, 1)
