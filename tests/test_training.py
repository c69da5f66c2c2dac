"""The training core (fit, History, callbacks) and the classifier built on it."""

import inspect
import math
from unittest import mock

import pytest
import torch
from torch import nn

from course_utils import training as tr
from course_utils.checkpoints import CheckpointError
from course_utils.loaders import load_array, tensor_loader


def blobs(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])
    X = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return X, y


def small_net(dropout=0.0):
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def ce_step(model, batch):
    X, y = batch
    return nn.functional.cross_entropy(model(X), y)


def quiet(**kwargs):
    return dict(progress=False, plot=False, **kwargs)


# --- fit --------------------------------------------------------------------------------------

def test_fit_runs_chapter_03s_loop_exactly():
    """fit == the hand-written loop of chapter 03 (same batches, same order): identical weights."""
    X, y = blobs(96)
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]
    torch.manual_seed(0)
    by_hand = small_net()
    by_fit = small_net()
    by_fit.load_state_dict(by_hand.state_dict())
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.1)
    for _ in range(3):
        for X_b, y_b in batches:
            loss = nn.functional.cross_entropy(by_hand(X_b), y_b)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    tr.fit(by_fit, batches, ce_step, 3, optimizer=torch.optim.SGD(by_fit.parameters(), lr=0.1), **quiet())
    for p, q in zip(by_hand.parameters(), by_fit.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_train_loss_is_the_weighted_epoch_mean():
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)
    batches = [torch.ones(3, 1), torch.ones(1, 1)]  # the losses are 3.0 and 1.0 at w = 0
    values = iter([3.0, 1.0])

    def step(model, batch):  # a loss that does not depend on w, so lr does not matter
        return model(batch).sum() * 0 + next(values)

    h = tr.fit(net, batches, step, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.0), **quiet())
    assert h["train_loss"] == [pytest.approx((3.0 * 3 + 1.0 * 1) / 4)]  # weights: len of the batch
    values = iter([3.0, 1.0])
    h = tr.fit(net, batches, lambda m, b: (step(m, b), 1), 1,
               optimizer=torch.optim.SGD(net.parameters(), lr=0.0), **quiet())
    assert h["train_loss"] == [pytest.approx(2.0)]  # (loss, n): n is the weight


def test_fit_history_evaluation_and_modes():
    X, y = blobs()
    net = small_net(dropout=0.5)
    modes = []

    def evaluate(model):
        modes.append((model.training, torch.is_grad_enabled()))
        return {"test_acc": tr.evaluate_accuracy(model, load_array((X, y), 200, is_train=False)),
                "as_tensor": torch.tensor(1.5)}

    h = tr.fit(net, load_array((X, y), 32), ce_step, 4, optimizer=torch.optim.Adam(net.parameters(), lr=0.01),
               evaluate=evaluate, **quiet())
    assert h.epochs == [1, 2, 3, 4] and len(h) == 4
    assert set(h.metrics) == {"train_loss", "seconds", "test_acc", "as_tensor"}
    assert h["test_acc"][-1] > 0.95 and h.train_loss[-1] < h.train_loss[0]
    assert h["as_tensor"] == [1.5] * 4 and all(s > 0 for s in h["seconds"])
    assert modes == [(False, False)] * 4 and net.training
    assert "4 epochs" in repr(h) and "test_acc" in repr(h) and repr(tr.History()) == "History(empty)"


def test_step_must_return_a_scalar_loss():
    X, y = blobs(32)
    net = small_net()
    per_example = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1], reduction="none")  # noqa: E731
    with pytest.raises(ValueError, match=r"scalar tensor.*\(16,\).*\.mean\(\)"):
        tr.fit(net, load_array((X, y), 16), per_example, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               **quiet())
    with pytest.raises(ValueError, match="weight n must be positive"):
        tr.fit(net, load_array((X, y), 16), lambda m, b: (ce_step(m, b), 0), 1,
               optimizer=torch.optim.SGD(net.parameters(), lr=0.1), **quiet())


