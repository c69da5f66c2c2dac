"""Checks for chapter 21's exercises (collaborative filtering)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape


def _rating_tables() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, int, int, float]]:
    g = torch.Generator().manual_seed(21)
    halves = torch.arange(1, 11) / 2  # 0.5 … 5 stars
    n = 200  # every user and every movie has ratings: the first 12 and 20 rows make sure of it
    users = torch.cat([torch.arange(12), torch.randint(0, 12, (n - 12,), generator=g)])
    movies = torch.cat([torch.randperm(20, generator=g), torch.randint(0, 20, (n - 20,), generator=g)])
    cases = [("200 ratings of 20 movies by 12 users (damping 5)", users, movies,
              halves[torch.randint(0, 10, (n,), generator=g)], 12, 20, 5.0)]
    users = torch.tensor([0, 0, 2, 2, 2, 3])  # user 1 and movie 4 have no rating
    movies = torch.tensor([0, 1, 0, 2, 3, 3])
    cases.append(("6 ratings where user 1 and movie 4 have none (damping 2)", users, movies,
                  torch.tensor([4.0, 3.5, 2.0, 5.0, 1.0, 0.5]), 4, 5, 2.0))
    cases.append(("one rating (damping 0.5)", torch.tensor([0]), torch.tensor([0]), torch.tensor([4.5]), 1, 1, 0.5))
    return cases


def _biases(users: torch.Tensor, movies: torch.Tensor, ratings: torch.Tensor, n_users: int, n_movies: int,
            damping: float, *, user_damping: bool = True, subtract_mean: bool = True,
            subtract_user: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r = ratings.double()
    mu = r.mean()
    user_count = torch.bincount(users, minlength=n_users).double()
    user_sum = torch.zeros(n_users, dtype=torch.float64).index_add_(0, users, r - mu if subtract_mean else r)
    user_bias = user_sum / (user_count + damping if user_damping else user_count)
    left = r - mu - (user_bias[users] if subtract_user else 0.0)
    movie_count = torch.bincount(movies, minlength=n_movies).double()
    movie_bias = torch.zeros(n_movies, dtype=torch.float64).index_add_(0, movies, left) / (movie_count + damping)
    return user_bias, movie_bias


def _as_triple(answer: Any, what: str) -> tuple[Any, Any, Any]:
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise Wrong(f"{what} should be a tuple (mu, user_bias, movie_bias), got {describe(answer)}")
    return answer[0], answer[1], answer[2]


@checks("21.1")
def bias_baseline(fit_biases: Callable[..., Any]) -> str:
    for name, users, movies, ratings, n_users, n_movies, damping in _rating_tables():
        mu, user_bias, movie_bias = _as_triple(fit_biases(users, movies, ratings, n_users, n_movies, damping),
                                               f"the result for {name}")
        expect_close(mu, ratings.double().mean(), f"the global mean for {name}")
        expected_u, expected_m = _biases(users, movies, ratings, n_users, n_movies, damping)
        for label, got, expected in [("user", user_bias, expected_u), ("movie", movie_bias, expected_m)]:
            got = expect_shape(got, tuple(expected.shape), f"the {label} biases for {name}")
            if bool(torch.isnan(got).any()):
                raise Wrong(f"the {label} biases for {name} contain NaN ({describe(got)}): a {label} without "
                            "ratings must get bias 0 (the damping keeps the division away from 0/0)")
        expect_close(user_bias, expected_u, f"the user biases for {name}", mistakes={
            "the global mean is not subtracted (a user's bias is the mean of r - μ over their ratings, damped)":
                _biases(users, movies, ratings, n_users, n_movies, damping, subtract_mean=False)[0],
            "no damping: divided by the number of ratings instead of the number plus the damping":
                _biases(users, movies, ratings, n_users, n_movies, damping, user_damping=False)[0],
        })
        expect_close(movie_bias, expected_m, f"the movie biases for {name}", mistakes={
            "the movie biases ignore the user biases (fit them on r - μ - b_u, what the users do not explain)":
                _biases(users, movies, ratings, n_users, n_movies, damping, subtract_user=False)[1],
        })
    return "μ, the damped user biases and the damped movie biases of r - μ - b_u match a reference on three " \
           "tables (one with a user and a movie without ratings)"


def _fold_problem(folds: Any, users: torch.Tensor, k: int, what: str) -> list[torch.Tensor]:
    if not isinstance(folds, (list, tuple)):
        raise Wrong(f"{what}: return a list of {k} tensors of row indices, got {describe(folds)}")
    if len(folds) != k:
        raise Wrong(f"{what}: returned {len(folds)} folds, not {k}")
    out = []
    for i, fold in enumerate(folds):
        if not isinstance(fold, torch.Tensor) or fold.dim() != 1 or fold.is_floating_point():
            raise Wrong(f"{what}: fold {i} should be a 1-D tensor of row indices, got {describe(fold)}")
        out.append(fold.long())
    rows = torch.cat(out)
    n = len(users)
    counts = torch.bincount(rows.clamp(0, n), minlength=n + 1)
    if bool((rows < 0).any()) or bool((rows >= n).any()):
        raise Wrong(f"{what}: the folds hold row indices outside 0..{n - 1}")
    if bool((counts[:n] > 1).any()):
        raise Wrong(f"{what}: row {int((counts[:n] > 1).nonzero()[0, 0])} is in more than one fold")
    if bool((counts[:n] == 0).any()):
        missing = (counts[:n] == 0).nonzero()[:, 0]
        raise Wrong(f"{what}: {len(missing)} rows are in no fold (the first: row {int(missing[0])}); "
                    "every rating belongs to exactly one fold")
    fold_of_row = torch.empty(n, dtype=torch.long)
    for i, fold in enumerate(out):
        fold_of_row[fold] = i
    for user in users.unique().tolist():
        seen = fold_of_row[users == user].unique().tolist()
        if len(seen) > 1:
            raise Wrong(f"{what}: user {user} has ratings in folds {', '.join(map(str, seen))}: the user leaks "
                        "between training and validation (assign users, not rows, to folds)")
    per_fold = [len(users[fold].unique()) for fold in out]
    if max(per_fold) - min(per_fold) > 1:
        raise Wrong(f"{what}: the folds hold {', '.join(map(str, per_fold))} users; the numbers of users per "
                    "fold should differ by at most one")
    return out


@checks("21.2")
def grouped_folds(user_folds: Callable[[torch.Tensor, int, torch.Generator], Sequence[torch.Tensor]]) -> str:
    g = torch.Generator().manual_seed(22)
    ids = torch.tensor([3, 17, 1000, 5, 42, 8, 99, 7, 64, 12, 250, 31, 2, 77, 555, 19, 23, 61, 88, 14, 40, 9, 501])
    weights = torch.rand(len(ids), generator=g) ** 3 + 0.01  # some users rate far more than others
    many = ids[torch.multinomial(weights, 300, replacement=True, generator=g)]
    many[:len(ids)] = ids  # every id occurs
    few = torch.tensor([4, 4, 9, 1, 1, 1, 6, 2, 8, 3, 5, 7, 9, 4, 0, 2])
    cases = [("300 ratings by 23 users, k = 5", many, 5), ("16 ratings by 10 users, k = 4", few, 4),
             ("16 ratings by 10 users, k = 6", few, 6), ("16 ratings by 10 users, k = 10 (one user per fold)", few, 10)]
    for name, users, k in cases:
        before = users.clone()
        folds = _fold_problem(user_folds(users, k, torch.Generator().manual_seed(5)), users, k, name)
        if not torch.equal(users, before):
            raise Wrong(f"{name}: your function changed `users`")
        again = user_folds(users, k, torch.Generator().manual_seed(5))
        if [sorted(f.tolist()) for f in folds] != [sorted(torch.as_tensor(f).tolist()) for f in again]:
            raise Wrong(f"{name}: two calls with generators seeded alike gave different folds; draw the "
                        "random order from `generator` only, not from the global random state")
    users, k = cases[0][1], cases[0][2]
    other = _fold_problem(user_folds(users, k, torch.Generator().manual_seed(6)), users, k, cases[0][0])
    first = _fold_problem(user_folds(users, k, torch.Generator().manual_seed(5)), users, k, cases[0][0])
    if [sorted(f.tolist()) for f in first] == [sorted(f.tolist()) for f in other]:
        raise Wrong("the folds do not depend on the generator's seed: shuffle the users with "
                    "torch.randperm(..., generator=generator)")
    return "every rating in exactly one fold, every user in one fold, users per fold within one, reproducible " \
           "from the generator, on four splits"


def _recommend(user_vector: torch.Tensor, user_bias: float, factors: torch.Tensor, movie_bias: torch.Tensor,
               rated: torch.Tensor, n: int, y_range: tuple[float, float], *, exclude: bool = True,
               use_movie_bias: bool = True, use_user_bias: bool = True,
               ascending: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = factors.double() @ user_vector.double() + (movie_bias.double() if use_movie_bias else 0.0)
    order = [i for i in torch.argsort(x, descending=not ascending).tolist() if not (exclude and i in rated.tolist())]
    top = torch.tensor(order[:n], dtype=torch.long)
    full = factors.double() @ user_vector.double() + movie_bias.double() + (user_bias if use_user_bias else 0.0)
    low, high = y_range
    return top, low + (high - low) * torch.sigmoid(full[top])


@checks("21.3")
def recommendations(recommend: Callable[..., Any]) -> str:
    g = torch.Generator().manual_seed(23)
    cases = []
    factors, movie_bias = torch.randn(40, 5, generator=g), torch.randn(40, generator=g)
    user = torch.randn(5, generator=g)
    best = torch.argsort(factors @ user + movie_bias, descending=True)
    rated = torch.cat([best[:2], best[10:13], best[-1:]])  # the two best movies were already rated
    cases.append(("40 movies, 6 rated (among them the two best), n = 5", user, 0.8, factors, movie_bias, rated, 5))
    factors, movie_bias = torch.randn(12, 3, generator=g), torch.randn(12, generator=g)
    user = torch.randn(3, generator=g)
    nothing = torch.tensor([], dtype=torch.long)
    cases.append(("12 movies, none rated, n = 3", user, -0.6, factors, movie_bias, nothing, 3))
    cases.append(("12 movies, 4 rated, n = 8 (every unrated movie)", user, 1.5, factors, movie_bias,
                  torch.tensor([7, 0, 11, 4]), 8))
    y_range = (0.0, 5.5)
    for name, user, user_bias, factors, movie_bias, rated, n in cases:
        copies = [t.clone() for t in (user, factors, movie_bias, rated)]
        answer = recommend(user, user_bias, factors, movie_bias, rated, n)
        if not all(torch.equal(a, b) for a, b in zip(copies, (user, factors, movie_bias, rated), strict=True)):
            raise Wrong(f"{name}: your function changed one of its inputs (work on new tensors)")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(f"{name}: return (movies, predicted ratings), got {describe(answer)}")
        movies, predicted = answer
        movies = expect_shape(movies, (n,), f"the recommended movies for {name}")
        if movies.is_floating_point():
            raise Wrong(f"the recommended movies for {name} should be movie indices (integers), got {describe(movies)}")
        expected, expected_ratings = _recommend(user, user_bias, factors, movie_bias, rated, n, y_range)
        expect_equal(movies.long(), expected, f"the recommended movies for {name}", mistakes={
            "movies the user already rated are recommended (leave out `rated`)":
                _recommend(user, user_bias, factors, movie_bias, rated, n, y_range, exclude=False)[0],
            "the movie bias is missing from the score (a movie everyone likes ranks higher)":
                _recommend(user, user_bias, factors, movie_bias, rated, n, y_range, use_movie_bias=False)[0],
            "the worst movies came first (highest predicted rating first)":
                _recommend(user, user_bias, factors, movie_bias, rated, n, y_range, ascending=True)[0],
        })
        expect_close(predicted, expected_ratings, f"the predicted ratings for {name}", mistakes={
            "the user bias is missing from the predicted ratings (it does not change the order, but it moves "
            "every rating)": _recommend(user, user_bias, factors, movie_bias, rated, n, y_range,
                                        use_user_bias=False)[1],
            "the ratings are not squashed into (0, 5.5) with the sigmoid":
                (factors.double() @ user.double() + movie_bias.double() + user_bias)[expected],
        })
    return "the n best unrated movies, best first, and their predicted ratings, on three users (one with no " \
           "ratings, one where every unrated movie is asked for)"
