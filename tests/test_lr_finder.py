"""The learning-rate range test helper."""

import math

import pytest
import torch
from torch import nn

from course_utils.lr_finder import lr_find, suggest_lr


def _problem():
    torch.manual_seed(0)
    X = torch.randn(512, 8)
    y = (X @ torch.randn(8) > 0).long()
    batches = [(X[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)]
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))

    def step(model, batch):
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    return net, batches, step


def test_restores_model_buffers_and_optimizer_exactly():
    net, batches, step = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss = step(net, batches[0])
    opt.zero_grad()
    loss.backward()
    opt.step()                                            # momentum buffers exist
    net.eval()
    model_before = {k: v.clone() for k, v in net.state_dict().items()}
    momentum_before = [opt.state[p]["momentum_buffer"].clone() for p in net.parameters()]
    result = lr_find(net, opt, batches, step, start_lr=1e-3, end_lr=1.0, num_steps=20)
    assert len(result.lrs) == 20 and not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, model_before[k]), k
    for p, m in zip(net.parameters(), momentum_before, strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], m)
    assert opt.param_groups[0]["lr"] == 0.05


def test_exponential_rates_and_bias_corrected_smoothing():
    net, batches, step = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    result = lr_find(net, opt, batches, step, start_lr=1e-4, end_lr=1.0, num_steps=9, beta=0.9)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert all(math.isclose(r, 10 ** 0.5) for r in ratios)
    assert math.isclose(result.lrs[0], 1e-4) and math.isclose(result.lrs[-1], 1.0)
    assert result.smoothed[0] == result.losses[0]
    expected = 0.9 * 0.1 * result.losses[0] + 0.1 * result.losses[1]
    assert math.isclose(result.smoothed[1], expected / (1 - 0.9 ** 2))
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]


def test_stops_when_the_loss_diverges():
    X = torch.randn(256, 4)
    y = X.sum(1)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    net = nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    step = lambda m, b: nn.functional.mse_loss(m(b[0])[:, 0], b[1])  # noqa: E731
    result = lr_find(net, opt, batches, step, start_lr=1e-3, end_lr=1e4, num_steps=100)
    assert result.diverged and len(result.lrs) < 100
    assert all(math.isfinite(v) for v in result.losses)


def test_plot_and_errors():
    net, batches, step = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    result = lr_find(net, opt, batches, step, start_lr=1e-3, end_lr=1.0, num_steps=12)
    import matplotlib
    matplotlib.use("Agg")
    ax = result.plot()
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(net, opt, batches, step, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        lr_find(net, opt, batches, step, num_steps=1)
    with pytest.raises(ValueError, match="beta"):
        lr_find(net, opt, batches, step, beta=1.0)


def test_suggest_lr_picks_the_steepest_fall():
    lrs = [10 ** (i / 4 - 4) for i in range(17)]
    losses = [2.0] * 6 + [1.9, 1.5, 0.8, 0.7, 0.65] + [0.7, 1.0, 2.0, 4.0, 8.0, 9.0]
    assert suggest_lr(lrs, losses) == lrs[7]
    with pytest.raises(ValueError):
        suggest_lr([1.0], [1.0])
    with pytest.raises(ValueError):
        suggest_lr([1.0, 2.0], [1.0])
