"""Diamonds (ggplot2): the prices and attributes of 53,940 round-cut diamonds.

Each row is one diamond: its weight (``carat``), three ordered quality grades (``cut``,
``color``, ``clarity``), four measurements (``depth``, ``table`` and the sizes ``x``, ``y``,
``z`` in mm) and its ``price`` in US dollars.

* :func:`load_diamonds` → the table: column name → 1-D tensor, one entry per diamond, in the
  file's order. The :data:`CATEGORICAL` columns are int64 codes in the order of :data:`LEVELS`
  (``cut``: Fair = 0 … Ideal = 4; ``color``: D = 0, the best, … J = 6; ``clarity``: I1 = 0, the
  worst, … IF = 7); the :data:`CONTINUOUS` columns and ``price`` are float32.
* :func:`diamonds_split` → a seeded random train/validation split of the rows (a
  ``torch.Generator``: the same seed gives the same split, and no row is on both sides).
* :func:`diamonds_loaders` → minibatches ``(x_cat, x_cont, y)`` for a model with one embedding
  per categorical column: codes as indices, continuous columns standardized with the training
  rows' statistics only, ``y = log(price)`` (or ``price`` with ``log_price=False``).

The file has 146 rows that repeat an earlier row exactly, and a few sizes of 0 (a missing
measurement); both are kept, so a random split can put the same diamond on both sides.

The data lives in ``data/diamonds/`` (``diamonds.csv`` and plotnine's ``LICENSE.plotnine``, MIT),
registered with their SHA-256 in ``datafiles.FILES`` and verified when read. It ships with the
course repository only (no download source): copy the folder if you work elsewhere.

Introduced in ``notebooks/22_entity_embeddings.ipynb`` (used by its exercises).
Copy with: ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``tabular.py``, ``cores.py``,
``settings.py``.

>>> table = load_diamonds()
>>> len(table["price"]), table["cut"].dtype, table["price"].dtype
(53940, torch.int64, torch.float32)
>>> [LEVELS["cut"][int(code)] for code in table["cut"][:3]], float(table["price"][0])
(['Ideal', 'Premium', 'Good'], 326.0)
>>> train, valid = diamonds_split(table, valid_fraction=0.2, seed=0)
>>> len(train["price"]), len(valid["price"])
(43152, 10788)
>>> train_iter, valid_iter, prep = diamonds_loaders(batch_size=256)
>>> x_cat, x_cont, y = next(iter(train_iter))
>>> tuple(x_cat.shape), tuple(x_cont.shape), tuple(y.shape), prep.cardinalities
((256, 3), (256, 6), (256,), [5, 7, 8])
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

if __package__:  # part of course_utils (or of your own package)
    from .datafiles import FILES, DataFile, DataFileError, data_root, ensure_file
    from .loaders import tensor_loader
    from .tabular import TabularPreprocessor
else:  # copied flat next to its siblings
    from datafiles import FILES, DataFile, DataFileError, data_root, ensure_file
    from loaders import tensor_loader
    from tabular import TabularPreprocessor

__all__ = [
    "DIAMONDS_FILES",
    "COLUMNS",
    "LEVELS",
    "CATEGORICAL",
    "CONTINUOUS",
    "TARGET",
    "load_diamonds",
    "split_indices",
    "diamonds_split",
    "diamonds_loaders",
]

DIAMONDS_FILES: dict[str, DataFile] = {
    name: FILES[f"diamonds/{name}"] for name in ("diamonds.csv", "LICENSE.plotnine")
}
"""The registry's entries by name (``LICENSE.plotnine`` is the MIT licence that travels with the data)."""

COLUMNS: tuple[str, ...] = ("carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y",
                            "z")
"""The file's columns, in the file's order (its header)."""
LEVELS: dict[str, tuple[str, ...]] = {
    "cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
    "color": ("D", "E", "F", "G", "H", "I", "J"),
    "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
}
"""The ordered levels of each categorical column; a level's code is its position here.

``cut`` and ``clarity`` go from worst to best, ``color`` from best (D, colourless) to worst (J).
"""
CATEGORICAL: tuple[str, ...] = ("cut", "color", "clarity")
"""The columns stored as int64 codes (positions in :data:`LEVELS`)."""
CONTINUOUS: tuple[str, ...] = ("carat", "depth", "table", "x", "y", "z")
"""The numeric inputs (float32): weight in carats, depth and table in %, sizes in mm."""
TARGET = "price"
"""The column to predict: the price in US dollars (float32)."""


