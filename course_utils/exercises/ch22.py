"""Checks for chapter 22's exercises (entity embeddings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape

_SIZES = [1, 2, 7, 12, 24, 100, 610, 9724, 100_000, 1_000_000]


@checks("22.1")
def embedding_width(rule: Callable[[int], Any]) -> str:
    got = [rule(n) for n in _SIZES]
    for n, width in zip(_SIZES, got, strict=True):
        if not isinstance(width, int) or isinstance(width, bool):
            raise Wrong(f"the width for {n} categories should be a Python int, got {describe(width)}")
    expected = [min(600, round(1.6 * n ** 0.56)) for n in _SIZES]
    expect_equal(got, expected, f"the widths for {_SIZES} categories", mistakes={
        "the chapter's rule min(50, ceil(n / 2)), not fast.ai's newer min(600, round(1.6 n^0.56))":
            [min(50, (n + 1) // 2) for n in _SIZES],
        "rounded down (int()) instead of to the nearest integer (round())":
            [min(600, int(1.6 * n ** 0.56)) for n in _SIZES],
        "the cap of 600 is missing": [round(1.6 * n ** 0.56) for n in _SIZES],
    })
    return f"min(600, round(1.6 n^0.56)) for n in {_SIZES}"


def _encode(train: torch.Tensor, values: torch.Tensor, *, shift: int = 1, check_known: bool = True,
            fit_on_values: bool = False) -> torch.Tensor:
    classes = torch.unique(values if fit_on_values else train).tolist()
    out = []
    for v in values.tolist():
        if v in classes:
            out.append(classes.index(v) + shift)
        elif check_known:
            out.append(0)
        else:  # searchsorted's neighbour
            out.append(min(sum(c < v for c in classes), len(classes) - 1) + shift)
    return torch.tensor(out, dtype=torch.long)


@checks("22.2")
def unknown_row(encode_with_unknown: Callable[[torch.Tensor, torch.Tensor], Any]) -> str:
    cases = [("training codes [7, 3, 3, 12, 7, 40], new codes [3, 40, 5, 100, -1, 12, 7]",
              torch.tensor([7, 3, 3, 12, 7, 40]), torch.tensor([3, 40, 5, 100, -1, 12, 7])),
             ("hours 0–23 without 4 in training, new codes [4, 23, 0]",
              torch.cat([torch.arange(4), torch.arange(5, 24)]), torch.tensor([4, 23, 0])),
             ("training codes [2, 9], no new codes", torch.tensor([9, 2]), torch.tensor([], dtype=torch.long))]
    for name, train, values in cases:
        train_before, values_before = train.clone(), values.clone()
        answer = encode_with_unknown(train, values)
        if not torch.equal(train, train_before) or not torch.equal(values, values_before):
            raise Wrong(f"{name}: your function changed its inputs")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return (indices, num_embeddings), got {describe(answer)}")
        indices, num_embeddings = answer
        indices = expect_shape(indices, tuple(values.shape), f"the indices for {name}")
        if indices.is_floating_point():
            hint = " (torch.tensor([]) is float32: pass dtype=torch.long)" if indices.numel() == 0 else ""
            raise Wrong(f"the indices for {name} should be integers (torch.long), got {describe(indices)}{hint}")
        expect_equal(indices.long(), _encode(train, values), f"the indices for {name}", mistakes={
            "the known categories start at index 0, which is the unknown row (number them from 1)":
                _encode(train, values, shift=0),
            "an unknown code gets the index of a neighbouring category (check that searchsorted found the "
            "code itself)": _encode(train, values, check_known=False),
            "the categories were taken from the codes being encoded, not from the training codes":
                _encode(train, values, fit_on_values=True),
        })
        n_known = len(torch.unique(train))
        expect_equal(int(num_embeddings) if isinstance(num_embeddings, (int, torch.Tensor)) else num_embeddings,
                     n_known + 1, f"num_embeddings for {name}", mistakes={
                         f"the {n_known} training categories need one more row, index 0, for unknown values":
                             n_known})
    return "unknown codes → 0, training categories → 1..n in sorted order, num_embeddings = n + 1, on three cases"


def _same_with_nan(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(),
                                                                                            b.nan_to_num())


@checks("22.3")
def missing_values(fill_missing: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(223)
    train = torch.randn(50, 3, generator=g) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -20.0, 1.0])
    train[torch.randperm(50, generator=g)[:6], 0] = float("nan")
    train[torch.randperm(50, generator=g)[:3], 2] = float("nan")
    x = torch.randn(8, 3, generator=g) * 3
    x[1, 0] = x[4, 2] = x[6, 0] = float("nan")
    x[5] = float("nan")  # a row with nothing known
    cases = [("8 rows, one of them all missing, column 1 never missing", train, x),
             ("one row without missing values", train, torch.tensor([[1.0, 2.0, 3.0]]))]
    for name, train_x, x in cases:
        train_before, x_before = train_x.clone(), x.clone()
        got = fill_missing(train_x, x)
        if not _same_with_nan(x, x_before) or not _same_with_nan(train_x, train_before):
            raise Wrong(f"{name}: your function changed its input in place (the NaNs of x must stay NaN); fill a "
                        "copy")
        got = expect_shape(got, (x.shape[0], 2 * x.shape[1]), f"the result for {name}")
        if bool(torch.isnan(got).any()):
            raise Wrong(f"the result for {name} contains NaN ({describe(got)}): the training mean of a column "
                        "with missing values must skip them (torch.nanmean)")
        missing = torch.isnan(x)
        mean = torch.nanmean(train_x, dim=0)
        expected = torch.cat([torch.where(missing, mean, x), missing.float()], dim=1)
        mistakes = {
            "filled with 0 instead of the training mean": torch.cat([x.nan_to_num(0.0), missing.float()], dim=1),
            "filled with the mean of the rows being transformed, not of the training rows":
                torch.cat([torch.where(missing, torch.nanmean(x, dim=0), x), missing.float()], dim=1),
            "the indicator columns are inverted (1 must mean missing)":
                torch.cat([torch.where(missing, mean, x), (~missing).float()], dim=1),
        }
        expect_close(got, expected, f"the result for {name}", mistakes=mistakes)
    return "filled with the NaN-skipping training means, followed by 0/1 missing indicators, on two tables"


@checks("22.4")
def first_layer_tables(split_first_layer: Callable[[torch.Tensor, Sequence[int]], Sequence[torch.Tensor]]) -> str:
    g = torch.Generator().manual_seed(224)
    cases = [("cardinalities [4, 2, 12, 24] and 4 continuous columns, 16 outputs", [4, 2, 12, 24], 4, 16),
             ("cardinalities [3], no continuous column, 5 outputs", [3], 0, 5),
             ("cardinalities [1, 5] and 2 continuous columns, 3 outputs", [1, 5], 2, 3)]
    for name, cardinalities, n_cont, out in cases:
        weight = torch.randn(out, sum(cardinalities) + n_cont, generator=g)
        before = weight.clone()
        tables = split_first_layer(weight, list(cardinalities))
        if not torch.equal(weight, before):
            raise Wrong(f"{name}: your function changed the weight matrix")
        if not isinstance(tables, (list, tuple)) or len(tables) != len(cardinalities):
            raise Wrong(f"{name}: return a list of {len(cardinalities)} tables, one per categorical column, got "
                        f"{describe(tables)}")
        offsets = [sum(cardinalities[:j]) for j in range(len(cardinalities))]
        x_cat = torch.stack([torch.randint(0, n, (6,), generator=g) for n in cardinalities], dim=1)
        one_hot = torch.cat([F.one_hot(x_cat[:, j], n).float() for j, n in enumerate(cardinalities)], dim=1)
        for j, (n, table) in enumerate(zip(cardinalities, tables, strict=True)):
            what = f"table {j} of {name}"
            if isinstance(table, torch.Tensor) and tuple(table.shape) == (out, n) and n != out:
                raise Wrong(f"{what} has shape {(out, n)}: it is transposed (row i must be category i's vector, "
                            "weight[:, offset + i])")
            expect_shape(table, (n, out), what)
            expected = weight[:, offsets[j]:offsets[j] + n].T
            cumulative = weight[:, offsets[j] + n:offsets[j] + 2 * n].T
            expect_close(table, expected, what, mistakes={
                "every table starts at column 0 (table j starts after the one-hot columns of the columns "
                "before it)": weight[:, :n].T,
                "each table starts where its column's one-hot block ends (the offset of column j is the sum of "
                "the cardinalities *before* j)": cumulative,
            })
        lookups = sum(t[x_cat[:, j]] for j, t in enumerate(tables))
        expect_close(lookups, one_hot @ weight[:, :sum(cardinalities)].T,
                     f"the sum of the lookups for 6 rows of {name} (it must equal one-hot times the weights)")
    return "one (categories × outputs) table per column, equal to the weight's one-hot block, and the lookups " \
           "reproduce one-hot times the weights, on three layers"


def _linear_baseline(train: dict[str, torch.Tensor], valid: dict[str, torch.Tensor], y: torch.Tensor,
                     categorical: Sequence[str], continuous: Sequence[str]) -> torch.Tensor:
    from ..tabular import TabularPreprocessor
    prep = TabularPreprocessor(categorical, continuous).fit(train)

    def features(table: dict[str, torch.Tensor]) -> torch.Tensor:
        x_cat, x_cont = prep.transform(table)
        parts = [F.one_hot(x_cat[:, j], n).double() for j, n in enumerate(prep.cardinalities)]
        return torch.cat(parts + [x_cont.double(), torch.ones(len(x_cont), 1, dtype=torch.float64)], dim=1)

    A = features(train)
    D = torch.eye(A.shape[1], dtype=A.dtype)
    D[-1, -1] = 0.0
    w = torch.linalg.solve(A.T @ A + D, A.T @ y.double())
    return (features(valid) @ w).float()


@checks("22.5")
def diamond_prices(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    from ..diamonds import CATEGORICAL, CONTINUOUS, load_diamonds, split_indices
    from ..tabular import TabularPreprocessor
    table = load_diamonds()
    train_rows, valid_rows = split_indices(len(table["price"]))  # the learner trains on train_rows only
    sizes = torch.stack([table[name][valid_rows] for name in ("x", "y", "z")], dim=1)
    valid_rows = valid_rows[((sizes > 0) & (sizes < 20)).all(dim=1)]  # 3 sizes recorded as 0, 31.8 or 58.9 mm
    train = {name: column[train_rows] for name, column in table.items()}
    valid = {name: column[valid_rows] for name, column in table.items()}
    x_cat = torch.stack([valid[name] for name in CATEGORICAL], dim=1)
    x_cont = torch.stack([valid[name] for name in CONTINUOUS], dim=1)
    target = torch.log(valid["price"])
    what = f"the predictions for the {len(target):,} held-out diamonds"

    def predictions(x_cont: torch.Tensor) -> torch.Tensor:
        got = expect_shape(predict(x_cat.clone(), x_cont.clone()), (len(target),), what).detach().float().cpu()
        if not bool(torch.isfinite(got).all()):
            raise Wrong(f"{what} contain NaN or infinite values: {describe(got)}")
        return got

    def rmse(prediction: torch.Tensor) -> float:
        return float(((prediction - target) ** 2).mean().sqrt())

    got = predictions(x_cont)
    y_train = torch.log(train["price"])
    mean_rmse = rmse(y_train.mean().expand(len(target)))
    floor = rmse(_linear_baseline(train, valid, y_train, CATEGORICAL, CONTINUOUS))  # the bar to beat
    score = rmse(got)
    if score >= floor:
        standardized = TabularPreprocessor(CATEGORICAL, CONTINUOUS).fit(train).transform(valid)[1]
        again = rmse(predictions(standardized))
        if again < floor:
            raise Wrong(f"validation RMSE {score:.3f} on x_cont in the file's units, but {again:.3f} when the check "
                        "standardizes x_cont first: standardize x_cont inside predict, with the training rows' "
                        "means and standard deviations")
        as_log = rmse(torch.log(got.clamp(min=1.0)))
        if float(got.median()) > 100 and as_log < score / 2:  # log(price) lies between 5.8 and 9.9
            raise Wrong(f"validation RMSE {score:.3f}: your predictions look like prices in dollars, not log(price) "
                        f"(their logarithm would score {as_log:.3f}); train on log(price)")
        raise Wrong(f"validation RMSE {score:.3f} of log(price) is not below the floor {floor:.3f}, a linear model on "
                    f"one-hot features fitted on the same training rows (predicting the training mean: "
                    f"{mean_rmse:.3f})")
    return (f"validation RMSE {score:.3f} of log(price) on {len(target):,} held-out diamonds; the linear model on "
            f"one-hot features (the floor) {floor:.3f}, the training mean {mean_rmse:.3f}")
