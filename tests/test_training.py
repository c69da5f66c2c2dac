import os
import pickle
import time

import pytest
import torch
from torch import nn

from course_utils import training as tr
from course_utils.loaders import load_array, tensor_loader


def blobs(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])
    X = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return X, y


def small_net(dropout=0.0):
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def test_accumulator_and_timer():
    acc = tr.Accumulator(2)
    acc.add(1, 2)
    acc.add(torch.tensor(3.0), 4)
    assert (acc[0], acc[1]) == (4.0, 6.0)
    acc.reset()
    assert acc.data == [0.0, 0.0]
    with pytest.raises(ValueError):
        acc.add(1)
    with pytest.raises(ValueError):
        tr.Accumulator(0)
    timer = tr.Timer()
    time.sleep(0.01)
    first = timer.stop()
    timer.start()
    timer.stop()
    assert first >= 0.009 and len(timer.times) == 2
    assert timer.sum() == pytest.approx(sum(timer.times))
    assert timer.avg() == pytest.approx(timer.sum() / 2)
    assert timer.cumsum()[-1] == pytest.approx(timer.sum())
    with pytest.raises(RuntimeError):
        timer.stop()
    with pytest.raises(RuntimeError):
        tr.Timer().avg()


def test_accuracy_and_errors():
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = torch.tensor([1, 1, 1])
    assert tr.accuracy(y_hat, y) == pytest.approx(2 / 3)
    assert tr.accuracy(torch.tensor([1, 0, 1]), y) == pytest.approx(2 / 3)
    assert int(tr.correct_count(y_hat, y)) == 2
    with pytest.raises(ValueError, match="do not match"):
        tr.accuracy(y_hat, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="1-D"):
        tr.accuracy(y_hat, y.reshape(3, 1))
    with pytest.raises(ValueError, match="empty"):
        tr.accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


def test_evaluate_accuracy_restores_mode_and_handles_functions():
    X, y = blobs()
    net = small_net()
    net.train()
    acc = tr.evaluate_accuracy(net, load_array((X, y), 64, is_train=False))
    assert 0.0 <= acc <= 1.0 and net.training
    oracle = lambda X: nn.functional.one_hot(y[: len(X)], 3).float()  # noqa: E731
    assert tr.evaluate_accuracy(oracle, load_array((X, y), 1000, is_train=False)) == 1.0
    with pytest.raises(ValueError, match="empty"):
        tr.evaluate_accuracy(net, [])


def test_train_classifier_learns_and_reports(tmp_path):
    torch.manual_seed(0)
    X, y = blobs()
    net = small_net()
    h = tr.train_classifier(net, load_array((X, y), 32), load_array((X, y), 128, is_train=False),
                            nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.2),
                            num_epochs=5, progress=False, plot=False, plot_path=tmp_path / "p.png")
    assert h.epoch == [1, 2, 3, 4, 5]
    assert h.test_acc[-1] > 0.95 and h.train_loss[-1] < h.train_loss[0]
    assert all(v > 0 for v in h.examples_per_sec) and len(h.seconds) == 5
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "5 epochs" in repr(h) and set(h.as_dict()) >= {"train_loss", "test_acc"}
    assert repr(tr.History()) == "History(empty)"


def test_train_classifier_accepts_per_example_loss_and_scratch_optimizer():
    torch.manual_seed(0)
    X, y = blobs()
    W = torch.zeros(2, 3, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)

    class Scratch(nn.Module):
        def __init__(self):
            super().__init__()
            self.W, self.b = nn.Parameter(W.detach().clone()), nn.Parameter(b.detach().clone())

        def forward(self, X):
            return X @ self.W + self.b

    class SGD:
        def __init__(self, params, lr):
            self.params, self.lr = list(params), lr

        def zero_grad(self):
            for p in self.params:
                p.grad = None

        def step(self):
            with torch.no_grad():
                for p in self.params:
                    p -= self.lr * p.grad

    net = Scratch()
    loss = lambda y_hat, y: nn.functional.cross_entropy(y_hat, y, reduction="none")  # noqa: E731
    h = tr.train_classifier(net, load_array((X, y), 32), None, loss, SGD(net.parameters(), 0.5),
                            3, progress=False, plot=False)
    assert h.test_acc == [None, None, None] and h.train_acc[-1] > 0.9


def test_scheduler_steps_per_epoch_and_per_batch():
    X, y = blobs(64)
    for interval, expected_steps in [("epoch", 2), ("batch", 2 * 4)]:
        net = small_net()
        opt = torch.optim.SGD(net.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        tr.train_classifier(net, load_array((X, y), 16), None, nn.CrossEntropyLoss(), opt, 2,
                            scheduler=sched, scheduler_interval=interval, progress=False, plot=False)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 ** expected_steps)


def test_grad_clip_bounds_the_update():
    X, y = blobs(32)
    net = nn.Linear(2, 3)
    before = [p.detach().clone() for p in net.parameters()]
    tr.train_classifier(net, load_array((X * 1000, y), 32), None, nn.CrossEntropyLoss(),
                        torch.optim.SGD(net.parameters(), lr=1.0), 1, grad_clip=0.01,
                        progress=False, plot=False)
    step = torch.sqrt(sum(((p.detach() - q) ** 2).sum() for p, q in zip(net.parameters(), before)))
    assert step <= 0.01 + 1e-6