def test_scheduler_steps_per_epoch_and_per_batch():
    X, y = blobs(64)
    for interval, expected_steps in [("epoch", 2), ("batch", 2 * 4)]:
        net = small_net()
        opt = torch.optim.SGD(net.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        tr.fit(net, load_array((X, y), 16), ce_step, 2, optimizer=opt, scheduler=sched,
               scheduler_interval=interval, **quiet())
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 ** expected_steps)


def test_divergence_names_epoch_and_batch_and_skips_the_update():
    X, y = blobs(64)
    calls = {"n": 0}

    def step(model, batch):
        calls["n"] += 1
        loss = ce_step(model, batch)
        return loss * float("nan") if calls["n"] == 6 else loss

    net = small_net()
    before = {}

    class Snapshot:
        def before_batch(self, run):
            before.update({k: v.clone() for k, v in run.model.state_dict().items()})

    with pytest.raises(tr.TrainingDivergedError, match=r"nan in epoch 2, batch 2\. Try a lower learning rate"):
        tr.fit(net, load_array((X, y), 16), step, 3, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               callbacks=[Snapshot()], **quiet())
    for k, v in net.state_dict().items():  # the NaN loss was never back-propagated
        assert torch.equal(v, before[k])
    assert issubclass(tr.TrainingDivergedError, FloatingPointError)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epochs=0), ValueError, "epochs"), (dict(epochs=True), ValueError, "epochs"),
    (dict(scheduler_interval="step"), ValueError, "scheduler_interval"),
    (dict(resume=True), ValueError, "checkpoint_path"),
    (dict(callbacks=[object()]), TypeError, "not a callback.*before_epoch"),
])
def test_fit_bad_arguments(kwargs, error, message):
    X, y = blobs(32)
    net = small_net()
    args = dict(epochs=1) | kwargs
    epochs = args.pop("epochs")
    with pytest.raises(error, match=message):
        tr.fit(net, load_array((X, y), 16), ce_step, epochs, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               **quiet(**args))


def test_empty_loader_is_an_error():
    net = small_net()
    with pytest.raises(ValueError, match="no batches"):
        tr.fit(net, [], ce_step, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), **quiet())


def test_callbacks_see_every_hook_in_order_and_can_stop_and_add_metrics():
    X, y = blobs(48)
    events = []

    class Recorder:
        def before_fit(self, run):
            events.append(("before_fit", run.epochs))

        def before_epoch(self, run):
            events.append(("before_epoch", run.epoch))

        def before_batch(self, run):
            events.append(("before_batch", run.batch_index))
            run.batch = (run.batch[0] * 0, run.batch[1])  # a callback may replace the batch

        def after_backward(self, run):
            events.append(("after_backward", run.batch_index))

        def after_step(self, run):
            events.append(("after_step", run.batch_index))

        def after_epoch(self, run):
            events.append(("after_epoch", run.epoch, run.count))
            run.metrics["seen"] = run.count
            run.stop = run.epoch == 2

    seen_inputs = []

    def step(model, batch):
        seen_inputs.append(float(batch[0].abs().sum()))
        return ce_step(model, batch)

    net = small_net()
    h = tr.fit(net, load_array((X, y), 16, is_train=False), step, 5,
               optimizer=torch.optim.SGD(net.parameters(), lr=0.1), callbacks=[Recorder()], **quiet())
    assert h.epochs == [1, 2] and h["seen"] == [48, 48]  # stopped after epoch 2
    assert seen_inputs == [0.0] * 6
    per_epoch = [event for i in (1, 2, 3) for event in (("before_batch", i), ("after_backward", i), ("after_step", i))]
    assert events == [("before_fit", 5), ("before_epoch", 1), *per_epoch, ("after_epoch", 1, 48),
                      ("before_epoch", 2), *per_epoch, ("after_epoch", 2, 48)]


