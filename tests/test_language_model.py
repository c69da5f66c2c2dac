import math

import pytest
import torch
from torch import nn

from course_utils import language_model as lm
from course_utils.text import SeqDataLoader
from course_utils.training import TrainingDivergedError


def test_perplexity_best_and_uniform_cases():
    targets = torch.tensor([[1, 2, 3]])
    perfect = torch.full((1, 3, 5), -1e4)
    perfect[0, torch.arange(3), targets[0]] = 1e4
    assert lm.perplexity(perfect, targets) == pytest.approx(1.0)
    assert lm.perplexity(torch.zeros(1, 3, 5), targets) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        lm.perplexity(torch.zeros(2, 3, 5), targets)


def test_perplexity_of_a_huge_loss_is_inf_not_an_overflow():
    targets = torch.tensor([[1, 2, 3]])
    wrong = torch.zeros(1, 3, 5)
    wrong[0, :, 0] = 1e4  # every target gets log-probability about -1e4
    assert lm.perplexity(wrong, targets) == math.inf
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    with torch.no_grad():
        net.output.bias[0] = 1e4
    loader = SeqDataLoader([1, 2, 3, 4] * 100, 4, 5, use_random_iter=False, seed=0)
    assert lm.evaluate_perplexity(net, loader) == math.inf


def test_detach_state_handles_tensors_and_tuples():
    h = torch.ones(2, requires_grad=True) * 2
    assert not lm.detach_state(h).requires_grad
    a, (b, c) = lm.detach_state((h, [h, h]))
    assert not (a.requires_grad or b.requires_grad or c.requires_grad)
    assert lm.detach_state(None) is None
    with pytest.raises(TypeError):
        lm.detach_state("state")


def test_rnn_language_model_shapes_and_validation():
    net = lm.RNNLanguageModel(nn.LSTM(7, 16, batch_first=True), 7)
    logits, (h, c) = net(torch.randint(0, 7, (3, 5)))
    assert logits.shape == (3, 5, 7) and h.shape == (1, 3, 16)
    with pytest.raises(ValueError, match="batch_first"):
        lm.RNNLanguageModel(nn.GRU(7, 16), 7)
    with pytest.raises(ValueError, match="input_size"):
        lm.RNNLanguageModel(nn.GRU(8, 16, batch_first=True), 7)
    with pytest.raises(ValueError, match="batch, num_steps"):
        net(torch.zeros(3, dtype=torch.long))


def periodic_corpus(n=3000):
    return [i % 5 for i in range(n)]  # "01234" repeated: perfectly predictable


def test_training_learns_a_periodic_sequence_and_generates_it():
    torch.manual_seed(0)
    train = SeqDataLoader(periodic_corpus(), 16, 10, use_random_iter=False, seed=0)
    val = SeqDataLoader(periodic_corpus(500), 4, 10, use_random_iter=False, seed=1)
    net = lm.RNNLanguageModel(nn.GRU(5, 32, batch_first=True), 5)
    h = lm.train_language_model(net, train, val, torch.optim.Adam(net.parameters(), lr=0.02), 8,
                                plot=False, progress=False)
    assert h.val_ppl[-1] < 1.1 and h.train_ppl[-1] < h.train_ppl[0]
    assert h.train_ppl == pytest.approx([math.exp(loss) for loss in h.train_loss])
    assert set(h.metrics) == {"train_loss", "train_ppl", "val_ppl", "tokens_per_sec", "seconds", "grad_norm"}
    assert all(t > 0 for t in h.tokens_per_sec) and "8 epochs" in repr(h)
    assert lm.generate(net, [0, 1], 8) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    sampled = lm.generate(net, [3], 5, strategy="sample", temperature=0.1,
                          generator=torch.Generator().manual_seed(0))
    assert sampled == [3, 4, 0, 1, 2, 3]
    assert lm.evaluate_perplexity(net, val) == pytest.approx(h.val_ppl[-1], rel=1e-4)


def test_sequential_training_carries_detached_state():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)

        def forward(self, X, state=None):
            seen.append(None if state is None else state.requires_grad)
            return self.inner(X, state)

    for use_random, expected_first_later in [(False, False), (True, None)]:
        seen.clear()
        loader = SeqDataLoader(periodic_corpus(400), 4, 5, use_random_iter=use_random, seed=0)
        lm.train_language_model(Probe(), loader, None, torch.optim.SGD(Probe().parameters(), lr=0.1), 1,
                                plot=False, progress=False)
        assert seen[0] is None and seen[1] is expected_first_later


def test_gradient_clipping_and_history_norms():
    torch.manual_seed(0)
    loader = SeqDataLoader(periodic_corpus(400), 4, 5, use_random_iter=True, seed=0)
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    h = lm.train_language_model(net, loader, None, torch.optim.SGD(net.parameters(), lr=0.5), 2,
                                grad_clip=0.5, plot=False, progress=False)
    assert all(n > 0 for n in h.grad_norm) and "val_ppl" not in h
    h2 = lm.train_language_model(net, loader, None, torch.optim.SGD(net.parameters(), lr=0.5), 1,
                                 grad_clip=None, plot=False, progress=False)
    assert "grad_norm" not in h2


def test_divergence_and_bad_arguments():
    loader = SeqDataLoader(periodic_corpus(400), 4, 5, use_random_iter=True, seed=0)
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for kwargs in [dict(num_epochs=0), dict(num_epochs=1, grad_clip=0)]:
        with pytest.raises(ValueError):
            lm.train_language_model(net, loader, None, opt, plot=False, progress=False, **kwargs)
    with torch.no_grad():
        net.output.bias.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 1.*learning rate"):
        lm.train_language_model(net, loader, None, opt, 1, plot=False, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        lm.train_language_model(lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5), [], None,
                                opt, 1, plot=False, progress=False)
    with pytest.raises(ValueError, match="empty"):
        lm.evaluate_perplexity(net, [])


def test_huge_learning_rate_reports_inf_perplexity_instead_of_crashing():
    """Issue 14 item 7: this run died with OverflowError (math.exp of a finite loss > 709)."""
    torch.manual_seed(0)
    loader = SeqDataLoader(periodic_corpus(400), 4, 5, use_random_iter=False, seed=0)
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    h = lm.train_language_model(net, loader, loader, torch.optim.SGD(net.parameters(), lr=1e6), 3,
                                grad_clip=None, plot=False, progress=False)
    assert h.train_loss[-1] > 710 and math.isfinite(h.train_loss[-1])
    assert h.train_ppl[-1] == math.inf and h.val_ppl[-1] == math.inf


def test_logits_of_the_wrong_shape_are_named():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)

        def forward(self, X, state=None):
            logits, state = self.inner(X, state)
            return logits[:, -1], state

    net = Flat()
    loader = SeqDataLoader(periodic_corpus(400), 4, 5, use_random_iter=True, seed=0)
    with pytest.raises(ValueError, match=r"logits \(4, 5\) for targets \(4, 5\)"):
        lm.train_language_model(net, loader, None, torch.optim.SGD(net.parameters(), lr=0.1), 1,
                                plot=False, progress=False)


def test_generate_validation():
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    for kwargs, message in [(dict(prefix=[]), "prefix"), (dict(num_preds=-1), "num_preds"),
                            (dict(strategy="beam"), "strategy"), (dict(temperature=0), "temperature")]:
        args = dict(prefix=[1], num_preds=2) | kwargs
        with pytest.raises(ValueError, match=message):
            lm.generate(net, **args)
