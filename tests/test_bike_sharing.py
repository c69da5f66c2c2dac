import datetime
import io
import re
import shutil
import zipfile

import pytest
import torch

from course_utils import bike_sharing as bs
from course_utils import datafiles as df
from course_utils.datafiles import ChecksumError, DataFileError, MissingDataError, data_root


@pytest.fixture(scope="module")
def table():
    return bs.load_bike_sharing()


def test_load_has_every_hour_in_time_order(table):
    assert len(table["cnt"]) == 17_379 and "dteday" not in table
    assert set(bs.CATEGORICAL) | set(bs.CONTINUOUS) | {"cnt", "day"} <= set(table)
    for name in bs.CATEGORICAL:
        assert table[name].dtype == torch.int64
    for name in bs.CONTINUOUS:
        assert table[name].dtype == torch.float32
        assert 0.0 <= float(table[name].min()) and float(table[name].max()) <= 1.0
    assert torch.equal(table["instant"], torch.arange(1, 17_380))
    assert bool((table["day"].diff() >= 0).all()) and int(table["day"][-1]) == 730
    assert torch.equal(table["casual"] + table["registered"], table["cnt"])
    assert torch.unique(table["hr"]).tolist() == list(range(24))
    first_sept_2012 = int((table["day"] == 609).nonzero()[0, 0])
    assert int(table["mnth"][first_sept_2012]) == 9 and int(table["yr"][first_sept_2012]) == 1


def test_split_by_time(table):
    train, valid = bs.split_by_time(table, "2012-09-01")
    cut = (datetime.date(2012, 9, 1) - bs.FIRST_DAY).days
    assert int(train["day"].max()) == cut - 1 and int(valid["day"].min()) == cut
    assert len(train["cnt"]) + len(valid["cnt"]) == len(table["cnt"])
    same, _ = bs.split_by_time(table, datetime.date(2012, 9, 1))
    assert torch.equal(same["instant"], train["instant"])
    for bad in ("2011-01-01", "2013-01-01"):
        with pytest.raises(ValueError, match="leaves no training or no validation rows"):
            bs.split_by_time(table, bad)


def test_loaders_prepare_with_training_statistics(table):
    train_iter, valid_iter, prep = bs.bike_sharing_loaders(512, seed=0)
    x_cat, x_cont, y = train_iter.dataset.tensors
    assert x_cat.shape == (14_491, 8) and x_cont.shape == (14_491, 4)
    torch.testing.assert_close(x_cont.mean(dim=0), torch.zeros(4), atol=1e-5, rtol=0)
    train, valid = bs.split_by_time(table)
    torch.testing.assert_close(y, torch.log1p(train["cnt"].float()))
    vx_cat, vx_cont, vy = valid_iter.dataset.tensors
    torch.testing.assert_close(vy, torch.log1p(valid["cnt"].float()))
    mean = torch.stack([train[c] for c in bs.CONTINUOUS], 1).mean(0)
    std = torch.stack([train[c] for c in bs.CONTINUOUS], 1).std(0)
    torch.testing.assert_close(vx_cont, (torch.stack([valid[c] for c in bs.CONTINUOUS], 1) - mean) / std)
    assert prep.cardinalities == [4, 2, 12, 24, 2, 7, 2, 4]
    assert torch.equal(prep.encoders["hr"].decode(vx_cat[:, 3]), valid["hr"])
    batch = next(iter(train_iter))
    assert batch[0].shape == (512, 8) and torch.equal(batch[0], next(iter(bs.bike_sharing_loaders(512)[0]))[0])


def test_missing_file_names_uci_and_the_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="bike\\+sharing\\+dataset.zip") as err:
        bs.load_bike_sharing(tmp_path)
    assert bs.BIKE_SHARING_FILES["Readme.txt"].sha256 in str(err.value)


URL = "https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip"


def serve_uci_zip(monkeypatch, members):
    """A fake HTTPS opener serving a zip laid out like UCI's (members at the top level)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    calls = []

    def opener(url, timeout):
        calls.append(url)
        response = io.BytesIO(buffer.getvalue())
        response.status = 200
        return response

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(df, "_open_https", opener)
    return calls


def uci_members():
    return {"day.csv": b"instant,dteday\n", **{name: (data_root() / spec.relpath).read_bytes()
                                                 for name, spec in bs.BIKE_SHARING_FILES.items()}}


def test_missing_files_come_from_the_uci_zip_checked_member_by_member(tmp_path, monkeypatch):
    calls = serve_uci_zip(monkeypatch, uci_members())
    table = bs.load_bike_sharing(tmp_path)
    assert len(table["cnt"]) == 17_379 and calls == [URL]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "bike-sharing", "bike-sharing/Readme.txt", "bike-sharing/hour.csv"]


def test_a_changed_uci_member_is_refused_and_nothing_saved(tmp_path, monkeypatch):
    members = uci_members()
    members["hour.csv"] = members["hour.csv"].replace(b"2012-12-31", b"2012-12-30")
    serve_uci_zip(monkeypatch, members)
    with pytest.raises(ChecksumError, match=re.escape(f"member hour.csv of {URL}")):
        bs.load_bike_sharing(tmp_path)
    assert [p.name for p in tmp_path.rglob("*")] == ["bike-sharing"]


def copy_bike_sharing(dest):
    folder = dest / "bike-sharing"
    folder.mkdir()
    for name in bs.BIKE_SHARING_FILES:
        shutil.copy(data_root() / "bike-sharing" / name, folder / name)
    return folder


def test_corrupt_file_is_refused(tmp_path):
    folder = copy_bike_sharing(tmp_path)
    with open(folder / "hour.csv", "a") as handle:
        handle.write("17380,2013-01-01,1,0,1,0,0,2,1,1,0.2,0.2,0.5,0.1,1,2,3\n")
    with pytest.raises(ChecksumError, match="hour.csv"):
        bs.load_bike_sharing(tmp_path)


def test_malformed_rows_are_data_file_errors(tmp_path, monkeypatch):
    folder = copy_bike_sharing(tmp_path)
    good = (folder / "hour.csv").read_text().splitlines()
    bad = tmp_path / "bad.csv"
    monkeypatch.setattr(bs, "ensure_from_archive", lambda name, root: bad if name.endswith("hour.csv") else root)
    bad.write_text("\n".join([good[0], good[1].replace("2011-01-01", "2011-13-01")]) + "\n")
    with pytest.raises(DataFileError, match="line 2"):
        bs.load_bike_sharing(tmp_path)
    bad.write_text("\n".join(["instant,date", good[1]]) + "\n")
    with pytest.raises(DataFileError, match="unexpected header"):
        bs.load_bike_sharing(tmp_path)


def test_checksums_agree_with_data_sha256sums():
    listed = dict(reversed(line.split(maxsplit=1)) for line in (data_root() / "SHA256SUMS").read_text().splitlines())
    for spec in bs.BIKE_SHARING_FILES.values():
        assert listed[spec.relpath] == spec.sha256, spec.relpath
