"""Masks for batches of variable-length sequences: :func:`sequence_mask` and :func:`masked_softmax`.

A padded batch holds sequences of different lengths; ``valid_len`` says how many positions of
each are real. :func:`sequence_mask` blanks out the padding (e.g. in a loss) and
:func:`masked_softmax` gives attention weights that are zero on padded keys.

Introduced in ``notebooks/18_seq2seq_beam_search.ipynb`` (attention: ``19_attention_transformers.ipynb``).
Copy alone.

>>> X = torch.zeros(2, 1, 3)  # two queries' scores for three keys
>>> masked_softmax(X, torch.tensor([2, 3]))
tensor([[[0.5000, 0.5000, 0.0000]],
<BLANKLINE>
        [[0.3333, 0.3333, 0.3333]]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sequence_mask", "masked_softmax"]


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
