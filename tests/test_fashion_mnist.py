import gzip
import shutil
import struct

import pytest
import torch

from course_utils import fashion_mnist as fm
from course_utils.datafiles import ChecksumError, DataFileError, MissingDataError
from course_utils.image_batches import ImageBatchTransform


def test_full_splits_have_known_sizes_and_balance():
    X, y = fm.load_fashion_mnist(train=True)
    assert X.shape == (60_000, 28, 28) and X.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [6000] * 10
    assert abs(X.float().mean().item() / 255 - 0.2860) < 1e-4
    Xt, yt = fm.load_fashion_mnist(train=False)
    assert Xt.shape == (10_000, 28, 28) and torch.bincount(yt).tolist() == [1000] * 10


def test_limit_keeps_first_examples():
    X, y = fm.load_fashion_mnist(train=False, limit=100)
    Xa, ya = fm.load_fashion_mnist(train=False)
    assert torch.equal(X, Xa[:100]) and torch.equal(y, ya[:100])
    with pytest.raises(ValueError):
        fm.load_fashion_mnist(limit=0)


def test_loaders_shapes_range_and_resize():
    train, test = fm.fashion_mnist_loaders(64, n_train=256, n_test=128, resize=32)
    X, y = next(iter(train))
    assert X.shape == (64, 1, 32, 32) and X.dtype == torch.float32 and y.shape == (64,)
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert sum(len(yb) for _, yb in test) == 128


def test_loaders_normalize():
    train, _ = fm.fashion_mnist_loaders(2000, n_train=10_000, n_test=10, normalize=True)
    X = torch.cat([xb for xb, _ in train])
    assert abs(X.mean()) < 0.02 and abs(X.std() - 1) < 0.02


def test_text_labels():
    assert fm.text_labels([0, 9]) == ["t-shirt", "ankle boot"]
    assert fm.text_labels(torch.tensor([[1], [2]])) == ["trouser", "pullover"]
    with pytest.raises(ValueError, match="0-9"):
        fm.text_labels([10])


def write_idx(path, array: torch.Tensor, compress=True):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    raw = header + array.to(torch.uint8).numpy().tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return raw


def test_read_idx_round_trip(tmp_path):
    a = torch.randint(0, 255, (3, 4, 5), dtype=torch.uint8)
    write_idx(tmp_path / "a.gz", a)
    assert torch.equal(fm.read_idx(tmp_path / "a.gz"), a)
    write_idx(tmp_path / "a.idx", a, compress=False)
    assert torch.equal(fm.read_idx(tmp_path / "a.idx"), a)


def test_read_idx_big_endian_int32(tmp_path):
    values = [1, 256, -2, 70000]
    raw = struct.pack(">BBBB", 0, 0, 0x0C, 1) + struct.pack(">I", 4) + struct.pack(">4i", *values)
    (tmp_path / "i.idx").write_bytes(raw)
    assert fm.read_idx(tmp_path / "i.idx").tolist() == values


def test_read_idx_errors(tmp_path):
    a = torch.zeros(2, 3, dtype=torch.uint8)
    raw = write_idx(tmp_path / "ok.gz", a)
    truncated_gz = tmp_path / "trunc.gz"
    truncated_gz.write_bytes((tmp_path / "ok.gz").read_bytes()[:-10])
    with pytest.raises(DataFileError, match="gzip"):
        fm.read_idx(truncated_gz)
    short = tmp_path / "short.idx"
    short.write_bytes(raw[:-1])
    with pytest.raises(DataFileError, match="truncated"):
        fm.read_idx(short)
    bad_magic = tmp_path / "magic.idx"
    bad_magic.write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DataFileError, match="magic"):
        fm.read_idx(bad_magic)
    header_only = tmp_path / "hdr.idx"
    header_only.write_bytes(raw[:6])
    with pytest.raises(DataFileError, match="header"):
        fm.read_idx(header_only)
    with pytest.raises(DataFileError, match="does not exist"):
        fm.read_idx(tmp_path / "nothing.idx")


def copy_fmnist(src_root, dst_root):
    (dst_root / "fashion-mnist").mkdir(parents=True)
    for f in (src_root / "fashion-mnist").glob("*.gz"):
        shutil.copy(f, dst_root / "fashion-mnist" / f.name)


def test_corrupt_file_is_refused_by_checksum(tmp_path, data_root):
    copy_fmnist(data_root, tmp_path)
    labels = tmp_path / "fashion-mnist/t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-100])
    with pytest.raises(ChecksumError, match="t10k-labels"):
        fm.load_fashion_mnist(train=False, root=tmp_path)


def test_missing_files_give_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="fashion-mnist/train-images"):
        fm.load_fashion_mnist(root=tmp_path)


def test_image_batch_transform_validation():
    with pytest.raises(ValueError, match="both mean and std"):
        ImageBatchTransform(mean=(0.5,))
    with pytest.raises(ValueError, match="resize"):
        ImageBatchTransform(resize=0)
    with pytest.raises(ValueError, match="std must be positive"):
        ImageBatchTransform(mean=(0.5,), std=(0.0,))
    t = ImageBatchTransform(resize=(8, 6))
    X, y = t((torch.full((2, 3, 28, 28), 255, dtype=torch.uint8), torch.tensor([1, 2])))
    assert X.shape == (2, 3, 8, 6) and torch.allclose(X, torch.ones_like(X))
    X, = t((torch.ones(2, 1, 8, 6),))
    assert X.shape == (2, 1, 8, 6)
    with pytest.raises(ValueError, match="expected images"):
        t((torch.zeros(4, 4),))
