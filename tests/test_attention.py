"""Masks for padded batches: sequence_mask and masked_softmax."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import attention


def test_sequence_mask_and_errors():
    X = torch.ones(2, 3, 2)
    out = attention.sequence_mask(X, torch.tensor([1, 2]), value=-1)
    assert out[0, :, 0].tolist() == [1, -1, -1] and out[1, :, 1].tolist() == [1, 1, -1]
    with pytest.raises(ValueError, match="valid lengths must be in"):
        attention.sequence_mask(X, torch.tensor([1, 4]))
    with pytest.raises(ValueError, match="batch size"):
        attention.sequence_mask(X, torch.tensor([1]))
    with pytest.raises(ValueError):
        attention.sequence_mask(torch.ones(3), torch.tensor([1]))


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.data())
@settings(max_examples=80, deadline=None)
def test_masked_softmax_rows_sum_to_one_over_valid_keys(batch, queries, keys, data):
    X = torch.randn(batch, queries, keys)
    lens = torch.tensor(data.draw(st.lists(st.integers(1, keys), min_size=batch, max_size=batch)))
    W = attention.masked_softmax(X, lens)
    torch.testing.assert_close(W.sum(-1), torch.ones(batch, queries))
    for b in range(batch):
        assert (W[b, :, lens[b]:] == 0).all()
        torch.testing.assert_close(W[b, :, :lens[b]], torch.softmax(X[b, :, :lens[b]], -1))
    lens2 = torch.randint(1, keys + 1, (batch, queries))
    W2 = attention.masked_softmax(X, lens2)
    torch.testing.assert_close(W2.sum(-1), torch.ones(batch, queries))


def test_masked_softmax_edge_cases():
    X = torch.randn(2, 2, 3)
    torch.testing.assert_close(attention.masked_softmax(X, None), torch.softmax(X, -1))
    W = attention.masked_softmax(X, torch.tensor([0, 3]))
    assert (W[0] == 0).all()
    with pytest.raises(ValueError):
        attention.masked_softmax(X, torch.tensor([4, 1]))
    with pytest.raises(ValueError):
        attention.masked_softmax(X, torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        attention.masked_softmax(torch.randn(2, 3), torch.tensor([1, 1]))