def test_callbacks_see_the_loss_before_and_after_the_step_and_can_stop_after_any_batch():
    X, y = blobs(64)
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    returned, seen = [], []

    def step(model, batch):
        returned.append(ce_step(model, batch))
        return returned[-1]

    class StopAfterTwo:
        def after_backward(self, run):  # gradients computed, weights not yet changed
            self.weight = run.model[0].weight.detach().clone()

        def after_step(self, run):
            assert not torch.equal(run.model[0].weight, self.weight)  # after optimizer.step()
            assert isinstance(run.loss, torch.Tensor) and not run.loss.requires_grad
            seen.append(run.loss)
            run.stop = run.batch_index == 2

    net = small_net()
    h = tr.fit(net, batches, step, 3, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               callbacks=[StopAfterTwo()], **quiet())
    assert len(returned) == 2 and h.epochs == [1]  # stopped after batch 2 of epoch 1
    assert [float(v) for v in seen] == [float(v) for v in returned]
    assert h["train_loss"] == [(float(returned[0]) + float(returned[1])) / 2]  # the batches it ran


def test_clip_grad_norm_bounds_the_update_and_records_the_norm():
    X, y = blobs(32)
    net = nn.Linear(2, 3)
    before = [p.detach().clone() for p in net.parameters()]
    h = tr.fit(net, load_array((X * 1000, y), 32), ce_step, 1, optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
               callbacks=[tr.ClipGradNorm(0.01, record="grad_norm")], **quiet())
    step = torch.sqrt(sum(((p.detach() - q) ** 2).sum() for p, q in zip(net.parameters(), before, strict=True)))
    assert step <= 0.01 + 1e-6 and h["grad_norm"][0] > 1.0  # the norm before clipping
    with pytest.raises(ValueError, match="max_norm"):
        tr.ClipGradNorm(0)


def test_grad_scaler_path_equals_plain_training():
    """Mixed-precision plumbing (GradScaler) without branches: a power-of-two scale is exact."""
    X, y = blobs(64)
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=16.0)):
        torch.manual_seed(0)
        net = nn.Linear(2, 3)
        tr.fit(net, load_array((X, y), 16, is_train=False), ce_step, 2,
               optimizer=torch.optim.SGD(net.parameters(), lr=0.5), scaler=scaler,
               callbacks=[tr.ClipGradNorm(0.5)], **quiet())
        results.append(net.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], rtol=0, atol=0)


