"""Checkpoints: exact resume for every training loop, clear errors for bad checkpoints."""

import random

import pytest
import torch
from torch import nn

from course_utils import checkpoints as ck
from course_utils import language_model as lm
from course_utils import nmt
from course_utils.loaders import tensor_loader
from course_utils.text import SeqDataLoader


def test_loader_rng_state_round_trips_for_both_kinds_of_loader():
    seq = SeqDataLoader([i % 7 for i in range(500)], 4, 5, use_random_iter=True, seed=3)
    tens = tensor_loader(torch.arange(40.0), batch_size=8, shuffle=True,
                         generator=torch.Generator().manual_seed(3))
    for loader in (seq, tens):
        saved = ck.loader_rng_state(loader)
        first = [b[0].tolist() for b in loader]
        ck.set_loader_rng_state(loader, saved)
        assert [b[0].tolist() for b in loader] == first
    assert ck.loader_rng_state([1, 2, 3]) is None  # a plain list has no RNG of its own
    with pytest.raises(ck.CheckpointError, match="same kind of data loader"):
        ck.set_loader_rng_state(seq, torch.Generator().get_state())


def test_global_rng_state_round_trip():
    import numpy as np

    saved = ck.rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    ck.set_rng_state(saved)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_restore_rejects_foreign_and_mismatched_checkpoints(tmp_path):
    path = tmp_path / "x.pt"
    ck.save_checkpoint(path, {"weights": torch.zeros(2)})
    with pytest.raises(ck.CheckpointError, match="not a training checkpoint"):
        ck.restore_training_state(path, nn.Linear(2, 2))
    net = nn.Linear(2, 2)
    ck.save_checkpoint(path, ck.training_state(net, torch.optim.SGD(net.parameters(), lr=0.1), epoch=1))
    with pytest.raises(ck.CheckpointError, match=r"shape mismatch for bias \(2,\) vs \(3,\), weight \(2, 2\) vs \(3, 2\)"):
        ck.restore_training_state(path, nn.Linear(2, 3))
    two_groups = torch.optim.SGD([{"params": [net.weight]}, {"params": [net.bias]}], lr=0.1)
    with pytest.raises(ck.CheckpointError, match="does not fit this optimizer"):
        ck.restore_training_state(path, nn.Linear(2, 2), two_groups)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.restore_training_state(tmp_path / "none.pt", net)


def test_resume_if_requested_starts_fresh_unless_a_checkpoint_exists(tmp_path):
    net = nn.Linear(2, 2)
    path = tmp_path / "run.pt"
    assert ck.resume_if_requested(path, False, net) == (0, {})
    assert ck.resume_if_requested(path, True, net) == (0, {})  # first run with resume=True
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        ck.resume_if_requested(None, True, net)
    ck.save_checkpoint(path, ck.training_state(net, epoch=2, history={"loss": [1.0, 0.5]}))
    assert ck.resume_if_requested(path, False, net) == (0, {})  # resume=False ignores the file
    assert ck.resume_if_requested(path, True, net) == (2, {"loss": [1.0, 0.5]})


# --- language model loop --------------------------------------------------------------------

class DropoutLM(nn.Module):
    def __init__(self, vocab=7):
        super().__init__()
        self.inner = lm.RNNLanguageModel(nn.GRU(vocab, 16, batch_first=True), vocab)
        self.drop = nn.Dropout(0.3)

    def forward(self, X, state=None):
        logits, state = self.inner(X, state)
        return self.drop(logits), state


def run_lm(num_epochs, ckpt=None, resume=False, stop_after=None, use_random_iter=True):
    corpus = [(i * 3 + i // 7) % 7 for i in range(1200)]
    loader = SeqDataLoader(corpus, 8, 6, use_random_iter=use_random_iter, seed=5)
    torch.manual_seed(0)
    net = DropoutLM()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    if resume:
        torch.manual_seed(123)  # a fresh process starts from another RNG state
    h = lm.train_language_model(net, loader, None, opt, stop_after or num_epochs, scheduler=sched,
                                checkpoint_path=ckpt, resume=resume, plot=False, progress=False)
    return net, h, opt


@pytest.mark.parametrize("use_random_iter", [True, False])
def test_language_model_resume_equals_uninterrupted_run(tmp_path, use_random_iter):
    straight, h_straight, _ = run_lm(4, use_random_iter=use_random_iter)
    ckpt = tmp_path / "lm.pt"
    run_lm(4, ckpt=ckpt, stop_after=2, use_random_iter=use_random_iter)  # "interrupted"
    assert ck.load_checkpoint(ckpt)["epoch"] == 2
    resumed, h_resumed, opt = run_lm(4, ckpt=ckpt, resume=True, use_random_iter=use_random_iter)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert h_resumed.epoch == [1, 2, 3, 4]
    assert h_resumed.train_ppl == pytest.approx(h_straight.train_ppl, rel=1e-6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.8**4)
    assert [p.name for p in tmp_path.iterdir()] == ["lm.pt"]  # no temp files left


def test_language_model_resume_from_other_model_names_keys(tmp_path):
    ckpt = tmp_path / "lm.pt"
    run_lm(1, ckpt=ckpt)
    other = lm.RNNLanguageModel(nn.LSTM(7, 16, batch_first=True), 7)
    loader = SeqDataLoader([i % 7 for i in range(300)], 4, 5, use_random_iter=True, seed=0)
    with pytest.raises(ck.CheckpointError, match="different model.*(missing|unexpected) keys"):
        lm.train_language_model(other, loader, None, torch.optim.SGD(other.parameters(), lr=0.1), 2,
                                checkpoint_path=ckpt, resume=True, plot=False, progress=False)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        lm.train_language_model(other, loader, None, torch.optim.SGD(other.parameters(), lr=0.1), 1,
                                resume=True, plot=False, progress=False)


# --- seq2seq loop ---------------------------------------------------------------------------

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


def run_seq2seq(num_epochs, ckpt=None, resume=False, stop_after=None):
    data = nmt.load_data_nmt(32, 6, num_examples=160, seed=2)
    torch.manual_seed(0)
    net = TinyDropoutSeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    if resume:
        torch.manual_seed(321)
    h = nmt.train_seq2seq(net, data.train_iter, data.val_iter, opt, stop_after or num_epochs,
                          scheduler=sched, checkpoint_path=ckpt, resume=resume, plot=False,
                          progress=False)
    return net, h, opt


def test_seq2seq_resume_equals_uninterrupted_run(tmp_path):
    straight, h_straight, _ = run_seq2seq(3)
    ckpt = tmp_path / "s2s.pt"
    run_seq2seq(3, ckpt=ckpt, stop_after=1)
    resumed, h_resumed, opt = run_seq2seq(3, ckpt=ckpt, resume=True)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert h_resumed.epoch == [1, 2, 3]
    assert h_resumed.val_loss == pytest.approx(h_straight.val_loss, rel=1e-6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9**3)


def test_seq2seq_divergence_names_epoch_and_batch():
    data = nmt.load_data_nmt(32, 6, num_examples=160, seed=2)
    net = TinyDropoutSeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    with torch.no_grad():
        net.out.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1.*learning rate.*grad_clip"):
        nmt.train_seq2seq(net, data.train_iter, None, torch.optim.SGD(net.parameters(), lr=0.1), 1,
                          plot=False, progress=False)