def load_diamonds(root: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """Read (and verify) ``diamonds.csv``: every column of :data:`COLUMNS` as a 1-D tensor.

    Categorical columns are int64 codes in the order of :data:`LEVELS`, the others float32.
    A row that is malformed (wrong number of fields, a value that is not a finite number) or
    has a level not in :data:`LEVELS` raises :class:`DataFileError` naming the file and line.
    """
    base = Path(root) if root is not None else data_root()
    ensure_file("diamonds/LICENSE.plotnine", base)  # the licence travels with the data
    path = ensure_file("diamonds/diamonds.csv", base)
    codes = {name: {level: code for code, level in enumerate(levels)} for name, levels in LEVELS.items()}
    values: dict[str, list[float]] = {name: [] for name in COLUMNS}  # codes are ints
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if header != list(COLUMNS):
            raise DataFileError(f"{path}: unexpected header {header}, expected {list(COLUMNS)}")
        for row in reader:
            line = reader.line_num
            if len(row) != len(COLUMNS):
                raise DataFileError(f"{path}, line {line}: expected {len(COLUMNS)} fields, "
                                    f"got {len(row)}: {row}")
            for name, text in zip(COLUMNS, row, strict=True):
                if name in codes:
                    code = codes[name].get(text)
                    if code is None:
                        raise DataFileError(
                            f"{path}, line {line}: unknown {name} level {text!r}; the known levels, "
                            f"in order: {', '.join(LEVELS[name])}")
                    values[name].append(code)
                else:
                    try:
                        number = float(text)
                    except ValueError:
                        number = math.nan
                    if not math.isfinite(number):
                        raise DataFileError(f"{path}, line {line}: {name} is not a finite number: {text!r}")
                    values[name].append(number)
    if not values[TARGET]:
        raise DataFileError(f"{path}: no rows after the header")
    return {name: torch.tensor(values[name], dtype=torch.int64 if name in codes else torch.float32)
            for name in COLUMNS}


def split_indices(n: int, valid_fraction: float = 0.2, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(train, valid)``: a random ``valid_fraction`` of ``range(n)`` for validation.

    The rows are drawn with ``torch.Generator().manual_seed(seed)`` (the global random state is
    untouched); each part is sorted, the two are disjoint and together they are every row.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be strictly between 0 and 1, got {valid_fraction!r}")
    n_valid = round(n * valid_fraction)
    if n_valid == 0 or n_valid == n:
        raise ValueError(f"valid_fraction={valid_fraction} of {n} rows leaves no training or no "
                         "validation rows")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_valid:].sort().values, order[:n_valid].sort().values


def diamonds_split(
    table: dict[str, torch.Tensor], valid_fraction: float = 0.2, *, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A random ``valid_fraction`` of the rows for validation, the rest for training.

    Rows keep the file's order within each part (:func:`split_indices`); the same seed gives the
    same split.
    """
    lengths = {len(column) for column in table.values()}
    if len(lengths) != 1:
        raise ValueError(f"the table's columns have different lengths: {sorted(lengths)}")
    train, valid = split_indices(lengths.pop(), valid_fraction, seed=seed)
    return ({name: column[train] for name, column in table.items()},
            {name: column[valid] for name, column in table.items()})


def diamonds_loaders(
    batch_size: int,
    *,
    valid_fraction: float = 0.2,
    seed: int = 0,
    log_price: bool = True,
    root: str | os.PathLike[str] | None = None,
) -> tuple[DataLoader, DataLoader, TabularPreprocessor]:
    """Training (shuffled, seeded) and validation batches ``(x_cat, x_cont, y)``.

    ``y`` is ``log(price)`` (``price`` with ``log_price=False``). The third value is the
    :class:`TabularPreprocessor` fitted on the training rows only (its ``cardinalities`` size the
    embeddings; ``transform`` prepares new rows the same way). ``seed`` chooses both the split
    and the order of the training batches.
    """
    train, valid = diamonds_split(load_diamonds(root), valid_fraction, seed=seed)
    prep = TabularPreprocessor(CATEGORICAL, CONTINUOUS).fit(train)

    def tensors(table: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_cat, x_cont = prep.transform(table)
        y = torch.log(table[TARGET]) if log_price else table[TARGET]
        return x_cat, x_cont, y

    train_iter = tensor_loader(*tensors(train), batch_size=batch_size, shuffle=True,
                               generator=torch.Generator().manual_seed(seed))
    valid_iter = tensor_loader(*tensors(valid), batch_size=batch_size)
    return train_iter, valid_iter, prep