def test_channels_last_keeps_results_within_tolerance():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 1, 8, 8, generator=g)
    y = (X.mean(dim=(1, 2, 3)) > 0).long()
    nets = []
    for callbacks in ([], [tr.ChannelsLast()]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        tr.fit(net, load_array((X, y), 16, is_train=False), ce_step, 2,
               optimizer=torch.optim.SGD(net.parameters(), lr=0.1), callbacks=callbacks, **quiet())
        nets.append(net)
    assert nets[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_throughput_counts_items_per_second():
    X, y = blobs(64)
    net = small_net()
    h = tr.fit(net, load_array((X, y), 16), ce_step, 2, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               callbacks=[tr.Throughput("rows_per_sec")], **quiet())
    assert h["rows_per_sec"] == pytest.approx([64 / s for s in h["seconds"]])


def test_fit_with_live_plot_outside_a_notebook(tmp_path):
    X, y = blobs(64)
    net = small_net()
    h = tr.fit(net, load_array((X, y), 16), ce_step, 2, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               callbacks=[tr.Throughput()], progress=True, plot=True, title="blobs")
    assert h.epochs == [1, 2]



def test_live_plot_title_defaults_to_the_models_name(monkeypatch):
    titles = []
    real = tr.TrainingMonitor

    def spy(**kwargs):
        titles.append(kwargs["title"])
        return real(**kwargs)

    monkeypatch.setattr(tr, "TrainingMonitor", spy)
    X, y = blobs(32)
    for title in (None, "mine"):
        net = small_net()
        tr.fit(net, load_array((X, y), 16), ce_step, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               progress=False, plot=False, title=title)
    assert titles == [tr.model_name(small_net()), "mine"]
    sequential = nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU())
    assert tr.model_name(sequential) == "Sequential: Flatten → Linear → ReLU"
    assert tr.model_name(nn.Linear(2, 3)) == "Linear"
    assert tr.model_name(nn.Sequential(*[nn.ReLU()] * 7)) == "Sequential"  # too long to list


# --- History ------------------------------------------------------------------------------------

def test_history_access_errors_and_consistency():
    h = tr.History("step")
    h.append(1, {"train_loss": 1.0, "test_acc": 0.5})
    assert h["test_acc"] == [0.5] and h.test_acc == [0.5] and "test_acc" in h and "x" not in h
    with pytest.raises(KeyError, match=r"no metric 'val_acc'.*\['test_acc', 'train_loss'\]"):
        h["val_acc"]
    with pytest.raises(AttributeError, match="no attribute or metric 'val_acc'"):
        _ = h.val_acc
    with pytest.raises(ValueError, match=r"epoch 2 reports metrics \['train_loss'\]"):
        h.append(2, {"train_loss": 0.5})


def test_history_round_trip_and_checkpoint_of_another_loop():
    h = tr.History("train_language_model.<locals>.step")
    h.append(1, {"train_loss": 1.0, "train_ppl": 2.7})
    again = tr.History.from_dict(h.as_dict(), "train_language_model.<locals>.step")
    assert again.epochs == [1] and again.metrics == h.metrics
    with pytest.raises(CheckpointError, match=r"run\.pt was written by a run with step "
                       r"'train_language_model.<locals>.step' \(metrics \['train_loss', 'train_ppl'\]\), "
                       r"but this run's step is 'train_classifier.<locals>.step'"):
        tr.History.from_dict(h.as_dict(), "train_classifier.<locals>.step", "run.pt")
    with pytest.raises(CheckpointError, match=r"not written by fit\(\).*\['epoch', 'train_ppl'\]"):
        tr.History.from_dict({"epoch": [1], "train_ppl": [3.0]}, "step")


# --- classification -------------------------------------------------------------------------

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
    net.eval()
    tr.evaluate_accuracy(net, load_array((X, y), 64, is_train=False))
    assert not net.training
    oracle = lambda X: nn.functional.one_hot(y[: len(X)], 3).float()  # noqa: E731
    assert tr.evaluate_accuracy(oracle, load_array((X, y), 1000, is_train=False)) == 1.0
    with pytest.raises(ValueError, match="empty"):
        tr.evaluate_accuracy(net, [])


def test_train_classifier_learns_and_reports():
    torch.manual_seed(0)
    X, y = blobs()
    net = small_net()
    test_iter = load_array((X, y), 128, is_train=False)
    h = tr.train_classifier(net, load_array((X, y), 32), test_iter, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.2), num_epochs=5, progress=False, plot=False)
    assert h.epochs == [1, 2, 3, 4, 5]
    assert set(h.metrics) == {"train_loss", "train_acc", "test_acc", "examples_per_sec", "seconds"}
    assert h.test_acc[-1] > 0.95 and h.train_loss[-1] < h.train_loss[0] and h.train_acc[-1] > 0.9
    assert h.test_acc[-1] == tr.evaluate_accuracy(net, test_iter)
    assert all(v > 0 for v in h.examples_per_sec) and len(h.seconds) == 5


def test_train_acc_counts_the_training_steps_predictions():
    """train_acc of epoch 1 = accuracy of each batch's predictions at the moment it was trained on."""
    X, y = blobs(64)
    torch.manual_seed(0)
    net = small_net()
    replay = small_net()
    replay.load_state_dict(net.state_dict())
    h = tr.train_classifier(net, load_array((X, y), 16, is_train=False), None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.5), 1, progress=False, plot=False)
    opt = torch.optim.SGD(replay.parameters(), lr=0.5)
    correct = 0
    for X_b, y_b in load_array((X, y), 16, is_train=False):
        y_hat = replay(X_b)
        correct += int((y_hat.argmax(1) == y_b).sum())
        loss = nn.functional.cross_entropy(y_hat, y_b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert h.train_acc == [correct / 64] and "test_acc" not in h


def test_train_classifier_accepts_per_example_loss_and_scratch_optimizer():
    torch.manual_seed(0)
    X, y = blobs()

    class Scratch(nn.Module):
        def __init__(self):
            super().__init__()
            self.W, self.b = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(3))

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
    h = tr.train_classifier(net, load_array((X, y), 32), None, loss, SGD(net.parameters(), 0.5), 3,
                            progress=False, plot=False)
    assert h.train_acc[-1] > 0.9 and math.isfinite(h.train_loss[-1])


