"""MovieLens "latest-small" ratings (GroupLens): 100,836 ratings of 9,742 movies by 610 users.

* :func:`load_movielens` → a :class:`MovieLens`: the raw ``userId``, ``movieId``, ``rating``
  (0.5–5 stars) and ``timestamp`` columns as tensors, plus each movie's title and genres.
* :func:`split_ratings` → a :class:`RatingsSplit`: a random hold-out of ratings, the ids
  turned into embedding indices by encoders fitted on the training ratings only; validation
  ratings of a user or movie with no training rating (cold start) are set apart, not encoded.
* :func:`movielens_loaders` → shuffled training and validation minibatches of
  ``(user_index, movie_index, rating)``, and the split they come from.

The files live in ``data/movielens-small/`` (``ratings.csv``, ``movies.csv`` and GroupLens'
``README.txt`` with the licence, which must travel with the data), registered with their
SHA-256 in ``datafiles.FILES``. Each is verified; a missing one is fetched, when online, from
GroupLens' official zip (itself verified, then unpacked safely and each member checked again)
by ``archives.ensure_from_archive``.

Introduced in ``notebooks/21_collaborative_filtering.ipynb``.
Copy with: ``archives.py``, ``datafiles.py``, ``atomic_write.py``, ``loaders.py``, ``tabular.py``,
``cores.py``, ``settings.py``.

>>> data = load_movielens()
>>> len(data), data.users.unique().numel(), data.titles[1]
(100836, 610, 'Toy Story (1995)')
>>> train_iter, valid_iter, split = movielens_loaders(batch_size=1024)
>>> users, movies, ratings = next(iter(train_iter))
>>> users.shape, movies.dtype, ratings.dtype, len(split.users), split.cold_start.numel()
(torch.Size([1024]), torch.int64, torch.float32, 610, 368)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

if __package__:  # part of course_utils (or of your own package)
    from .archives import ensure_from_archive
    from .datafiles import FILES, DataFile, DataFileError, data_root
    from .loaders import tensor_loader
    from .tabular import CategoryEncoder
else:  # copied flat next to its siblings
    from archives import ensure_from_archive
    from datafiles import FILES, DataFile, DataFileError, data_root
    from loaders import tensor_loader
    from tabular import CategoryEncoder

__all__ = [
    "MOVIELENS_FILES",
    "MovieLens",
    "RatingsSplit",
    "load_movielens",
    "split_ratings",
    "movielens_loaders",
]

MOVIELENS_FILES: dict[str, DataFile] = {
    name: FILES[f"movielens-small/{name}"] for name in ("ratings.csv", "movies.csv", "README.txt")
}
"""The registry's entries by name; ``README.txt`` holds GroupLens' licence terms."""


def _ensure(name: str, root: Path) -> Path:
    return ensure_from_archive(f"movielens-small/{name}", root)


@dataclass(frozen=True)
class MovieLens:
    """The ratings table (one entry per rating, raw ids) and the movies' titles and genres."""

    users: torch.Tensor
    """int64 ``userId`` of each rating."""
    movies: torch.Tensor
    """int64 ``movieId`` of each rating."""
    ratings: torch.Tensor
    """float32 stars, 0.5 to 5 in half steps."""
    timestamps: torch.Tensor
    """int64 seconds since 1970-01-01 UTC."""
    titles: dict[int, str]
    """``movieId`` → title with year, e.g. ``'Toy Story (1995)'``."""
    genres: dict[int, str]
    """``movieId`` → genres separated by ``|``."""

    def __len__(self) -> int:
        return len(self.ratings)


def _read_ratings(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().strip()
        if header != "userId,movieId,rating,timestamp":
            raise DataFileError(f"{path}: unexpected header {header!r}")
        try:
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise DataFileError(f"{path} is not a table of four numbers per line: {err}") from err
    if table.shape[1] != 4:
        raise DataFileError(f"{path}: expected 4 columns, got {table.shape[1]}")
    return table


def _read_movies(path: Path) -> tuple[dict[int, str], dict[int, str]]:
    titles: dict[int, str] = {}
    genres: dict[int, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            movie = int(row["movieId"])
            titles[movie], genres[movie] = row["title"], row["genres"]
    return titles, genres


def load_movielens(root: str | os.PathLike[str] | None = None) -> MovieLens:
    """Read (and verify) ``ratings.csv`` and ``movies.csv`` from ``root`` (default: the data root)."""
    base = Path(root) if root is not None else data_root()
    _ensure("README.txt", base)  # the licence travels with the data
    table = _read_ratings(_ensure("ratings.csv", base))
    titles, genres = _read_movies(_ensure("movies.csv", base))
    columns = torch.from_numpy(table)
    return MovieLens(users=columns[:, 0].long(), movies=columns[:, 1].long(),
                     ratings=columns[:, 2].float(), timestamps=columns[:, 3].long(),
                     titles=titles, genres=genres)


@dataclass(frozen=True)
class RatingsSplit:
    """A random hold-out of ratings, with ids encoded by encoders fitted on the training part.

    ``train`` and ``valid`` are ``(user_index, movie_index, rating)`` tensors. ``cold_start``
    holds the positions (in the :class:`MovieLens` table) of held-out ratings whose user or
    movie has no training rating: no model here has a vector for them, so they are not in
    ``valid``.
    """

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    users: CategoryEncoder
    movies: CategoryEncoder
    train_rows: torch.Tensor
    valid_rows: torch.Tensor
    cold_start: torch.Tensor


def split_ratings(data: MovieLens, valid_frac: float = 0.1, seed: int = 0) -> RatingsSplit:
    """Hold out a random ``valid_frac`` of the ratings (each rating independently of its user).

    The order comes from ``torch.randperm(len(data))`` with a generator seeded by ``seed``: the
    first ``round(valid_frac * len(data))`` positions are held out, the rest train.
    """
    if not 0.0 < valid_frac < 1.0:
        raise ValueError(f"valid_frac must be between 0 and 1, got {valid_frac}")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_valid = round(valid_frac * len(data))
    held_out, train_rows = perm[:n_valid], perm[n_valid:]
    users = CategoryEncoder("userId").fit(data.users[train_rows])
    movies = CategoryEncoder("movieId").fit(data.movies[train_rows])
    seen = users.known(data.users[held_out]) & movies.known(data.movies[held_out])
    valid_rows = held_out[seen]

    def encoded(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return users.encode(data.users[rows]), movies.encode(data.movies[rows]), data.ratings[rows]

    return RatingsSplit(train=encoded(train_rows), valid=encoded(valid_rows), users=users,
                        movies=movies, train_rows=train_rows, valid_rows=valid_rows,
                        cold_start=held_out[~seen])


def movielens_loaders(
    batch_size: int,
    *,
    valid_frac: float = 0.1,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
) -> tuple[DataLoader, DataLoader, RatingsSplit]:
    """Training (shuffled, seeded) and validation minibatches of ``(users, movies, ratings)``.

    The third value is the :class:`RatingsSplit` behind them (its encoders turn raw ids into
    the indices the model sees and say how many users and movies there are).
    """
    split = split_ratings(load_movielens(root), valid_frac=valid_frac, seed=seed)
    train_iter = tensor_loader(*split.train, batch_size=batch_size, shuffle=True,
                               generator=torch.Generator().manual_seed(seed))
    valid_iter = tensor_loader(*split.valid, batch_size=batch_size)
    return train_iter, valid_iter, split
