"""The learning-rate range test helper."""

import copy
import math

import pytest
import torch
from torch import nn

from course_utils.lr_finder import LRFinder, lr_find, suggest_lr
from course_utils.training import fit


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


def _scratch_range_test(model, optimizer, data, step, start_lr, end_lr, num_steps, beta=0.98, diverge=4.0):
    """Chapter 24's range test from scratch (its own loop), the reference lr_find must equal."""
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    model.train()
    batches = iter(data)
    for i in range(num_steps):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(data)
            batch = next(batches)
        loss = step(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        avg = beta * avg + (1 - beta) * loss.item()
        lrs.append(lr)
        losses.append(loss.item())
        smoothed.append(avg / (1 - beta ** (i + 1)))
        best = min(best, smoothed[-1])
        if smoothed[-1] > diverge * best:
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    return lrs, losses, smoothed


@pytest.mark.parametrize("num_steps, end_lr", [(20, 1.0), (30, 1e4)])  # data run through twice; diverging
def test_equals_the_scratch_range_test_exactly(num_steps, end_lr):
    results = []
    for finder in ("scratch", "lr_find"):
        net, batches, step = _problem()
        net.insert(3, nn.Dropout(0.2))                   # random numbers drawn in the same order, too
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        torch.manual_seed(1)
        if finder == "scratch":
            results.append(_scratch_range_test(net, opt, batches, step, 1e-3, end_lr, num_steps))
        else:
            r = lr_find(net, opt, batches, step, start_lr=1e-3, end_lr=end_lr, num_steps=num_steps)
            results.append((r.lrs, r.losses, r.smoothed))
    assert results[0] == results[1]
    assert len(results[0][0]) == num_steps if end_lr == 1.0 else len(results[0][0]) < num_steps


def test_a_non_finite_loss_ends_the_test_before_its_step():
    net, batches, step = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    calls = []

    def nan_at_four(model, batch):
        calls.append(1)
        return step(model, batch) * (math.nan if len(calls) == 4 else 1.0)

    result = lr_find(net, opt, batches, nan_at_four, start_lr=1e-3, end_lr=1.0, num_steps=10)
    assert result.diverged and len(result.lrs) == 3 and len(calls) == 4


def test_the_finder_is_a_fit_callback():
    net, batches, step = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    finder = LRFinder(start_lr=1e-3, end_lr=1.0, num_steps=12)
    history = fit(net, batches, step, 5, optimizer=opt, callbacks=[finder], progress=False, plot=False)
    assert history.epochs == [1, 2] and len(finder.result.lrs) == 12  # 8 + 4 batches, then stopped
    assert finder.result.lrs[-1] == opt.param_groups[0]["lr"] == 1.0
    with pytest.raises(ValueError, match="num_steps"):
        LRFinder(num_steps=1)
