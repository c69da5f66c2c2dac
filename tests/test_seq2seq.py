"""Seq2seq: the masked loss, training with fit, greedy and beam search, BLEU."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils import seq2seq
from course_utils.fra_eng import fra_eng_loaders
from course_utils.training import TrainingDivergedError


def test_masked_cross_entropy_ignores_padding():
    logits = torch.randn(2, 4, 6)
    labels = torch.randint(0, 6, (2, 4))
    lens = torch.tensor([2, 3])
    loss = seq2seq.masked_cross_entropy(logits, labels, lens)
    changed = logits.clone()
    changed[0, 2:] = 100 * torch.randn(2, 6)
    changed[1, 3:] = 100 * torch.randn(1, 6)
    torch.testing.assert_close(seq2seq.masked_cross_entropy(changed, labels, lens), loss)
    manual = torch.cat([torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2], reduction="none"),
                        torch.nn.functional.cross_entropy(logits[1, :3], labels[1, :3], reduction="none")]).mean()
    torch.testing.assert_close(loss, manual)
    with pytest.raises(ValueError):
        seq2seq.masked_cross_entropy(logits, labels, torch.tensor([0, 0]))
    with pytest.raises(ValueError):
        seq2seq.masked_cross_entropy(logits, labels[:, :3], lens)


# --- decoding ------------------------------------------------------------------------------

def toy_step(table):
    """A Markov 'decoder': next-token log-probabilities depend on the last token only."""
    def step(token, state):
        return table[token], state + 1
    return step


def exhaustive(table, bos, eos, max_len, alpha):
    vocab = table.shape[1]
    best = None
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if eos in seq[:-1]:
                continue
            if length < max_len and seq[-1] != eos:
                continue
            logp, last = 0.0, bos
            for tok in seq:
                logp += float(table[last, tok])
                last = tok
            score = logp / length ** alpha
            out = [t for t in seq if t != eos]
            if best is None or score > best[1] + 1e-12:
                best = (out, score)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_beam_search_equals_exhaustive_with_wide_beam_and_greedy_with_width_one(seed):
    g = torch.Generator().manual_seed(seed)
    vocab, bos, eos, max_len = 4, 3, 0, 3
    table = torch.log_softmax(torch.randn(vocab, vocab, generator=g) * 2, dim=-1)
    step = toy_step(table)
    tokens, score = seq2seq.beam_search(step, 0, bos, eos, max_len, beam_size=vocab ** max_len, alpha=0.75)
    ex_tokens, ex_score = exhaustive(table, bos, eos, max_len, 0.75)
    assert tokens == ex_tokens and score == pytest.approx(ex_score)
    greedy, greedy_logp = seq2seq.greedy_search(step, 0, bos, eos, max_len)
    beam1, beam1_score = seq2seq.beam_search(step, 0, bos, eos, max_len, beam_size=1, alpha=0.75)
    assert beam1 == greedy
    length = len(greedy) + (1 if len(greedy) < max_len else 0)
    assert beam1_score == pytest.approx(greedy_logp / length ** 0.75)


def test_decoding_argument_checks():
    step = toy_step(torch.zeros(3, 3))
    with pytest.raises(ValueError):
        seq2seq.greedy_search(step, 0, 1, 0, 0)
    with pytest.raises(ValueError):
        seq2seq.beam_search(step, 0, 1, 0, 3, beam_size=0)


def test_bleu_examples_and_range():
    assert seq2seq.bleu("il est calme .".split(), "il est calme .".split()) == 1.0
    assert seq2seq.bleu("a b".split(), "c d e".split()) == 0.0
    assert seq2seq.bleu([], ["a"]) == 0.0
    partial = seq2seq.bleu("je suis chez moi .".split(), "je suis chez moi .".split()[:-1])
    assert 0 < partial < 1
    with pytest.raises(ValueError):
        seq2seq.bleu(["a"], ["a"], k=0)


@given(st.lists(st.sampled_from("abcd"), max_size=8), st.lists(st.sampled_from("abcd"), max_size=8),
       st.integers(1, 4))
@settings(max_examples=150, deadline=None)
def test_bleu_is_between_zero_and_one(pred, label, k):
    score = seq2seq.bleu(pred, label, k)
    assert 0.0 <= score <= 1.0 + 1e-12
    if pred and pred == label:
        assert score == pytest.approx(1.0)


class TinySeq2Seq(nn.Module):
    """GRU encoder-decoder following the course_utils.seq2seq model interface."""

    def __init__(self, src_vocab, tgt_vocab, hidden=32):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, hidden)
        self.tgt_emb = nn.Embedding(tgt_vocab, hidden)
        self.encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.decoder = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def init_decoding(self, src, src_len):
        _, h = self.encoder(self.src_emb(src))
        return h, h[-1]

    def decode_step(self, tokens, state):
        h, context = state
        x = torch.cat([self.tgt_emb(tokens), context], -1)[:, None]
        out, h = self.decoder(x, h)
        return self.out(out[:, 0]), (h, context)

    def forward(self, src, src_len, tgt_in):
        h, context = self.init_decoding(src, src_len)
        x = torch.cat([self.tgt_emb(tgt_in), context[:, None].expand(-1, tgt_in.shape[1], -1)], -1)
        out, _ = self.decoder(x, h)
        return self.out(out)


def test_train_seq2seq_and_translate():
    torch.manual_seed(0)
    data = fra_eng_loaders(64, 8, num_examples=300)
    net = TinySeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    h = seq2seq.train_seq2seq(net, data.train_iter, data.val_iter, torch.optim.Adam(net.parameters(), lr=0.01),
                          15, plot=False, progress=False)
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert set(h.metrics) == {"train_loss", "val_loss", "tokens_per_sec", "seconds"}
    assert seq2seq.evaluate_seq2seq_loss(net, data.val_iter) == pytest.approx(h.val_loss[-1], rel=1e-5)
    greedy = seq2seq.translate(net, "go .", data.src_vocab, data.tgt_vocab, 8)
    beam = seq2seq.translate(net, "go .", data.src_vocab, data.tgt_vocab, 8, beam_size=3)
    assert isinstance(greedy, list) and isinstance(beam, list) and len(beam) <= 8
    with pytest.raises(ValueError):
        seq2seq.train_seq2seq(net, data.train_iter, None, torch.optim.SGD(net.parameters(), lr=0.1), 0)
    with pytest.raises(ValueError, match="no batches"):
        seq2seq.train_seq2seq(net, [], None, torch.optim.SGD(net.parameters(), lr=0.1), 1, plot=False, progress=False)
    with pytest.raises(ValueError, match="empty"):
        seq2seq.evaluate_seq2seq_loss(net, [])
    with pytest.raises(ValueError, match="grad_clip"):
        seq2seq.train_seq2seq(net, data.train_iter, None, torch.optim.SGD(net.parameters(), lr=0.1), 1, grad_clip=0)


def test_divergence_is_the_one_training_error_naming_epoch_and_batch():
    data = fra_eng_loaders(32, 6, num_examples=160, seed=2)
    net = TinySeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    with torch.no_grad():
        net.out.bias.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 1.*learning rate"):
        seq2seq.train_seq2seq(net, data.train_iter, None, torch.optim.SGD(net.parameters(), lr=0.1), 1,
                              plot=False, progress=False)


def test_train_loss_is_the_mean_per_valid_target_token():
    data = fra_eng_loaders(32, 6, num_examples=160, seed=2)
    torch.manual_seed(0)
    net = TinySeq2Seq(len(data.src_vocab), len(data.tgt_vocab))
    per_batch = []

    class Spy:  # the loss of each batch and its number of valid tokens, before the update
        def before_batch(self, run):
            src, src_len, tgt_in, tgt, tgt_len = run.batch
            with torch.no_grad():
                per_batch.append((float(seq2seq.masked_cross_entropy(run.model(src, src_len, tgt_in), tgt, tgt_len)),
                                  int(tgt_len.sum())))

    h = seq2seq.train_seq2seq(net, data.train_iter, None, torch.optim.SGD(net.parameters(), lr=0.1), 1,
                              callbacks=[Spy()], plot=False, progress=False)
    expected = sum(loss * n for loss, n in per_batch) / sum(n for _, n in per_batch)
    assert h.train_loss == [pytest.approx(expected, rel=1e-6)]
    assert h.tokens_per_sec[0] == pytest.approx(sum(n for _, n in per_batch) / h.seconds[0])


def beam_search_full_expansion(step, state, bos, eos, max_len, beam_size, alpha):
    """The textbook beam search: expand every hypothesis by every vocabulary token."""
    live, candidates = [([], 0.0, state, bos)], []
    for t in range(max_len):
        expansions = []
        for tokens, logp, hyp_state, last in live:
            log_probs, new_state = step(last, hyp_state)
            expansions += [(tokens, logp + float(log_probs[k]), new_state, k) for k in range(len(log_probs))]
        expansions.sort(key=lambda e: -e[1])
        live = []
        for tokens, logp, hyp_state, token in expansions[:beam_size]:
            if token == eos or t == max_len - 1:
                candidates.append((tokens + ([] if token == eos else [token]), logp, len(tokens) + 1))
            else:
                live.append((tokens + [token], logp, hyp_state, token))
        if not live:
            break
    best = max(candidates, key=lambda c: c[1] / c[2] ** alpha)
    return best[0], best[1] / best[2] ** alpha


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_beam_search_matches_full_vocabulary_expansion_on_a_large_vocabulary(seed, beam_size):
    g = torch.Generator().manual_seed(seed)
    vocab, bos, eos, max_len = 200, 1, 2, 7
    table = torch.log_softmax(torch.randn(vocab, vocab, generator=g) * 3, dim=-1)
    step = toy_step(table)
    expected = beam_search_full_expansion(step, 0, bos, eos, max_len, beam_size, 0.75)
    tokens, score = seq2seq.beam_search(step, 0, bos, eos, max_len, beam_size, alpha=0.75)
    assert tokens == expected[0] and score == pytest.approx(expected[1])
