import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import text


def test_time_machine_reading_and_preprocessing():
    raw = text.read_time_machine()
    assert raw.startswith("The Time Machine, by H. G. Wells")
    clean = text.preprocess(raw)
    assert set(clean) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert "  " not in clean
    assert text.preprocess("Hello,  World!\n42") == "hello world"


def test_tokenize_levels():
    assert text.tokenize("ab c", "char") == ["a", "b", " ", "c"]
    assert text.tokenize("the time  machine", "word") == ["the", "time", "machine"]
    with pytest.raises(ValueError, match="level"):
        text.tokenize("x", "byte")


def test_vocab_order_reserved_min_freq_and_unknowns():
    v = text.Vocab("b a c a b a".split(), min_freq=2, reserved_tokens=["<pad>", "<bos>"])
    assert v.idx_to_token == ["<unk>", "<pad>", "<bos>", "a", "b"]
    assert v["a"] == 3 and v["c"] == v.unk == 0 and v[["b", "zzz"]] == [4, 0]
    assert v.to_tokens([3, 4]) == ["a", "b"] and v.to_tokens(torch.tensor([1])) == ["<pad>"]
    assert "a" in v and "c" not in v and len(v) == 5
    assert v.token_freqs[0] == ("a", 3)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        v.to_tokens(99)
    with pytest.raises(ValueError):
        text.Vocab([], reserved_tokens=["<pad>", "<pad>"])
    with pytest.raises(ValueError):
        text.Vocab([], min_freq=-1)


def test_vocab_from_lines_flattens_and_holds_ngrams():
    v = text.Vocab([["a", "b"], ["a"]])
    assert v.idx_to_token == ["<unk>", "a", "b"]
    bigrams = text.Vocab([("a", "b"), ("b", "c"), ("a", "b")])
    assert bigrams.idx_to_token[1] == ("a", "b") and bigrams[("b", "c")] == 2
    assert bigrams[[("a", "b"), ("x", "y")]] == [1, 0]


@given(st.lists(st.text(alphabet="abcde", min_size=1, max_size=3), max_size=50),
       st.integers(min_value=0, max_value=3))
@settings(max_examples=60, deadline=None)
def test_vocab_round_trip_property(tokens, min_freq):
    v = text.Vocab(tokens, min_freq=min_freq, reserved_tokens=["<pad>"])
    indices = v[tokens] if tokens else []
    back = v.to_tokens(indices)
    counts = text.count_corpus(tokens)
    for tok, out in zip(tokens, back, strict=True):
        assert out == (tok if counts[tok] >= min_freq else "<unk>")
    assert sorted(set(v.idx_to_token)) == sorted(v.idx_to_token)  # no duplicates
    assert all(v[t] == i for i, t in enumerate(v.idx_to_token))


def test_corpus_and_vocab_of_the_book():
    corpus, vocab = text.load_corpus_time_machine("char")
    assert len(vocab) == 28 and len(corpus) == 173427  # d2l keeps one trailing space (173428)
    words, wvocab = text.load_corpus_time_machine("word")
    assert wvocab.to_tokens(1) == "the"
    small, _ = text.load_corpus_time_machine("char", max_tokens=1000)
    assert len(small) == 1000


@given(st.integers(60, 400), st.integers(1, 4), st.integers(1, 8), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_random_sampling_shapes_and_shift(length, batch_size, num_steps, seed):
    corpus = list(range(length))
    if length < batch_size * num_steps + 1:
        with pytest.raises(ValueError, match="too few"):
            list(text.seq_data_iter_random(corpus, batch_size, num_steps))
        return
    starts = []
    for X, Y in text.seq_data_iter_random(corpus, batch_size, num_steps, random.Random(seed)):
        assert X.shape == Y.shape == (batch_size, num_steps)
        assert torch.equal(Y, X + 1)  # targets are the next tokens
        assert torch.equal(X[:, 1:], X[:, :-1] + 1)  # contiguous subsequences
        starts += X[:, 0].tolist()
    assert len(starts) == len(set(starts))  # no subsequence twice in an epoch


@given(st.integers(60, 400), st.integers(1, 4), st.integers(1, 8), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_sequential_sampling_continues_rows(length, batch_size, num_steps, seed):
    corpus = list(range(length))
    if length < batch_size * num_steps + 1:
        return
    batches = list(text.seq_data_iter_sequential(corpus, batch_size, num_steps, random.Random(seed)))
    assert batches
    for (X, _), (X2, _) in zip(batches, batches[1:], strict=False):  # each batch with the next
        assert torch.equal(X2[:, 0], X[:, -1] + 1)  # row i continues where it stopped
    for X, Y in batches:
        assert X.shape == (batch_size, num_steps) and torch.equal(Y, X + 1)


def test_language_model_data_holds_out_validation():
    train, val, vocab = text.language_model_data(8, 10, max_tokens=5000, val_fraction=0.2)
    assert len(train.corpus) == 4000 and len(val.corpus) == 1000
    assert train.sequential and val.sequential
    X, Y = next(iter(train))
    assert X.shape == (8, 10) and len(train) >= 1
    rand_train, _, _ = text.language_model_data(8, 10, use_random_iter=True, max_tokens=5000)
    assert not rand_train.sequential
    first = [X for X, _ in val]
    again = [X for X, _ in val]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # validation is repeatable
    assert first[0][0, 0] == val.corpus[0]
    with pytest.raises(ValueError, match="fixed_offset"):
        text.SeqDataLoader(list(range(100)), 2, 3, True, fixed_offset=True)
    with pytest.raises(ValueError, match="offset"):
        list(text.seq_data_iter_sequential(list(range(100)), 2, 3, offset=9))
    with pytest.raises(ValueError, match="val_fraction"):
        text.language_model_data(8, 10, val_fraction=1.0)
    with pytest.raises(ValueError, match="positive"):
        text.SeqDataLoader([1, 2, 3], 0, 1, False)


def test_truncate_pad_examples():
    assert text.truncate_pad([1, 2, 3], 5, 0) == [1, 2, 3, 0, 0]
    assert text.truncate_pad([1, 2, 3], 2, 0) == [1, 2]
    with pytest.raises(ValueError):
        text.truncate_pad([1], 0, 0)


@given(st.lists(st.integers(1, 9), max_size=30), st.integers(1, 20))
@settings(max_examples=100, deadline=None)
def test_truncate_pad_property(line, num_steps):
    out = text.truncate_pad(line, num_steps, 0)
    assert len(out) == num_steps
    keep = min(len(line), num_steps)
    assert out[:keep] == line[:keep] and all(t == 0 for t in out[keep:])


def test_build_array_nmt_appends_eos_and_pads():
    v = text.Vocab(["a", "b", "b"], reserved_tokens=["<pad>", "<bos>", "<eos>"])
    array, valid_len = text.build_array_nmt([["b", "a"], ["a", "b", "b", "a"]], v, 4)
    assert array.tolist() == [[v["b"], v["a"], v["<eos>"], v["<pad>"]], [v["a"], v["b"], v["b"], v["a"]]]
    assert valid_len.tolist() == [3, 4]
