import pytest
import torch

from course_utils.tabular import CategoryEncoder, Standardizer, TabularPreprocessor, embedding_size


def test_embedding_size_rule():
    assert [embedding_size(n) for n in (1, 2, 3, 7, 24, 99, 100, 10_000)] == [1, 1, 2, 4, 12, 50, 50, 50]
    assert embedding_size(1000, max_size=600) == 500
    for bad in (0, -3, 2.5, "7"):
        with pytest.raises(ValueError, match="positive int"):
            embedding_size(bad)


def test_category_encoder_round_trip_and_order():
    enc = CategoryEncoder("hr").fit(torch.tensor([23, 0, 7, 7, 0]))
    assert enc.classes.tolist() == [0, 7, 23] and len(enc) == 3
    codes = torch.tensor([7, 23, 0, 0])
    assert enc.encode(codes).tolist() == [1, 2, 0, 0]
    assert torch.equal(enc.decode(enc.encode(codes)), codes)
    assert enc.encode([7]).tolist() == [1]  # a list works too
    assert enc.known(torch.tensor([0, 5, 23, 99])).tolist() == [True, False, True, False]
    assert "3 values" in repr(enc)


@pytest.mark.parametrize("values", [[99], [-1], [5], [0, 7, 12]])
def test_unknown_category_is_a_clear_key_error(values):
    enc = CategoryEncoder("hr").fit(torch.tensor([0, 7, 23]))
    with pytest.raises(KeyError, match=r"hr: value -?\d+ was not seen in training \(3 known values"):
        enc.encode(torch.tensor(values))


def test_category_encoder_misuse():
    enc = CategoryEncoder("userId")
    assert "not fitted" in repr(enc)
    with pytest.raises(RuntimeError, match="fit"):
        enc.encode(torch.tensor([1]))
    with pytest.raises(ValueError, match="no values"):
        enc.fit(torch.tensor([], dtype=torch.long))
    with pytest.raises(TypeError, match="integers"):
        enc.fit(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        enc.fit(torch.tensor([[1, 2]]))
    enc.fit(torch.tensor([5, 6]))
    with pytest.raises(IndexError, match="0..1"):
        enc.decode(torch.tensor([2]))


def test_standardizer_uses_fit_statistics_and_rejects_nan():
    train = torch.tensor([[0.0, 10.0], [2.0, 20.0], [4.0, 30.0]])
    s = Standardizer(["a", "b"]).fit(train)
    torch.testing.assert_close(s.transform(train).mean(dim=0), torch.zeros(2))
    torch.testing.assert_close(s.transform(torch.tensor([[6.0, 40.0]])), torch.tensor([[2.0, 2.0]]))
    bad = torch.tensor([[1.0, 5.0], [1.0, float("nan")], [2.0, float("nan")]])
    with pytest.raises(ValueError, match=r"column 'b' has NaN in 2 rows \(the first is row 1\)"):
        s.transform(bad)
    with pytest.raises(ValueError, match="NaN"):
        Standardizer(["a", "b"]).fit(bad)


def test_standardizer_misuse():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer(["a"]).transform(torch.ones(2, 1))
    with pytest.raises(ValueError, match="two training rows"):
        Standardizer(["a"]).fit(torch.ones(1, 1))
    with pytest.raises(ValueError, match="'c' is constant"):
        Standardizer(["a", "c"]).fit(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(rows, 2\)"):
        Standardizer(["a", "b"]).fit(torch.ones(3, 3))


def test_preprocessor_fits_on_training_rows_only():
    train = {"day": torch.tensor([1, 2, 1, 3]), "temp": torch.tensor([0.0, 1.0, 2.0, 3.0]),
             "other": torch.tensor([9, 9, 9, 9])}
    valid = {"day": torch.tensor([3, 1]), "temp": torch.tensor([100.0, 1.5])}
    prep = TabularPreprocessor(["day"], ["temp"]).fit(train)
    x_cat, x_cont = prep.transform(valid)
    assert x_cat.dtype == torch.int64 and x_cat.tolist() == [[2], [0]] and prep.cardinalities == [3]
    std = torch.tensor([0.0, 1.0, 2.0, 3.0]).std()
    torch.testing.assert_close(x_cont[:, 0], (torch.tensor([100.0, 1.5]) - 1.5) / std)
    assert "day" in repr(prep)


def test_preprocessor_only_categorical_or_only_continuous():
    table = {"a": torch.tensor([1, 2, 3]), "x": torch.tensor([0.0, 1.0, 3.0])}
    x_cat, x_cont = TabularPreprocessor(["a"], []).fit(table).transform(table)
    assert x_cat.shape == (3, 1) and x_cont.shape == (3, 0)
    x_cat, x_cont = TabularPreprocessor([], ["x"]).fit(table).transform(table)
    assert x_cat.shape == (3, 0) and x_cat.dtype == torch.int64 and x_cont.shape == (3, 1)


def test_preprocessor_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least one"):
        TabularPreprocessor([], [])
    with pytest.raises(ValueError, match="categorical and continuous"):
        TabularPreprocessor(["a"], ["a"])
    prep = TabularPreprocessor(["a"], ["x"])
    with pytest.raises(KeyError, match=r"no column\(s\) \['x'\]"):
        prep.fit({"a": torch.tensor([1, 2])})
    with pytest.raises(ValueError, match="different lengths"):
        prep.fit({"a": torch.tensor([1, 2]), "x": torch.tensor([1.0, 2.0, 3.0])})
    prep.fit({"a": torch.tensor([1, 2]), "x": torch.tensor([1.0, 2.0])})
    with pytest.raises(KeyError, match="a: value 3 was not seen"):
        prep.transform({"a": torch.tensor([3]), "x": torch.tensor([1.0])})
    with pytest.raises(ValueError, match="'x' has NaN"):
        prep.transform({"a": torch.tensor([1]), "x": torch.tensor([float("nan")])})
