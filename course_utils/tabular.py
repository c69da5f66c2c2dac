"""Categorical and continuous columns as tensors: integer codes → indices, numbers → z-scores.

A table here is a mapping from column name to a 1-D tensor (every column the same length).

* :class:`CategoryEncoder` maps the values of one categorical column (integer codes such as a
  user id or an hour of day) to indices ``0 .. n-1`` for an ``nn.Embedding``. It is fitted on
  the training rows; a value it has not seen raises ``KeyError`` naming the column and the value
  (a model has no vector for it), and :meth:`~CategoryEncoder.known` tells which values it can
  encode, so that you can drop or route those rows explicitly.
* :class:`Standardizer` subtracts the training mean and divides by the training standard
  deviation, column by column; NaN raises ``ValueError`` naming the column and the row.
* :class:`TabularPreprocessor` does both for a table: ``(x_cat, x_cont)`` tensors for a model
  with one embedding per categorical column, sized by :func:`embedding_size`.

Introduced in ``notebooks/21_collaborative_filtering.ipynb`` (user and movie ids); the tabular
model is ``notebooks/22_entity_embeddings.ipynb``.
Copy alone.

>>> import torch
>>> train = {"hour": torch.tensor([7, 8, 7, 23]), "temp": torch.tensor([10.0, 12.0, 14.0, 16.0])}
>>> prep = TabularPreprocessor(categorical=["hour"], continuous=["temp"]).fit(train)
>>> x_cat, x_cont = prep.transform({"hour": torch.tensor([23, 7]), "temp": torch.tensor([13.0, 15.0])})
>>> x_cat.tolist(), [round(v, 3) for v in x_cont[:, 0].tolist()], prep.cardinalities
([[2], [0]], [0.0, 0.775], [3])
>>> prep.transform({"hour": torch.tensor([5]), "temp": torch.tensor([13.0])})
Traceback (most recent call last):
    ...
KeyError: 'hour: value 5 was not seen in training (3 known values, from 7 to 23); ...'
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

__all__ = ["CategoryEncoder", "Standardizer", "TabularPreprocessor", "embedding_size"]

Table = Mapping[str, torch.Tensor]


def embedding_size(n_categories: int, max_size: int = 50) -> int:
    """The embedding width for a column with ``n_categories`` values: ``min(max_size, (n + 1) // 2)``.

    The rule of the first fast.ai tabular lessons (half the number of categories, at most 50);
    a two-valued column gets a single number.

    >>> [embedding_size(n) for n in (2, 7, 24, 610, 9724)]
    [1, 4, 12, 50, 50]
    """
    if not isinstance(n_categories, int) or n_categories < 1:
        raise ValueError(f"n_categories must be a positive int, got {n_categories!r}")
    return min(max_size, (n_categories + 1) // 2)


def _as_codes(values: torch.Tensor | Sequence[int], name: str) -> torch.Tensor:
    codes = torch.as_tensor(values)
    if codes.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D tensor of codes, got shape {tuple(codes.shape)}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"{name}: categorical codes must be integers, got {codes.dtype}")
    return codes.long()


class CategoryEncoder:
    """Integer codes of one categorical column → indices ``0 .. len(self) - 1``.

    ``fit`` keeps the sorted distinct training values (``classes``); index ``i`` stands for
    ``classes[i]``, so the order of indices is the order of the codes.

    >>> import torch
    >>> users = CategoryEncoder("userId").fit(torch.tensor([42, 7, 42, 99]))
    >>> users.classes.tolist(), users.encode(torch.tensor([99, 7])).tolist(), len(users)
    ([7, 42, 99], [2, 0], 3)
    >>> users.known(torch.tensor([7, 8])).tolist(), users.decode(torch.tensor([1])).tolist()
    ([True, False], [42])
    """

    def __init__(self, name: str = "value") -> None:
        self.name = name
        self.classes: torch.Tensor | None = None

    def fit(self, values: torch.Tensor | Sequence[int]) -> CategoryEncoder:
        """Learn the distinct values of ``values`` (the training rows); returns ``self``."""
        codes = _as_codes(values, self.name)
        if codes.numel() == 0:
            raise ValueError(f"{self.name}: cannot fit a category encoder on no values")
        self.classes = torch.unique(codes)  # sorted
        return self

    def _fitted(self) -> torch.Tensor:
        if self.classes is None:
            raise RuntimeError(f"{self.name}: call fit() on the training values first")
        return self.classes

    def __len__(self) -> int:
        return len(self._fitted())

    def known(self, values: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """A boolean mask: which of ``values`` were seen in training (and can be encoded)."""
        return torch.isin(_as_codes(values, self.name), self._fitted())

    def encode(self, values: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The indices of ``values``; ``KeyError`` naming the first value not seen in training."""
        classes = self._fitted()
        codes = _as_codes(values, self.name)
        index = torch.searchsorted(classes, codes).clamp_(max=len(classes) - 1)
        unseen = classes[index] != codes
        if bool(unseen.any()):
            row = int(unseen.nonzero()[0, 0])
            raise KeyError(
                f"{self.name}: value {int(codes[row])} was not seen in training ({len(classes)} "
                f"known values, from {int(classes[0])} to {int(classes[-1])}); "
                f"{int(unseen.sum())} of {len(codes)} values are unknown, the first at position "
                f"{row}. The model has no embedding for it: drop such rows (see known()) or "
                "handle them with a fallback such as the mean")
        return index

    def decode(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The codes that ``indices`` stand for (the inverse of :meth:`encode`)."""
        classes = self._fitted()
        index = _as_codes(indices, self.name)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(classes)):
            raise IndexError(f"{self.name}: indices must be in 0..{len(classes) - 1}")
        return classes[index]

    def __repr__(self) -> str:
        if self.classes is None:
            return f"CategoryEncoder({self.name!r}, not fitted)"
        return f"CategoryEncoder({self.name!r}, {len(self.classes)} values)"


class Standardizer:
    """Per-column ``(x - mean) / std`` with the statistics of the training rows.

    >>> import torch
    >>> s = Standardizer(["temp", "wind"]).fit(torch.tensor([[0.0, 1.0], [2.0, 5.0], [4.0, 9.0]]))
    >>> s.mean.tolist(), s.std.tolist(), s.transform(torch.tensor([[1.0, 1.0]])).tolist()
    ([2.0, 5.0], [2.0, 4.0], [[-0.5, -1.0]])
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != len(self.names):
            raise ValueError(f"expected a (rows, {len(self.names)}) tensor for columns {self.names}, "
                             f"got shape {tuple(x.shape)}")
        x = x.float()
        bad = torch.isnan(x)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"column {self.names[col]!r} has NaN in {int(bad[:, col].sum())} rows (the first "
                f"is row {row}); fill them first (e.g. with the training mean plus a 0/1 column "
                "saying which rows were missing) or drop those rows")
        return x

    def fit(self, x: torch.Tensor) -> Standardizer:
        """Compute the mean and standard deviation of each column of the training rows ``x``."""
        x = self._check(x)
        if x.shape[0] < 2:
            raise ValueError("need at least two training rows to compute a standard deviation")
        self.mean, self.std = x.mean(dim=0), x.std(dim=0)
        constant = self.std == 0
        if bool(constant.any()):
            raise ValueError(f"column {self.names[int(constant.nonzero()[0, 0])]!r} is constant in "
                             "the training rows; drop it")
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Standardize ``x`` with the training statistics (float32)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("call fit() on the training rows first")
        return (self._check(x) - self.mean) / self.std


class TabularPreprocessor:
    """A table → ``(x_cat, x_cont)``: encoded categorical columns and standardized continuous ones.

    ``fit(train_table)`` fits one :class:`CategoryEncoder` per categorical column and one
    :class:`Standardizer` for the continuous columns on the training rows only;
    ``transform(table)`` returns an int64 ``(rows, n_categorical)`` and a float32
    ``(rows, n_continuous)`` tensor. ``cardinalities`` gives each embedding's number of rows.
    """

    def __init__(self, categorical: Sequence[str], continuous: Sequence[str]) -> None:
        if not categorical and not continuous:
            raise ValueError("name at least one categorical or continuous column")
        overlap = set(categorical) & set(continuous)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are listed as categorical and continuous")
        self.categorical, self.continuous = list(categorical), list(continuous)
        self.encoders = {name: CategoryEncoder(name) for name in self.categorical}
        self.standardizer = Standardizer(self.continuous)

    def _columns(self, table: Table) -> tuple[list[torch.Tensor], torch.Tensor]:
        missing = [c for c in self.categorical + self.continuous if c not in table]
        if missing:
            raise KeyError(f"the table has no column(s) {missing}; it has {sorted(table)}")
        lengths = {len(table[c]) for c in self.categorical + self.continuous}
        if len(lengths) != 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        n = lengths.pop()
        cont = (torch.stack([torch.as_tensor(table[c]).float() for c in self.continuous], dim=1)
                if self.continuous else torch.zeros(n, 0))
        return [torch.as_tensor(table[c]) for c in self.categorical], cont

    def fit(self, table: Table) -> TabularPreprocessor:
        """Fit the encoders and the standardizer on the training rows ``table``; returns ``self``."""
        cats, cont = self._columns(table)
        for name, column in zip(self.categorical, cats, strict=True):
            self.encoders[name].fit(column)
        if self.continuous:
            self.standardizer.fit(cont)
        return self

    def transform(self, table: Table) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_cat, x_cont)`` for ``table``; unseen categories and NaN raise clear errors."""
        cats, cont = self._columns(table)
        n = cont.shape[0]
        codes = [self.encoders[name].encode(col) for name, col in zip(self.categorical, cats, strict=True)]
        x_cat = torch.stack(codes, dim=1) if codes else torch.zeros(n, 0, dtype=torch.long)
        x_cont = self.standardizer.transform(cont) if self.continuous else cont
        return x_cat, x_cont

    @property
    def cardinalities(self) -> list[int]:
        """The number of distinct training values of each categorical column."""
        return [len(self.encoders[name]) for name in self.categorical]

    def __repr__(self) -> str:
        return (f"TabularPreprocessor(categorical={self.categorical}, "
                f"continuous={self.continuous})")
