"""Bike Sharing (Capital Bikeshare, Washington D.C., 2011–2012): hourly rental counts.

17,379 hours, each with calendar and weather columns and the number of bikes rented (``cnt``).

* :func:`load_bike_sharing` → the table: column name → 1-D tensor, one entry per hour, in time
  order. The date ``dteday`` becomes ``day`` (days since 2011-01-01).
* :func:`split_by_time` → the rows before a date (training: the past) and from it on
  (validation: the future).
* :func:`bike_sharing_loaders` → minibatches ``(x_cat, x_cont, y)`` for a model with one
  embedding per categorical column: :data:`CATEGORICAL` columns as indices,
  :data:`CONTINUOUS` columns standardized with training statistics, ``y = log(cnt + 1)``.

``casual`` and ``registered`` add up to ``cnt``, so they are never inputs.

The data lives in ``data/bike-sharing/`` (``hour.csv`` and the data set's own ``Readme.txt``),
registered with their SHA-256 in ``datafiles.FILES`` and verified. A missing file is fetched,
when online, from UCI's archive
(https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip) by
``archives.ensure_from_archive``. The expected layout is ``hour.csv`` and ``Readme.txt`` at the
zip's top level. UCI publishes no checksum for the zip, so the members' own SHA-256 are the
guarantee: a member that differs is refused and nothing is saved.

Introduced in ``notebooks/22_entity_embeddings.ipynb``.
Copy with: ``archives.py``, ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``tabular.py``,
``cores.py``, ``settings.py``.

>>> table = load_bike_sharing()
>>> len(table["cnt"]), int(table["hr"].max()), int(table["day"][-1])
(17379, 23, 730)
>>> train_iter, valid_iter, prep = bike_sharing_loaders(batch_size=256)
>>> x_cat, x_cont, y = next(iter(train_iter))
>>> tuple(x_cat.shape), tuple(x_cont.shape), prep.cardinalities
((256, 8), (256, 4), [4, 2, 12, 24, 2, 7, 2, 4])
"""

from __future__ import annotations

import csv
import datetime
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

if __package__:  # part of course_utils (or of your own package)
    from .archives import ensure_from_archive
    from .datafiles import FILES, DataFile, DataFileError, data_root
    from .loaders import tensor_loader
    from .tabular import TabularPreprocessor
else:  # copied flat next to its siblings
    from archives import ensure_from_archive
    from datafiles import FILES, DataFile, DataFileError, data_root
    from loaders import tensor_loader
    from tabular import TabularPreprocessor

__all__ = [
    "BIKE_SHARING_FILES",
    "CATEGORICAL",
    "CONTINUOUS",
    "FIRST_DAY",
    "load_bike_sharing",
    "split_by_time",
    "bike_sharing_loaders",
]

BIKE_SHARING_FILES: dict[str, DataFile] = {
    name: FILES[f"bike-sharing/{name}"] for name in ("hour.csv", "Readme.txt")
}
"""The registry's entries by name (``Readme.txt`` is the data set's own, with the citation)."""

CATEGORICAL: tuple[str, ...] = ("season", "yr", "mnth", "hr", "holiday", "weekday", "workingday",
                                "weathersit")
"""Calendar and weather columns stored as integer codes (hour 0–23, weekday 0 = Sunday, ...)."""
CONTINUOUS: tuple[str, ...] = ("temp", "atemp", "hum", "windspeed")
"""Temperature, felt temperature, humidity and wind speed (each divided by its maximum by UCI)."""
FIRST_DAY = datetime.date(2011, 1, 1)
"""``day`` 0."""

_INTEGER = {"instant", *CATEGORICAL, "casual", "registered", "cnt"}
_COLUMNS = ["instant", "dteday", *CATEGORICAL,
            *CONTINUOUS, "casual", "registered", "cnt"]


def load_bike_sharing(root: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """Read (and verify) ``hour.csv``: every column as a tensor, ``dteday`` as ``day``.

    Integer columns are int64, the four weather numbers float32.
    """
    base = Path(root) if root is not None else data_root()
    ensure_from_archive("bike-sharing/Readme.txt", base)  # the citation travels with the data
    path = ensure_from_archive("bike-sharing/hour.csv", base)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if header[:len(_COLUMNS)] != _COLUMNS:
            raise DataFileError(f"{path}: unexpected header {header}")
        rows = list(reader)
    values: dict[str, list[float | int]] = {name: [] for name in _COLUMNS if name != "dteday"}
    values["day"] = []
    for line, row in enumerate(rows, start=2):
        try:
            for name, text in zip(_COLUMNS, row, strict=True):
                if name == "dteday":
                    values["day"].append((datetime.date.fromisoformat(text) - FIRST_DAY).days)
                else:
                    values[name].append(int(text) if name in _INTEGER else float(text))
        except ValueError as err:
            raise DataFileError(f"{path}, line {line}: {err}") from err
    return {name: torch.tensor(column, dtype=torch.float32 if name in CONTINUOUS else torch.int64)
            for name, column in values.items()}


def split_by_time(
    table: dict[str, torch.Tensor], valid_from: str | datetime.date = "2012-09-01"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The rows before ``valid_from`` (train: the past) and from that day on (validation)."""
    date = datetime.date.fromisoformat(valid_from) if isinstance(valid_from, str) else valid_from
    cut = (date - FIRST_DAY).days
    past = table["day"] < cut
    if not bool(past.any()) or bool(past.all()):
        raise ValueError(f"valid_from={date} leaves no training or no validation rows "
                         f"(the data covers days {int(table['day'].min())}–{int(table['day'].max())} "
                         f"after {FIRST_DAY})")
    return ({name: col[past] for name, col in table.items()},
            {name: col[~past] for name, col in table.items()})


def bike_sharing_loaders(
    batch_size: int,
    *,
    valid_from: str | datetime.date = "2012-09-01",
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
) -> tuple[DataLoader, DataLoader, TabularPreprocessor]:
    """Training (shuffled, seeded) and validation batches ``(x_cat, x_cont, log(cnt + 1))``.

    The third value is the :class:`TabularPreprocessor` fitted on the training rows (its
    ``cardinalities`` size the embeddings; ``transform`` prepares new rows the same way).
    """
    train, valid = split_by_time(load_bike_sharing(root), valid_from)
    prep = TabularPreprocessor(CATEGORICAL, CONTINUOUS).fit(train)

    def tensors(table: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_cat, x_cont = prep.transform(table)
        return x_cat, x_cont, torch.log1p(table["cnt"].float())

    train_iter = tensor_loader(*tensors(train), batch_size=batch_size, shuffle=True,
                               generator=torch.Generator().manual_seed(seed))
    valid_iter = tensor_loader(*tensors(valid), batch_size=batch_size)
    return train_iter, valid_iter, prep