def test_train_classifier_passes_callbacks_and_channels_last():
    X = torch.randn(32, 1, 4, 4)
    y = (X.mean(dim=(1, 2, 3)) > 0).long()
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 2))
    calls = []

    class Note:
        def after_epoch(self, run):
            calls.append(run.epoch)

    tr.train_classifier(net, tensor_loader(X, y, batch_size=8), None, nn.CrossEntropyLoss(),
                        torch.optim.SGD(net.parameters(), lr=0.1), 2, channels_last=True,
                        callbacks=[Note()], progress=False, plot=False)
    assert calls == [1, 2] and net[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("setting, faster, expected", [
    ("", "fp32+cl", True), ("", "fp32", False), ("0", "fp32+cl", False), ("1", "fp32", True)])
def test_train_classifier_layout_is_timed_unless_set(monkeypatch, tmp_path, setting, faster, expected):
    """Unset, the layout is the one timed faster (a fake stopwatch here); set, the setting rules."""
    from course_utils import fast_settings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_CHANNELS_LAST", setting)
    monkeypatch.delenv("COURSE_PRECISION", raising=False)
    monkeypatch.setattr(fast_settings, "time_training_steps", lambda model, X, y, loss, variants: {
        fast_settings._name(b, c): 1.0 if fast_settings._name(b, c) == faster else 2.0 for b, c in variants})
    X = torch.randn(16, 2, 4, 4)  # two input channels: with one, both layouts are the same
    y = (X.mean(dim=(1, 2, 3)) > 0).long()
    net = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 2))
    tr.train_classifier(net, tensor_loader(X, y, batch_size=8), None, nn.CrossEntropyLoss(),
                        torch.optim.SGD(net.parameters(), lr=0.1), 1, device="cpu", progress=False, plot=False)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last) is expected


@pytest.mark.parametrize("precision, mixed, expected", [
    ("bf16", True, torch.bfloat16), ("bf16", False, torch.float32), ("fp32", True, torch.float32),
])
def test_train_classifier_forward_runs_in_the_chosen_precision(monkeypatch, precision, mixed, expected):
    monkeypatch.setenv("COURSE_PRECISION", precision)
    X = torch.randn(16, 6)
    y = (X.sum(dim=1) > 0).long()
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    net[2].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    h = tr.train_classifier(net, tensor_loader(X, y, batch_size=8), None, nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.1), 1, device="cpu",
                            mixed_precision=mixed, progress=False, plot=False)
    assert seen == [expected, expected]
    assert net[0].weight.dtype == torch.float32 and math.isfinite(h.train_loss[-1])  # master weights stay fp32


# --- wrappers pass every fit option (issue 33) -------------------------------------------------

def _wrappers():
    """(name, call(**fit_options)) for every convenience wrapper around fit."""
    from course_utils.language_model import RNNLanguageModel, train_language_model
    from course_utils.seq2seq import train_seq2seq

    lm = RNNLanguageModel(nn.GRU(3, 4, batch_first=True), 3)
    return [
        ("train_classifier", lambda **o: tr.train_classifier(
            small_net(), [], None, nn.CrossEntropyLoss(), torch.optim.SGD(small_net().parameters(), lr=0.1), 1,
            "cpu", **o)),
        ("train_language_model", lambda **o: train_language_model(
            lm, [], None, torch.optim.SGD(lm.parameters(), lr=0.1), 1, "cpu", **o)),
        ("train_seq2seq", lambda **o: train_seq2seq(
            nn.Linear(1, 1), [], None, torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), 1, "cpu", **o)),
    ]


def test_fit_options_are_exactly_fits_keyword_options():
    """Fails when fit gains (or loses, or retypes) a keyword: FitOptions, and so every wrapper's
    **fit_options, must follow."""
    keywords = {name: p.annotation for name, p in inspect.signature(tr.fit).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name != "optimizer"}  # optimizer: a wrapper's own argument
    options = {name: getattr(t, "__forward_arg__", t) for name, t in tr.FitOptions.__annotations__.items()}
    assert options == keywords


