import hashlib
import io
import shutil
import zipfile
from dataclasses import replace

import pytest
import torch

from course_utils import datafiles as df
from course_utils import movielens as ml
from course_utils.datafiles import ChecksumError, DataFileError, MissingDataError, data_root


@pytest.fixture(scope="module")
def data():
    return ml.load_movielens()


def test_load_has_the_documented_size(data):
    assert len(data) == 100_836 and data.users.dtype == data.movies.dtype == torch.int64
    assert data.ratings.dtype == torch.float32 and data.timestamps.dtype == torch.int64
    assert data.users.unique().numel() == 610 and data.movies.unique().numel() == 9_724
    assert len(data.titles) == 9_742 and data.titles[1] == "Toy Story (1995)"
    assert data.genres[1] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert sorted(set(data.ratings.tolist())) == [x / 2 for x in range(1, 11)]
    assert set(data.movies.tolist()) <= set(data.titles)
    # a title with a comma inside quotes is read whole
    assert any("," in title for title in data.titles.values())


def test_split_is_a_partition_and_cold_start_is_explicit(data):
    split = ml.split_ratings(data, valid_frac=0.1, seed=0)
    train, valid, cold = split.train_rows, split.valid_rows, split.cold_start
    assert len(train) + len(valid) + len(cold) == len(data)
    assert torch.cat([train, valid, cold]).unique().numel() == len(data)
    assert len(valid) + len(cold) == round(0.1 * len(data))
    # encoders know exactly the training ids
    assert torch.equal(split.users.classes, data.users[train].unique())
    assert torch.equal(split.movies.classes, data.movies[train].unique())
    # every cold-start rating has a user or movie without training ratings, no valid one has
    assert not bool((split.users.known(data.users[cold]) & split.movies.known(data.movies[cold])).any())
    assert bool(split.movies.known(data.movies[valid]).all() and split.users.known(data.users[valid]).all())
    u, m, r = split.valid
    assert torch.equal(split.users.decode(u), data.users[valid]) and torch.equal(r, data.ratings[valid])
    assert torch.equal(split.movies.decode(m), data.movies[valid])
    assert int(split.train[1].max()) == len(split.movies) - 1


def test_split_depends_on_seed_only(data):
    a, b = ml.split_ratings(data, seed=3), ml.split_ratings(data, seed=3)
    assert torch.equal(a.valid_rows, b.valid_rows)
    assert not torch.equal(a.valid_rows, ml.split_ratings(data, seed=4).valid_rows)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="valid_frac"):
            ml.split_ratings(data, valid_frac=bad)


def test_unknown_ids_get_a_clear_error(data):
    split = ml.split_ratings(data)
    with pytest.raises(KeyError, match="userId: value 99999 was not seen in training"):
        split.users.encode(torch.tensor([99999]))
    cold_movie = int(data.movies[split.cold_start[0]])
    with pytest.raises(KeyError, match=f"movieId: value {cold_movie} was not seen"):
        split.movies.encode(torch.tensor([cold_movie]))


def test_loaders_serve_the_split():
    train_iter, valid_iter, split = ml.movielens_loaders(4096, seed=1)
    users, movies, ratings = next(iter(train_iter))
    assert users.shape == movies.shape == ratings.shape == (4096,)
    assert sum(len(b[0]) for b in valid_iter) == len(split.valid_rows)
    assert sum(len(b[0]) for b in train_iter) == len(split.train_rows)
    again = next(iter(ml.movielens_loaders(4096, seed=1)[0]))
    assert torch.equal(users, again[0])  # the shuffle is seeded


def copy_movielens(dest):
    folder = dest / "movielens-small"
    folder.mkdir(parents=True)
    for name in ml.MOVIELENS_FILES:
        shutil.copy(data_root() / "movielens-small" / name, folder / name)
    return folder


def test_missing_file_offline_names_the_official_zip(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="ml-latest-small.zip") as err:
        ml.load_movielens(tmp_path)
    assert "README.txt" in str(err.value)
    assert not any(tmp_path.rglob("*.csv"))


URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"


