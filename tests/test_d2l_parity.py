"""Parity with the d2l package (the course's reference implementation, a test-only oracle)."""

import pytest
import torch
from torch import nn

d2l = pytest.importorskip("d2l.torch")

from course_utils import training as tr  # noqa: E402
from course_utils.fashion_mnist import fashion_mnist_loaders  # noqa: E402
from course_utils.loaders import load_array  # noqa: E402
from course_utils.synthetic import synthetic_linear_data  # noqa: E402


def test_accuracy_matches_d2l():
    g = torch.Generator().manual_seed(0)
    y_hat, y = torch.randn(50, 10, generator=g), torch.randint(0, 10, (50,), generator=g)
    # d2l.accuracy returns the number of correct predictions
    assert tr.accuracy(y_hat, y) * 50 == pytest.approx(float(d2l.accuracy(y_hat, y)))


def test_evaluate_accuracy_matches_d2l():
    torch.manual_seed(0)
    X, y = torch.randn(300, 4), torch.randint(0, 3, (300,))
    net = nn.Linear(4, 3)
    data = load_array((X, y), 64, is_train=False)
    assert tr.evaluate_accuracy(net, data) == pytest.approx(d2l.evaluate_accuracy_gpu(net, data))


def test_synthetic_data_statistics_match_d2l():
    w, b = torch.tensor([2.0, -3.4]), 4.2
    torch.manual_seed(0)
    X1, y1 = synthetic_linear_data(w, b, 5000)
    X2, y2 = d2l.synthetic_data(w, b, 5000)
    assert X1.shape == X2.shape and y1.shape == y2.shape
    assert abs(X1.mean() - X2.mean()) < 0.05 and abs(X1.std() - X2.std()) < 0.05
    torch.testing.assert_close(y1.mean(), y2.mean(), atol=0.2, rtol=0)
    torch.testing.assert_close((y1 - X1 @ w.reshape(-1, 1)).std(), (y2 - X2 @ w.reshape(-1, 1)).std(),
                               atol=2e-3, rtol=0)


def test_fashion_mnist_batches_match_d2l_loader_on_same_files(tmp_path, monkeypatch, data_root):
    """d2l.load_data_fashion_mnist reads ../data/FashionMNIST/raw; give it our verified files."""
    import gzip

    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "fashion-mnist").glob("*.gz"):
        (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    _, d2l_test = d2l.load_data_fashion_mnist(256)  # finds the files, so it downloads nothing
    _, ours = fashion_mnist_loaders(256)
    n = 0
    for (X1, y1), (X2, y2) in zip(ours, d2l_test, strict=True):
        torch.testing.assert_close(X1, X2, rtol=0, atol=0)
        assert torch.equal(y1, y2)
        n += len(y1)
    assert n == 10_000
    _, ours32 = fashion_mnist_loaders(256, resize=32, n_test=256)
    _, d2l32 = d2l.load_data_fashion_mnist(256, resize=32)
    X1, _ = next(iter(ours32))
    X2, _ = next(iter(d2l32))
    # torchvision resizes PIL images (antialiased, 8-bit); we interpolate float batches
    assert X1.shape == X2.shape and (X1 - X2).abs().mean() < 0.02