def test_divergence_stops_with_clear_error():
    X, y = blobs(64)
    calls = {"n": 0}

    def loss(y_hat, y):
        calls["n"] += 1
        value = nn.functional.cross_entropy(y_hat, y)
        return value * float("nan") if calls["n"] == 6 else value

    net = small_net()
    with pytest.raises(tr.TrainingDivergedError, match=r"epoch 2, batch 2.*learning rate"):
        tr.train_classifier(net, load_array((X, y), 16), None, loss,
                            torch.optim.SGD(net.parameters(), lr=0.1), 3, progress=False, plot=False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_epochs=0), "num_epochs"), (dict(scheduler_interval="step"), "scheduler_interval"),
    (dict(grad_clip=0.0), "grad_clip"), (dict(resume=True), "checkpoint_path"),
    (dict(amp="int8"), "amp"), (dict(amp="fp16"), "CUDA"), (dict(sync_every=0), "sync_every"),
])
def test_train_classifier_bad_arguments(kwargs, message):
    X, y = blobs(32)
    net = small_net()
    args = dict(num_epochs=1, progress=False, plot=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        tr.train_classifier(net, load_array((X, y), 16), None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.1), **args)


def test_empty_loader_is_an_error():
    net = small_net()
    with pytest.raises(ValueError, match="no batches"):
        tr.train_classifier(net, [], None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.1), 1, progress=False, plot=False)


def run(num_epochs, ckpt=None, resume=False, generator=None, stop_after=None):
    """Train a dropout net with Adam + schedule; optionally stop early to simulate a crash."""
    X, y = blobs(200, seed=1)
    torch.manual_seed(42)
    net = small_net(dropout=0.3)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loader = tensor_loader(X, y, batch_size=32, shuffle=True, generator=generator)
    if resume:
        torch.manual_seed(999)  # a fresh process would have a different RNG state
    h = tr.train_classifier(net, loader, None, nn.CrossEntropyLoss(), opt,
                            stop_after or num_epochs, scheduler=sched, checkpoint_path=ckpt,
                            resume=resume, progress=False, plot=False)
    return net, h, opt


@pytest.mark.parametrize("use_generator", [False, True])
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, use_generator):
    gen = (lambda: torch.Generator().manual_seed(7)) if use_generator else (lambda: None)
    straight, h_straight, _ = run(5, generator=gen())
    ckpt = tmp_path / "run.pt"
    run(5, ckpt=ckpt, generator=gen(), stop_after=2)  # "interrupted" after 2 epochs
    assert tr.load_checkpoint(ckpt)["epoch"] == 2
    resumed, h_resumed, opt = run(5, ckpt=ckpt, resume=True, generator=gen())
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert h_resumed.epoch == [1, 2, 3, 4, 5]
    assert h_resumed.train_loss == pytest.approx(h_straight.train_loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7**5)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp files left


def test_checkpoint_from_other_model_names_keys(tmp_path):
    ckpt = tmp_path / "c.pt"
    run(1, ckpt=ckpt)
    X, y = blobs(32)
    other = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 3))
    with pytest.raises(tr.CheckpointError, match=r"different model.*(shape mismatch|missing keys)") as info:
        tr.train_classifier(other, load_array((X, y), 16), None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(other.parameters(), lr=0.1), 2, checkpoint_path=ckpt,
                            resume=True, progress=False, plot=False)
    assert "0.weight" in str(info.value)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch evil_was_here",))


def test_load_checkpoint_refuses_code_and_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, bad)
    with pytest.raises(tr.CheckpointError, match="refusing to load"):
        tr.load_checkpoint(bad)
    assert not (tmp_path / "evil_was_here").exists()
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(tr.CheckpointError):
        tr.load_checkpoint(tmp_path / "evil.pkl")
    assert not (tmp_path / "evil_was_here").exists()
    with pytest.raises(tr.CheckpointError, match="does not exist"):
        tr.load_checkpoint(tmp_path / "none.pt")


def test_save_checkpoint_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "c.pt"
    tr.save_checkpoint(target, {"epoch": 1})

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tr.torch, "save", broken_save)
    with pytest.raises(OSError):
        tr.save_checkpoint(target, {"epoch": 2})
    monkeypatch.undo()
    assert tr.load_checkpoint(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def conv_data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 1, 8, 8, generator=g)
    y = (X.mean(dim=(1, 2, 3)) > 0).long()
    return X, y


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def train_variant(**switches):
    X, y = conv_data()
    net = conv_net()
    torch.manual_seed(1)
    h = tr.train_classifier(net, load_array((X, y), 16, is_train=False), None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.1), 2, progress=False, plot=False,
                            **switches)
    return net, h


def test_speed_switches_keep_results_within_tolerance():
    base, h = train_variant()
    cl, h_cl = train_variant(channels_last=True)
    for p, q in zip(base.parameters(), cl.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    bf, h_bf = train_variant(amp="bf16")
    assert h_bf.train_loss == pytest.approx(h.train_loss, rel=0.05)
    for p, q in zip(base.parameters(), bf.parameters()):
        torch.testing.assert_close(p, q, rtol=0.05, atol=0.02)


@pytest.mark.slow
def test_torch_compile_switch_matches_eager():
    base, _ = train_variant()
    compiled, _ = train_variant(compile=True)
    for p, q in zip(base.parameters(), compiled.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_on_epoch_end_callback_sees_history():
    X, y = blobs(64)
    net = small_net()
    calls = []
    tr.train_classifier(net, load_array((X, y), 16), None, nn.CrossEntropyLoss(),
                        torch.optim.SGD(net.parameters(), lr=0.1), 3, progress=False, plot=False,
                        on_epoch_end=lambda e, h: calls.append((e, len(h.epoch))))
    assert calls == [(1, 1), (2, 2), (3, 3)]
