"""Checkpoint and resume through fit: for every task a resumed run ends bit for bit where an
uninterrupted one does, and a checkpoint of another task is refused with what differs."""

import pytest
import torch
from torch import nn

from course_utils import language_model as lm
from course_utils import seq2seq, training
from course_utils.checkpoints import CheckpointError, load_checkpoint
from course_utils.fra_eng import fra_eng_loaders
from course_utils.loaders import tensor_loader
from course_utils.text import SeqDataLoader


def assert_same_parameters(a, b):
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def interrupted_and_resumed(run, tmp_path, epochs, stop_after):
    """(uninterrupted result, resumed result): the second run stops after `stop_after` epochs and
    a third one, started from another RNG state as a fresh process would be, resumes it."""
    straight = run(epochs)
    ckpt = tmp_path / "run.pt"
    run(stop_after, ckpt=ckpt)
    assert load_checkpoint(ckpt)["epoch"] == stop_after
    resumed = run(epochs, ckpt=ckpt, resume=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary files left
    return straight, resumed


# --- classifier -------------------------------------------------------------------------------

def blobs(n=200):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (n,), generator=g)
    X = torch.tensor([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])[y] + 0.5 * torch.randn(n, 2, generator=g)
    return X, y


def classifier_run(use_generator):
    def run(num_epochs, ckpt=None, resume=False):
        X, y = blobs()
        torch.manual_seed(42)
        net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
        generator = torch.Generator().manual_seed(7) if use_generator else None
        loader = tensor_loader(X, y, batch_size=32, shuffle=True, generator=generator)
        if resume:
            torch.manual_seed(999)  # a fresh process would have a different RNG state
        h = training.train_classifier(net, loader, tensor_loader(X, y, batch_size=100), nn.CrossEntropyLoss(),
                                      opt, num_epochs, scheduler=sched, checkpoint_path=ckpt, resume=resume,
                                      progress=False, plot=False)
        return net, h, opt
    return run


@pytest.mark.parametrize("use_generator", [False, True])
def test_classifier_resume_equals_uninterrupted_run(tmp_path, use_generator):
    (net_a, h_a, _), (net_b, h_b, opt) = interrupted_and_resumed(classifier_run(use_generator), tmp_path, 5, 2)
    assert_same_parameters(net_a, net_b)
    assert h_b.epochs == [1, 2, 3, 4, 5]
    for name in ("train_loss", "train_acc", "test_acc"):
        assert h_b[name] == h_a[name]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7**5)


def test_resume_after_the_last_epoch_trains_no_more(tmp_path):
    run = classifier_run(False)
    ckpt = tmp_path / "run.pt"
    net_a, h_a, _ = run(2, ckpt=ckpt)
    net_b, h_b, _ = run(2, ckpt=ckpt, resume=True)
    assert_same_parameters(net_a, net_b)
    assert h_b.metrics == h_a.metrics


# --- a custom step: fit itself ----------------------------------------------------------------