def test_every_wrapper_passes_every_fit_option_unchanged(monkeypatch):
    from course_utils.language_model import train_language_model
    from course_utils.seq2seq import train_seq2seq

    for wrapper in (tr.train_classifier, train_language_model, train_seq2seq):
        params = inspect.signature(wrapper).parameters
        assert [p.annotation for p in params.values() if p.kind is p.VAR_KEYWORD] == ["Unpack[FitOptions]"]
        assert not set(params) & set(tr.FitOptions.__annotations__), wrapper  # none restated by hand
    seen = {}
    monkeypatch.setattr(tr, "fit", lambda *args, **kwargs: seen.update(kwargs) or tr.History())
    mine = tr.Throughput("mine")
    values = dict(scheduler=object(), scheduler_interval="batch", evaluate=lambda model: {"mine": 7.0},
                  callbacks=[mine], scaler=object(), checkpoint_path="ckpt.pt", resume=True, progress=True,
                  plot=["train_loss"], title="a title", sync_every=5)
    assert set(values) == set(tr.FitOptions.__annotations__)
    for name, call in _wrappers():
        seen.clear()
        call(**values)
        for option, value in values.items():
            if option == "callbacks":
                assert seen[option][-1] is mine, name  # after the wrapper's own callbacks
            elif option == "evaluate":
                assert seen[option](small_net())["mine"] == 7.0, name  # added to the wrapper's metrics
            else:
                assert seen[option] is value, (name, option)


def test_reading_losses_back_every_k_batches_changes_no_number_and_still_names_a_nan_batch():
    """sync_every (no host sync per batch on a GPU): the same history to the last bit, the same
    live values, and a NaN loss still named by its own batch, found at the next read-back."""
    X, y = blobs(96)
    batches = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 96, 8)]  # 12 batches: 5 + 5 + 2 at k = 5
    runs = {}
    for k in (1, 5, 64):
        torch.manual_seed(0)
        net = small_net()
        seen: list[float] = []

        def record(self, seen=seen, **kw):
            seen.append(kw["loss"])

        with mock.patch.object(tr.TrainingMonitor, "step", record):
            h = tr.fit(net, batches, ce_step, 3, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                       sync_every=k, **quiet())
        runs[k] = (h["train_loss"], seen, [p.detach().clone() for p in net.parameters()])
    for k in (5, 64):
        assert runs[k][0] == runs[1][0] and runs[k][1] == runs[1][1], k
        assert all(torch.equal(a, b) for a, b in zip(runs[k][2], runs[1][2], strict=True))

    def nan_at_batch_7(model, batch):
        loss = ce_step(model, batch)
        return loss * float("nan") if batch[0] is batches[6][0] else loss
    net = small_net()
    with pytest.raises(tr.TrainingDivergedError, match="epoch 1, batch 7"):
        tr.fit(net, batches, nan_at_batch_7, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
               sync_every=5, **quiet())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="sync_every must be a positive int"):
            tr.fit(net, batches, ce_step, 1, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                   sync_every=bad, **quiet())


def test_fit_with_adds_the_callers_metrics_and_refuses_a_clash():
    X, y = blobs(32)
    net = small_net()
    options = tr.FitOptions(evaluate=lambda model: {"extra": 1.0}, **quiet())
    h = tr.train_classifier(net, [(X, y)], [(X, y)], nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.1),
                            1, **options)
    assert h["extra"] == [1.0] and "test_acc" in h
    with pytest.raises(ValueError, match=r"evaluate reports \['test_acc'\]"):
        tr.train_classifier(net, [(X, y)], [(X, y)], nn.CrossEntropyLoss(),
                            torch.optim.SGD(net.parameters(), lr=0.1), 1, evaluate=lambda m: {"test_acc": 0.0},
                            **quiet())


def test_model_device_is_the_given_device_else_the_first_parameter_or_buffer():
    assert tr.model_device(nn.Linear(2, 1)) == torch.device("cpu")
    assert tr.model_device(nn.Linear(2, 1), "meta") == torch.device("meta")
    assert tr.model_device(nn.Linear(2, 1).to("meta")) == torch.device("meta")
    assert tr.model_device(nn.BatchNorm1d(2, affine=False).to("meta")) == torch.device("meta")  # a buffer
    assert tr.model_device(nn.ReLU()) == torch.device("cpu")
