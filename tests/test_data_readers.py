"""Both dataset readers go through the one capped gzip reader, datafiles.read_data_bytes."""

import gzip
import struct

import pytest
import torch

from course_utils import cifar10
from course_utils import fashion_mnist as fm
from course_utils.datafiles import DataFileError


def test_idx_reader_caps_decompression(tmp_path):
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", *images.shape) + images.numpy().tobytes()
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert fm.read_idx(tmp_path / "x.gz").shape == (100, 28, 28)
    with pytest.raises(DataFileError, match=r"x.gz decompresses to more than 10000 bytes"):
        fm.read_idx(tmp_path / "x.gz", max_bytes=10_000)


def test_cifar_reader_caps_decompression(tmp_path):
    (tmp_path / "c.bin.gz").write_bytes(gzip.compress(bytes(3073 * 10)))
    X, y = cifar10.read_cifar_records(tmp_path / "c.bin.gz")
    assert X.shape == (10, 3, 32, 32) and y.tolist() == [0] * 10
    with pytest.raises(DataFileError, match="decompresses to more than 3073 bytes"):
        cifar10.read_cifar_records(tmp_path / "c.bin.gz", max_bytes=3073)


@pytest.mark.parametrize("reader", [fm.read_idx, cifar10.read_cifar_records])
def test_readers_name_a_corrupt_or_misplaced_file(tmp_path, reader):
    good = gzip.compress(b"\0" * 5000)
    (tmp_path / "cut.gz").write_bytes(good[:-9])
    with pytest.raises(DataFileError, match="cut.gz is not a valid gzip file"):
        reader(tmp_path / "cut.gz")
    (tmp_path / "folder.gz").mkdir()
    with pytest.raises(DataFileError, match="folder.gz is a folder"):
        reader(tmp_path / "folder.gz")
