import shutil

import pytest
import torch

from course_utils import diamonds as dm
from course_utils.datafiles import ChecksumError, DataFileError, MissingDataError, data_root

FIRST_LINE = '0.23,"Ideal","E","SI2",61.5,55,326,3.95,3.98,2.43'
LAST_LINE = '0.75,"Ideal","D","SI2",62.2,55,2757,5.83,5.87,3.64'


@pytest.fixture(scope="module")
def table():
    return dm.load_diamonds()


def row(table, i):
    """Row ``i`` as the file writes it: categorical codes back to levels, numbers as floats."""
    return {name: dm.LEVELS[name][int(col[i])] if name in dm.LEVELS else float(col[i])
            for name, col in table.items()}


def test_level_orders_are_the_ordered_grades():
    assert dm.LEVELS == {
        "cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
        "color": ("D", "E", "F", "G", "H", "I", "J"),
        "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
    }
    assert set(dm.CATEGORICAL) | set(dm.CONTINUOUS) | {dm.TARGET} == set(dm.COLUMNS)
    assert not set(dm.CATEGORICAL) & set(dm.CONTINUOUS)


def test_load_has_every_diamond_with_its_dtypes(table):
    assert list(table) == list(dm.COLUMNS)
    for name, column in table.items():
        assert column.shape == (53_940,), name
        assert column.dtype == (torch.int64 if name in dm.CATEGORICAL else torch.float32), name
    counts = {name: torch.bincount(table[name], minlength=len(dm.LEVELS[name])).tolist()
              for name in dm.CATEGORICAL}
    assert counts == {"cut": [1_610, 4_906, 12_082, 13_791, 21_551],
                      "color": [6_775, 9_797, 9_542, 11_292, 8_304, 5_422, 2_808],
                      "clarity": [741, 9_194, 13_065, 12_258, 8_171, 5_066, 3_655, 1_790]}
    assert float(table["price"].min()) == 326.0 and float(table["price"].max()) == 18_823.0
    assert bool((table["price"] == table["price"].round()).all())  # whole dollars, exact in float32


