import gzip

import pytest
import torch

from course_utils import cifar10
from course_utils.datafiles import DataFileError
from course_utils.image_batches import ImageBatchTransform, random_crop, random_hflip


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    X = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = random_crop(X, 2, g)
    assert out.shape == X.shape
    padded = torch.nn.functional.pad(X, (2, 2, 2, 2))
    for i in range(2):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[i, :, dy:dy + 6, dx:dx + 6], out[i])]
        assert matches, "each crop must be a window of the padded image"
    assert torch.equal(random_crop(X, 0), X)
    with pytest.raises(ValueError):
        random_crop(X, -1)
    with pytest.raises(ValueError, match="batch of images"):
        random_crop(X[0], 2)


def test_random_hflip_flips_about_half():
    X = torch.arange(4.0).reshape(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    out = random_hflip(X, 0.5, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 3).sum().item()
    assert 430 < flipped < 570
    assert torch.equal(random_hflip(X, 0.0), X) and torch.equal(random_hflip(X, 1.0), X.flip(-1))
    with pytest.raises(ValueError):
        random_hflip(X, 1.5)


def test_transform_pipeline_and_validation():
    t = ImageBatchTransform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_padding=4, hflip=True)
    X, y = t((torch.full((4, 3, 32, 32), 255, dtype=torch.uint8), torch.arange(4)))
    assert X.shape == (4, 3, 32, 32) and X.max() == 1.0 and X.min() == -1.0  # zero padding shows
    with pytest.raises(ValueError, match="crop_padding"):
        ImageBatchTransform(crop_padding=-2)


def test_cifar_subset_loads_with_documented_counts_and_pixels():
    X, y = cifar10.load_cifar10(train=True)
    assert X.shape == (2000, 3, 32, 32) and X.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [202, 191, 203, 195, 214, 183, 207, 199, 203, 203]
    assert X[0, 0, 0, :10].tolist() == [59, 43, 50, 68, 98, 119, 139, 145, 149, 149]
    Xt, yt = cifar10.load_cifar10(train=False)
    assert Xt.shape == (1000, 3, 32, 32)
    assert Xt[0, 0, 0, :10].tolist() == [158, 159, 165, 166, 160, 156, 162, 159, 158, 159]
    assert [cifar10.CIFAR10_CLASSES[i] for i in yt[:3]] == ["cat", "ship", "ship"]
    with pytest.raises(ValueError):
        cifar10.load_cifar10(limit=0)


def test_cifar_class_names_match_shipped_meta(data_root):
    names = (data_root / "cifar-10/batches.meta.txt").read_text().split()
    assert tuple(names) == cifar10.CIFAR10_CLASSES


def test_cifar_loaders_augment_only_training():
    train, test = cifar10.cifar10_loaders(100, n_train=200, n_test=100, generator=torch.Generator().manual_seed(0))
    X, _ = next(iter(train))
    Xt, _ = next(iter(test))
    assert X.shape == Xt.shape == (100, 3, 32, 32)
    _, test2 = cifar10.cifar10_loaders(100, n_train=200, n_test=100)
    assert torch.equal(next(iter(test2))[0], Xt)  # no randomness at test time


def test_cifar_bad_files(tmp_path):
    bad = tmp_path / "bad.bin.gz"
    bad.write_bytes(gzip.compress(b"x" * 100))
    with pytest.raises(DataFileError, match="whole number"):
        cifar10.read_cifar_records(bad)
    bad.write_bytes(gzip.compress(bytes([12]) + b"\0" * 3072))
    with pytest.raises(DataFileError, match="label above 9"):
        cifar10.read_cifar_records(bad)
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataFileError, match="gzip"):
        cifar10.read_cifar_records(bad)
    with pytest.raises(DataFileError, match="does not exist"):
        cifar10.read_cifar_records(tmp_path / "none")
