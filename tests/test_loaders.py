import sys

import pytest
import torch
from torch.utils.data import DataLoader

from course_utils import loaders
from course_utils.loaders import load_array, safe_num_workers, tensor_loader


def test_tensor_loader_visits_every_example_once_when_shuffled():
    X = torch.arange(103).float().reshape(-1, 1)
    y = torch.arange(103)
    loader = tensor_loader(X, y, batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert isinstance(loader, DataLoader) and len(loader) == 11
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))  # actually shuffled
    for xb, yb in loader:
        assert torch.equal(xb[:, 0].long(), yb)  # rows stay paired


def test_tensor_loader_order_drop_last_and_transform():
    X = torch.arange(10)
    loader = tensor_loader(X, batch_size=4, drop_last=True, transform=lambda b: (b[0] * 2,))
    batches = [xb.tolist() for (xb,) in loader]
    assert batches == [[0, 2, 4, 6], [8, 10, 12, 14]]


def test_tensor_loader_same_generator_seed_same_order():
    X = torch.arange(50)
    a, b = ([batch[0].tolist() for batch in tensor_loader(X, batch_size=7, shuffle=True,
                                                           generator=torch.Generator().manual_seed(3))]
            for _ in range(2))
    assert a == b


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
])
def test_tensor_loader_bad_batch_size(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tensor_loader(torch.zeros(4), **kwargs)


def test_tensor_loader_empty_and_mismatched():
    with pytest.raises(ValueError, match="empty"):
        tensor_loader(torch.zeros(0, 3), batch_size=2)
    with pytest.raises(ValueError, match="same first dimension"):
        tensor_loader(torch.zeros(4, 3), torch.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="at least one"):
        tensor_loader(batch_size=2)


def test_load_array_matches_d2l_signature():
    X, y = torch.randn(20, 3), torch.randn(20, 1)
    batches = list(load_array((X, y), 8, is_train=False))
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]
    assert torch.equal(torch.cat([b[0] for b in batches]), X)


def test_safe_num_workers(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(loaders.sys, "platform", "linux")
    assert safe_num_workers() == 0
    assert 1 <= safe_num_workers(10_000) <= 10_000
    monkeypatch.setattr(loaders.sys, "platform", "win32")
    assert safe_num_workers(4) == 0
    monkeypatch.setattr(loaders.sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert safe_num_workers(4) == 0
    with pytest.raises(ValueError):
        safe_num_workers(-1)