def test_fit_resume_with_a_custom_step_and_per_batch_schedule(tmp_path):
    X = torch.randn(96, 3, generator=torch.Generator().manual_seed(0))
    y = X @ torch.tensor([1.0, -2.0, 0.5])

    def step(model, batch):
        X, y = batch
        return nn.functional.mse_loss(model(X)[:, 0], y)

    def run(num_epochs, ckpt=None, resume=False):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=4 * 6)
        loader = tensor_loader(X, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
        if resume:
            torch.manual_seed(5)
        h = training.fit(net, loader, step, num_epochs, optimizer=opt, scheduler=sched, scheduler_interval="batch",
                         checkpoint_path=ckpt, resume=resume, progress=False, plot=False)
        return net, h

    (net_a, h_a), (net_b, h_b) = interrupted_and_resumed(run, tmp_path, 4, 3)
    assert_same_parameters(net_a, net_b)
    assert h_b["train_loss"] == h_a["train_loss"]


# --- language model -------------------------------------------------------------------------

class DropoutLM(nn.Module):
    def __init__(self, vocab=7):
        super().__init__()
        self.inner = lm.RNNLanguageModel(nn.GRU(vocab, 16, batch_first=True), vocab)
        self.drop = nn.Dropout(0.3)

    def forward(self, X, state=None):
        logits, state = self.inner(X, state)
        return self.drop(logits), state


def lm_run(use_random_iter):
    def run(num_epochs, ckpt=None, resume=False):
        corpus = [(i * 3 + i // 7) % 7 for i in range(1200)]
        loader = SeqDataLoader(corpus, 8, 6, use_random_iter=use_random_iter, seed=5)
        torch.manual_seed(0)
        net = DropoutLM()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
        if resume:
            torch.manual_seed(123)
        h = lm.train_language_model(net, loader, None, opt, num_epochs, scheduler=sched, checkpoint_path=ckpt,
                                    resume=resume, plot=False, progress=False)
        return net, h, opt
    return run


@pytest.mark.parametrize("use_random_iter", [True, False])
def test_language_model_resume_equals_uninterrupted_run(tmp_path, use_random_iter):
    (net_a, h_a, _), (net_b, h_b, opt) = interrupted_and_resumed(lm_run(use_random_iter), tmp_path, 4, 2)
    assert_same_parameters(net_a, net_b)
    assert h_b.epochs == [1, 2, 3, 4] and h_b["train_ppl"] == h_a["train_ppl"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.8**4)


# --- seq2seq --------------------------------------------------------------------------------

class TinyDropoutSeq2Seq(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, hidden=16):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, hidden)
        self.tgt_emb = nn.Embedding(tgt_vocab, hidden)
        self.encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.decoder = nn.GRU(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, src, src_len, tgt_in):
        _, h = self.encoder(self.drop(self.src_emb(src)))
        out, _ = self.decoder(self.drop(self.tgt_emb(tgt_in)), h)
        return self.out(out)


def seq2seq_run(num_epochs, ckpt=None, resume=False):
    data = fra_eng_loaders(32, 6, num_examples=160, seed=2)
    torch.manual_seed(0)
    net = TinyDropoutSeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    if resume:
        torch.manual_seed(321)
    h = seq2seq.train_seq2seq(net, data.train_iter, data.val_iter, opt, num_epochs, scheduler=sched,
                              checkpoint_path=ckpt, resume=resume, plot=False, progress=False)
    return net, h, opt


def test_seq2seq_resume_equals_uninterrupted_run(tmp_path):
    (net_a, h_a, _), (net_b, h_b, opt) = interrupted_and_resumed(seq2seq_run, tmp_path, 3, 1)
    assert_same_parameters(net_a, net_b)
    assert h_b.epochs == [1, 2, 3] and h_b["val_loss"] == h_a["val_loss"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9**3)


# --- checkpoints of another task --------------------------------------------------------------

def test_checkpoint_of_another_training_function_names_both(tmp_path):
    """Issue 14 item 8: was `TypeError: History.__init__() got an unexpected keyword argument`."""
    ckpt = tmp_path / "lm.pt"
    corpus = [i % 5 for i in range(300)]
    loader = SeqDataLoader(corpus, 4, 5, use_random_iter=True, seed=0)
    torch.manual_seed(0)
    net = lm.RNNLanguageModel(nn.RNN(5, 8, batch_first=True), 5)
    lm.train_language_model(net, loader, None, torch.optim.SGD(net.parameters(), lr=0.1), 1,
                            checkpoint_path=ckpt, plot=False, progress=False)

    def step(model, batch):  # the same model, trained by another step function
        X, Y = batch
        logits, _ = model(X)
        return nn.functional.cross_entropy(logits.reshape(-1, 5), Y.reshape(-1))

    with pytest.raises(CheckpointError, match=r"lm\.pt was written by a run with step "
                       r"'train_language_model.<locals>.step' \(metrics \[.*'train_ppl'.*\]\), but this run's "
                       r"step is 'test_checkpoint_of_another_training_function_names_both.<locals>.step'"):
        training.fit(net, loader, step, 2, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                     checkpoint_path=ckpt, resume=True, progress=False, plot=False)


def test_checkpoint_of_another_model_names_keys(tmp_path):
    ckpt = tmp_path / "c.pt"
    classifier_run(False)(1, ckpt=ckpt)
    X, y = blobs(32)
    other = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match=r"different model.*(shape mismatch|missing keys)") as info:
        training.train_classifier(other, tensor_loader(X, y, batch_size=16), None, nn.CrossEntropyLoss(),
                                  torch.optim.SGD(other.parameters(), lr=0.1), 2, checkpoint_path=ckpt,
                                  resume=True, progress=False, plot=False)
    assert "0.weight" in str(info.value)
