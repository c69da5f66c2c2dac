"""The English–French data: reading, preprocessing, tokenizing, batches with a held-out split."""

import pytest
import torch

from course_utils import fra_eng


def test_read_and_preprocess_pairs():
    raw = fra_eng.read_fra_eng()
    assert raw.startswith("Go.\tVa !") and raw.count("\n") == 167_130
    text = fra_eng.preprocess_nmt(raw[:200])
    assert text.startswith("go .\tva !") and "\u202f" not in text
    assert fra_eng.preprocess_nmt("Hi,there!") == "hi ,there !"
    src, tgt = fra_eng.tokenize_nmt(text)
    assert src[0] == ["go", "."] and tgt[0] == ["va", "!"]
    src, _ = fra_eng.tokenize_nmt("a\tb\nbroken line\nc\td", num_examples=3)
    assert src == [["a"], ["c"]]


def test_fra_eng_loaders_batches_and_split():
    data = fra_eng.fra_eng_loaders(32, 8, num_examples=600)
    src, src_len, tgt_in, tgt, tgt_len = next(iter(data.train_iter))
    assert src.shape == tgt.shape == tgt_in.shape == (32, 8)
    assert (tgt_in[:, 0] == data.tgt_vocab["<bos>"]).all()
    assert torch.equal(tgt_in[:, 1:], tgt[:, :-1])
    assert torch.equal(src_len, (src != data.src_vocab["<pad>"]).sum(1))
    assert len(data.val_pairs) == 60
    n_train = sum(len(b[0]) for b in data.train_iter)
    n_val = sum(len(b[0]) for b in data.val_iter)
    assert n_train + n_val == 600
    assert data.src_vocab.idx_to_token[:4] == ["<unk>", "<pad>", "<bos>", "<eos>"]
    with pytest.raises(ValueError):
        fra_eng.fra_eng_loaders(0, 8)
    with pytest.raises(ValueError):
        fra_eng.fra_eng_loaders(8, 8, val_fraction=0)


def test_load_fra_eng_tokens():
    src, tgt = fra_eng.load_fra_eng(3)
    assert src == [["go", "."], ["hi", "."], ["run", "!"]] and tgt[0] == ["va", "!"] and len(tgt) == 3