def serve_archive(tmp_path, monkeypatch, members):
    """Serve a zip laid out like GroupLens' (files inside ml-latest-small/) through a fake
    HTTPS opener, and register its checksum in place of the real one (no network needed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(f"ml-latest-small/{name}", content)
    body = buffer.getvalue()
    calls = []

    def opener(url, timeout):
        calls.append(url)
        response = io.BytesIO(body)
        response.status = 200
        return response

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(df, "_open_https", opener)
    for spec in ml.MOVIELENS_FILES.values():
        archive = replace(spec.archive, sha256=hashlib.sha256(body).hexdigest(), size=None)
        monkeypatch.setitem(df.FILES, spec.relpath, replace(spec, archive=archive))
    root = tmp_path / "root"
    root.mkdir()
    return root, calls


def real_members():
    return {name: (data_root() / spec.relpath).read_bytes() for name, spec in ml.MOVIELENS_FILES.items()}


def test_missing_files_come_from_the_archive_verified(tmp_path, monkeypatch):
    members = real_members()
    members["links.csv"] = b"movieId,imdbId,tmdbId\n"  # extra members are ignored
    root, calls = serve_archive(tmp_path, monkeypatch, members)
    (root / "movielens-small").mkdir()
    kept = root / "movielens-small" / "README.txt"  # a file already in place stays as it is
    shutil.copy(data_root() / "movielens-small" / "README.txt", kept)
    inode = kept.stat().st_ino
    data = ml.load_movielens(root)
    assert kept.stat().st_ino == inode
    assert len(data) == 100_836 and calls == [URL]  # one download for both missing files
    folder = root / "movielens-small"
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "movies.csv", "ratings.csv"]


def test_a_corrupt_archive_member_is_refused(tmp_path, monkeypatch):
    members = real_members()
    members["ratings.csv"] = members["ratings.csv"][:-10]
    root, _ = serve_archive(tmp_path, monkeypatch, members)
    with pytest.raises(ChecksumError, match="member ml-latest-small/ratings.csv of " + URL):
        ml.load_movielens(root)
    assert [p.name for p in root.rglob("*")] == ["movielens-small"]  # no file, archive, temporary


def test_an_archive_without_the_member_is_an_error(tmp_path, monkeypatch):
    members = real_members()
    del members["movies.csv"]
    root, _ = serve_archive(tmp_path, monkeypatch, members)
    with pytest.raises(DataFileError, match="has no member ml-latest-small/movies.csv"):
        ml.load_movielens(root)
    assert [p.name for p in root.rglob("*")] == ["movielens-small"]


def test_the_official_archive_checksum_is_required(tmp_path, monkeypatch):
    root, calls = serve_archive(tmp_path, monkeypatch, real_members())
    for spec in ml.MOVIELENS_FILES.values():  # back to GroupLens' checksum: the fake zip differs
        monkeypatch.setitem(df.FILES, spec.relpath, replace(spec, archive=replace(spec.archive, size=None)))
    with pytest.raises(MissingDataError, match="SHA-256 is .*, expected 696d65a3") as err:
        ml.load_movielens(root)
    assert "unpack ml-latest-small/README.txt as " in str(err.value) and ".fetching" not in str(err.value)
    assert calls == [URL] and [p.name for p in root.rglob("*")] == ["movielens-small"]


def test_corrupt_shipped_file_is_not_replaced(tmp_path):
    folder = copy_movielens(tmp_path)
    with open(folder / "movies.csv", "ab") as handle:
        handle.write(b"1,x,y\n")
    with pytest.raises(ChecksumError, match="movies.csv"):
        ml.load_movielens(tmp_path)


def test_bad_ratings_table_is_a_data_file_error(tmp_path):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,movie,rating,time\n1,2,3,4\n")
    with pytest.raises(DataFileError, match="unexpected header"):
        ml._read_ratings(bad)
    bad.write_text("userId,movieId,rating,timestamp\n1,2,three,4\n")
    with pytest.raises(DataFileError, match="four numbers"):
        ml._read_ratings(bad)
    bad.write_text("userId,movieId,rating,timestamp\n1,2,3\n")
    with pytest.raises(DataFileError, match="4 columns"):
        ml._read_ratings(bad)


def test_checksums_agree_with_data_sha256sums():
    listed = dict(reversed(line.split(maxsplit=1)) for line in (data_root() / "SHA256SUMS").read_text().splitlines())
    for spec in ml.MOVIELENS_FILES.values():
        assert listed[spec.relpath] == spec.sha256, spec.relpath
