"""The JPEG CIFAR-10 loader: decoding, order, the checksummed cache, and bad input."""

import csv
import io
import tarfile
import warnings

import matplotlib.image
import numpy as np
import pytest
import torch

from course_utils import cifar10_jpeg as cj
from course_utils.datafiles import DataFileError

CLASSES = cj.CIFAR10_JPEG_CLASSES


def _jpeg(seed):
    rng = np.random.default_rng(seed)
    # smooth images survive JPEG well: a colour gradient per image
    base = rng.integers(40, 200, size=3)
    ramp = np.linspace(-30, 30, 32)
    img = base[None, None, :] + ramp[:, None, None] + ramp[None, :, None] * 0.5
    img = img.clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, img, format="jpg", pil_kwargs={"quality": 95})
    return img, buf.getvalue()


def _make(folder, *, corrupt=None, drop=None, seed=0, name="a.tar.gz"):
    """A tiny archive: 2 training and 1 test image per class, plus its order files."""
    images, archive = {}, folder / name
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("CIFAR-10-images/README.md")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
        for split, n in (("train", 2), ("test", 1)):
            for label, cls in enumerate(CLASSES):
                for rank in range(n):
                    member = f"CIFAR-10-images/{split}/{cls}/{rank:04d}.jpg"
                    img, data = _jpeg(seed + 100 * label + 10 * rank + (split == "test"))
                    images[(split, label, rank)] = img
                    if member == drop:
                        continue
                    if member == corrupt:
                        data = data[:40] + b"garbage" * 10
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    train_keys = [("train", label, rank) for rank in range(2) for label in range(10)][::-1]
    test_keys = [("test", 7, 0), ("test", 2, 0)]
    paths = []
    for keys, fname in ((train_keys, "train.csv"), (test_keys, "test.csv")):
        path = folder / fname
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "label", "class", "jpeg_path"])
            for i, (split, label, rank) in enumerate(keys):
                w.writerow([i, label, CLASSES[label], f"CIFAR-10-images/{split}/{CLASSES[label]}/{rank:04d}.jpg"])
        paths.append(path)
    return archive, paths[0], paths[1], images, train_keys, test_keys


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(cj, "_COUNTS", {"train": 2, "test": 1})
    cj._load.cache_clear()
    yield
    cj._load.cache_clear()


def test_parse_member_name():
    assert cj.parse_member_name("CIFAR-10-images/test/truck/0999.jpg") == ("test", 9, 999)
    assert cj.parse_member_name("CIFAR-10-images/train/unicorn/0001.jpg") is None
    assert cj.parse_member_name("../CIFAR-10-images/train/cat/0001.jpg") is None


def test_decode_keeps_the_order_and_the_pixels(tmp_path, small):
    archive, train_csv, test_csv, images, train_keys, test_keys = _make(tmp_path)
    out = cj.decode_archive(archive, train_csv, test_csv)
    assert out["X_train"].shape == (20, 3, 32, 32) and out["X_train"].dtype == torch.uint8
    assert out["y_train"].tolist() == [k[1] for k in train_keys]
    # the test set: the listed images first, then the rest by class
    assert out["y_test"].tolist()[:2] == [7, 2]
    assert out["y_test"].tolist()[2:] == [c for c in range(10) if c not in (7, 2)]
    for i, key in enumerate(train_keys):
        original = torch.from_numpy(images[key]).permute(2, 0, 1).float()
        assert (out["X_train"][i].float() - original).abs().mean() < 4, key  # JPEG is lossy


def test_cache_is_built_once_then_reused(tmp_path, small):
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    cache = tmp_path / "cache" / "c.pt"
    with pytest.warns(cj.CacheWarning, match="does not exist"):
        first = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    assert cache.is_file()
    cj._load.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    assert torch.equal(first["X_train"], again["X_train"])
    assert sorted(p.name for p in cache.parent.iterdir()) == ["c.pt"]   # no temporaries left


def test_stale_cache_is_rebuilt(tmp_path, small):
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    cache = tmp_path / "c.pt"
    with pytest.warns(cj.CacheWarning):
        old = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    _make(tmp_path, seed=7)   # a new archive at the same path
    cj._load.cache_clear()
    with pytest.warns(cj.CacheWarning, match="different archive"):
        new = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    assert not torch.equal(old["X_train"], new["X_train"])


@pytest.mark.parametrize("damage, reason", [("garbage", "unreadable"), ("pixels", "damaged")])
def test_damaged_cache_is_rebuilt(tmp_path, small, damage, reason):
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    cache = tmp_path / "c.pt"
    with pytest.warns(cj.CacheWarning):
        good = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    if damage == "garbage":
        cache.write_bytes(cache.read_bytes()[:1000])
    else:
        payload = torch.load(cache, weights_only=True)
        payload["X_train"][0, 0, 0, 0] ^= 1
        torch.save(payload, cache)
    cj._load.cache_clear()
    with pytest.warns(cj.CacheWarning, match=reason):
        rebuilt = cj.decoded_tensors(archive, train_csv, test_csv, cache)
    assert torch.equal(good["X_train"], rebuilt["X_train"])


@pytest.mark.parametrize("problem", ["corrupt", "missing"])
def test_bad_member_is_named_and_nothing_is_written(tmp_path, small, problem):
    member = "CIFAR-10-images/train/dog/0001.jpg"
    kwargs = {"corrupt": member} if problem == "corrupt" else {"drop": member}
    archive, train_csv, test_csv, *_ = _make(tmp_path, **kwargs)
    cache = tmp_path / "cache" / "c.pt"
    with pytest.warns(cj.CacheWarning), pytest.raises(DataFileError, match=member):
        cj.decoded_tensors(archive, train_csv, test_csv, cache)
    assert not cache.parent.exists() or not any(cache.parent.iterdir())


def test_interrupted_write_leaves_nothing(tmp_path, small, monkeypatch):
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    cache = tmp_path / "cache" / "c.pt"

    def broken_save(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(cj.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        cj.build_cache(archive, train_csv, test_csv, cache)
    assert list(cache.parent.iterdir()) == []


def test_not_an_archive(tmp_path, small):
    _, train_csv, test_csv, *_ = _make(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar file at all")
    with pytest.raises(DataFileError, match="not a readable"):
        cj.decode_archive(bad, train_csv, test_csv)


def test_bad_order_file(tmp_path, small):
    archive, train_csv, test_csv, *_ = _make(tmp_path)
    train_csv.write_text("index,label,class,jpeg_path\n0,3,dog,CIFAR-10-images/train/dog/0000.jpg\n")
    with pytest.raises(DataFileError, match="row 0"):
        cj.decode_archive(archive, train_csv, test_csv)


def test_real_data_and_loaders():
    X, y = cj.load_cifar10_jpeg(limit=10)
    assert X.shape == (10, 3, 32, 32) and X.dtype == torch.uint8
    assert y.tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]   # CIFAR-10's first training labels
    X_test, y_test = cj.load_cifar10_jpeg(False)
    assert X_test.shape == (10000, 3, 32, 32) and torch.bincount(y_test).tolist() == [1000] * 10
    assert y_test[:5].tolist() == [3, 8, 8, 0, 6]            # CIFAR-10's first test labels
    train_iter, test_iter = cj.cifar10_jpeg_loaders(64, n_train=256, n_test=128,
                                                    generator=torch.Generator().manual_seed(0))
    Xb, yb = next(iter(train_iter))
    assert Xb.shape == (64, 3, 32, 32) and Xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert sum(len(b[1]) for b in test_iter) == 128
    with pytest.raises(ValueError, match="limit"):
        cj.load_cifar10_jpeg(limit=0)