def test_first_and_last_rows_are_those_of_the_file(table):
    lines = (data_root() / "diamonds" / "diamonds.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == '"carat","cut","color","clarity","depth","table","price","x","y","z"'
    assert (lines[1], lines[-1], len(lines)) == (FIRST_LINE, LAST_LINE, 53_941)
    f32 = lambda v: float(torch.tensor(v, dtype=torch.float32))  # noqa: E731
    assert row(table, 0) == {"carat": f32(0.23), "cut": "Ideal", "color": "E", "clarity": "SI2",
                             "depth": f32(61.5), "table": 55.0, "price": 326.0, "x": f32(3.95),
                             "y": f32(3.98), "z": f32(2.43)}
    assert row(table, -1) == {"carat": 0.75, "cut": "Ideal", "color": "D", "clarity": "SI2",
                              "depth": f32(62.2), "table": 55.0, "price": 2757.0, "x": f32(5.83),
                              "y": f32(5.87), "z": f32(3.64)}
    assert [int(table[c][0]) for c in dm.CATEGORICAL] == [4, 1, 1]  # Ideal, E, SI2 as codes


def test_split_is_random_disjoint_complete_and_seeded(table):
    train_idx, valid_idx = dm.split_indices(53_940, 0.2, seed=0)
    assert (len(train_idx), len(valid_idx)) == (43_152, 10_788)
    assert torch.equal(torch.cat([train_idx, valid_idx]).sort().values, torch.arange(53_940))
    assert not bool(torch.isin(train_idx, valid_idx).any())
    assert int(valid_idx.max()) > 50_000 and int(valid_idx.min()) < 100  # drawn from the whole file
    again = dm.split_indices(53_940, 0.2, seed=0)
    assert torch.equal(again[0], train_idx) and torch.equal(again[1], valid_idx)
    assert not torch.equal(dm.split_indices(53_940, 0.2, seed=1)[1], valid_idx)
    state = torch.get_rng_state()
    train, valid = dm.diamonds_split(table, 0.2, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # a torch.Generator, not the global state
    for name in dm.COLUMNS:
        assert torch.equal(train[name], table[name][train_idx])
        assert torch.equal(valid[name], table[name][valid_idx])
    assert len(dm.diamonds_split(table, 0.1, seed=3)[1]["price"]) == 5_394
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="valid_fraction"):
            dm.split_indices(53_940, bad)
    with pytest.raises(ValueError, match="no training or no validation rows"):
        dm.split_indices(3, 0.1)
    with pytest.raises(ValueError, match="different lengths"):
        dm.diamonds_split({"a": torch.zeros(3), "b": torch.zeros(4)})


def test_loaders_prepare_with_training_statistics_only(table):
    train_iter, valid_iter, prep = dm.diamonds_loaders(512, seed=0)
    train, valid = dm.diamonds_split(table, 0.2, seed=0)
    x_cat, x_cont, y = train_iter.dataset.tensors
    assert x_cat.shape == (43_152, 3) and x_cont.shape == (43_152, 6) and y.shape == (43_152,)
    assert (x_cat.dtype, x_cont.dtype, y.dtype) == (torch.int64, torch.float32, torch.float32)
    assert prep.cardinalities == [5, 7, 8]
    assert torch.equal(x_cat, torch.stack([train[c] for c in dm.CATEGORICAL], 1))  # indices = codes
    torch.testing.assert_close(x_cont.mean(dim=0), torch.zeros(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(y, torch.log(train["price"]))
    vx_cat, vx_cont, vy = valid_iter.dataset.tensors
    assert vx_cat.shape == (10_788, 3)
    torch.testing.assert_close(vy, torch.log(valid["price"]))
    raw = torch.stack([train[c] for c in dm.CONTINUOUS], 1)
    expected = (torch.stack([valid[c] for c in dm.CONTINUOUS], 1) - raw.mean(0)) / raw.std(0)
    torch.testing.assert_close(vx_cont, expected)
    batch = next(iter(train_iter))
    assert [tuple(t.shape) for t in batch] == [(512, 3), (512, 6), (512,)]
    assert torch.equal(batch[0], next(iter(dm.diamonds_loaders(512, seed=0)[0]))[0])
    first_valid = next(iter(valid_iter))
    assert torch.equal(first_valid[2], vy[:512])  # validation keeps its order
    _, plain_valid, _ = dm.diamonds_loaders(512, seed=0, log_price=False)
    assert torch.equal(plain_valid.dataset.tensors[2], valid["price"])


def test_missing_file_says_it_ships_with_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="diamonds/LICENSE.plotnine .*ships with the course repository"):
        dm.load_diamonds(tmp_path)
    shutil.copytree(data_root() / "diamonds", tmp_path / "diamonds")
    (tmp_path / "diamonds" / "diamonds.csv").unlink()
    with pytest.raises(MissingDataError, match="diamonds/diamonds.csv") as err:
        dm.load_diamonds(tmp_path)
    assert dm.DIAMONDS_FILES["diamonds.csv"].sha256 in str(err.value)


def test_corrupt_file_is_refused(tmp_path):
    shutil.copytree(data_root() / "diamonds", tmp_path / "diamonds")
    with open(tmp_path / "diamonds" / "diamonds.csv", "a") as handle:
        handle.write(LAST_LINE + "\n")
    with pytest.raises(ChecksumError, match="diamonds.csv"):
        dm.load_diamonds(tmp_path)


def test_malformed_rows_and_unknown_levels_are_data_file_errors(tmp_path, monkeypatch):
    header = '"carat","cut","color","clarity","depth","table","price","x","y","z"'
    bad = tmp_path / "bad.csv"
    real = dm.ensure_file
    monkeypatch.setattr(dm, "ensure_file", lambda name, root: bad if name.endswith(".csv") else real(name, root))

    def refused(lines, match):
        bad.write_text("\n".join(lines) + "\n")
        with pytest.raises(DataFileError, match=match):
            dm.load_diamonds()

    refused([header, FIRST_LINE, LAST_LINE.replace('"Ideal"', '"Excellent"')],
            r"line 3: unknown cut level 'Excellent'; the known levels, in order: Fair, Good, Very Good")
    refused([header, FIRST_LINE.replace('"E"', '"K"')], r"line 2: unknown color level 'K'")
    refused([header, FIRST_LINE.replace('"SI2"', '"si2"')], r"line 2: unknown clarity level 'si2'")
    refused([header, FIRST_LINE, FIRST_LINE.rsplit(",", 1)[0]], r"line 3: expected 10 fields, got 9")
    refused([header, FIRST_LINE.replace(",326,", ",326 USD,")], r"line 2: price is not a finite number: '326 USD'")
    refused([header, FIRST_LINE.replace("0.23,", "nan,", 1)], r"line 2: carat is not a finite number: 'nan'")
    refused([header.replace('"price"', '"cost"'), FIRST_LINE], "unexpected header")
    refused([header], "no rows after the header")
    bad.write_text("\n".join([header, FIRST_LINE, LAST_LINE]) + "\n")
    assert len(dm.load_diamonds()["price"]) == 2  # the same lines, well formed, are read


def test_checksums_agree_with_data_sha256sums():
    listed = dict(reversed(line.split(maxsplit=1)) for line in (data_root() / "SHA256SUMS").read_text().splitlines())
    for spec in dm.DIAMONDS_FILES.values():
        assert listed[spec.relpath] == spec.sha256, spec.relpath
