"""Checks for chapter 20's exercises (word embeddings)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import Wrong, checks, describe, expect_close, expect_equal, expect_shape


def _cbow_inputs() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(name, context ids, mask, input vectors, output vectors); padding uses id 0, a real word."""
    g = torch.Generator().manual_seed(20)
    cases = []
    for name, lengths, vocab, d in [("a batch of 4 rows of 1 to 5 context words", [3, 5, 1, 4], 11, 6),
                                    ("a batch of one row of 2 context words padded to 6", [2], 7, 3),
                                    ("a batch of 3 full rows (no padding)", [4, 4, 4], 9, 5)]:
        width = max(lengths) + (4 if len(lengths) == 1 else 0)
        ids = torch.randint(1, vocab, (len(lengths), width), generator=g)
        mask = (torch.arange(width) < torch.tensor(lengths)[:, None]).long()
        ids = ids * mask  # padded with word 0, whose vectors are not zero
        cases.append((name, ids, mask, torch.randn(vocab, d, generator=g), torch.randn(vocab, d, generator=g)))
    return cases


@checks("20.1")
def cbow(cbow_scores: Callable[..., torch.Tensor]) -> str:
    for name, ids, mask, v, u in _cbow_inputs():
        got = cbow_scores(ids, mask, v, u)
        lengths = mask.sum(dim=1)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        flat = ids[mask.bool()]
        mean_in = F.embedding_bag(flat, v, offsets, mode="mean")
        expected = mean_in @ u.T
        expect_shape(got, tuple(expected.shape), f"the scores for {name}")
        mistakes = {
            "the mean includes the padded positions (average over the real context words only)":
                v[ids].mean(dim=1) @ u.T,
            "the context vectors are summed, not averaged": F.embedding_bag(flat, v, offsets, mode="sum") @ u.T,
            "the roles of the two tables are swapped (average the input vectors v, score with the output "
            "vectors u)": F.embedding_bag(flat, u, offsets, mode="mean") @ v.T,
        }
        expect_close(got, expected, f"the scores for {name}", mistakes=mistakes)
    return "equals F.embedding_bag(mode='mean') followed by a product with the output vectors on three batches"


def _sgns_reference(v: torch.Tensor, u_o: torch.Tensor, u_k: torch.Tensor) -> torch.Tensor:
    pos = (u_o * v).sum(dim=1)
    neg = torch.einsum("bkd,bd->bk", u_k, v)
    ones, zeros = torch.ones_like(pos), torch.zeros_like(neg)
    return (F.binary_cross_entropy_with_logits(pos, ones, reduction="none")
            + F.binary_cross_entropy_with_logits(neg, zeros, reduction="none").sum(dim=1))


@checks("20.2")
def sgns(sgns_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(21)
    cases = [("8 pairs with K = 5 noise words", torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g),
              torch.randn(8, 5, 4, generator=g)),
             ("one pair with K = 1 noise word", torch.randn(1, 3, generator=g), torch.randn(1, 3, generator=g),
              torch.randn(1, 1, 3, generator=g))]
    big = torch.randn(3, 4, generator=g) * 6  # scores of several hundred: log σ(s) underflows in float32
    cases.append(("3 pairs with large scores (|u·v| in the hundreds)", big, -big.flip(0),
                  big[:, None, :].expand(3, 2, 4) * torch.tensor([1.0, -1.0])[None, :, None]))
    for name, v, u_o, u_k in cases:
        got = expect_shape(sgns_loss(v, u_o, u_k), (v.shape[0],), f"the losses of {name}")
        if not bool(torch.isfinite(got).all()):
            raise Wrong(f"the losses of {name} are not all finite ({describe(got)}): log(sigmoid(s)) rounds "
                        "to log(0) for large |s|; use F.logsigmoid (or softplus)")
        pos = (u_o * v).sum(dim=1)
        neg = torch.einsum("bkd,bd->bk", u_k, v)
        mistakes = {
            "the noise term has the wrong sign: a noise word contributes -log σ(-u_k·v), not -log σ(u_k·v)":
                -F.logsigmoid(pos) - F.logsigmoid(neg).sum(dim=1),
            "the noise terms are averaged over the K noise words instead of summed":
                -F.logsigmoid(pos) - F.logsigmoid(-neg).mean(dim=1),
            "the context term is missing": -F.logsigmoid(-neg).sum(dim=1),
        }
        expect_close(got, _sgns_reference(v, u_o, u_k), f"the losses of {name}", mistakes=mistakes)
    return "equals binary cross-entropy with logits (1 for the context word, 0 for each noise word) on three " \
           "batches, large scores included"


def _neighbours(W: torch.Tensor, query: int, k: int, *, cosine: bool = True, keep_self: bool = False,
                ascending: bool = False, self_zero: bool = False) -> torch.Tensor:
    sims = F.cosine_similarity(W, W[query][None, :], dim=1) if cosine else W @ W[query]
    if self_zero:
        sims[query], keep_self = 0.0, True
    order = torch.argsort(sims, descending=not ascending).tolist()
    if not keep_self:
        order = [i for i in order if i != query]
    return torch.tensor(order[:k])


@checks("20.3")
def nearest(nearest_words: Callable[[torch.Tensor, int, int], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(22)
    W = torch.randn(30, 5, generator=g) * torch.linspace(0.2, 8.0, 30)[torch.randperm(30, generator=g)][:, None]
    W[7] = 3.0 * W[4] + 0.3 * torch.randn(5, generator=g)  # word 7: almost word 4's direction, 3 times as long
    W_copy = W.clone()
    for query, k in [(4, 5), (0, 3), (29, 1), (12, 29)]:
        got = nearest_words(W, query, k)
        if not torch.equal(W, W_copy):
            raise Wrong("your function changed the embedding matrix; work on a copy (or on the similarities)")
        what = f"the {k} nearest neighbours of word {query}"
        got = expect_shape(got, (k,), what)
        if got.is_floating_point():
            raise Wrong(f"{what} should be word indices (an integer tensor), got {describe(got)}")
        expected = _neighbours(W, query, k)
        mistakes = {
            "the query word itself is among its neighbours (leave it out)": _neighbours(W, query, k, keep_self=True),
            "ranked by the dot product, not by the cosine similarity (divide by the norms)":
                _neighbours(W, query, k, cosine=False),
            "the least similar words came first (sort in descending order)": _neighbours(W, query, k, ascending=True),
            "the query's own similarity was set to 0, which still ranks it above every word with a negative "
            "similarity (exclude it, e.g. with -inf)": _neighbours(W, query, k, self_zero=True),
        }
        expect_equal(got.long(), expected, what, mistakes=mistakes)
    return "the same words, in the same order, as sorting all cosine similarities, on four queries (k = 1 to 29)"


def _leaf_log_probs(v: torch.Tensor, nodes: torch.Tensor, *, left: float = 1.0) -> torch.Tensor:
    n_inner = nodes.shape[0]
    scores = (nodes.double() @ v.double())
    out = []
    for leaf in range(n_inner + 1):
        node, total = n_inner + leaf, torch.zeros((), dtype=torch.float64)
        while node > 0:
            parent = (node - 1) // 2
            sign = left if node == 2 * parent + 1 else -left
            total = total + F.logsigmoid(sign * scores[parent])
            node = parent
        out.append(total)
    return torch.stack(out)


@checks("20.4")
def hierarchical_softmax(leaf_log_probs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(23)
    cases = [("a tree of depth 3 (8 leaves)", torch.randn(4, generator=g), torch.randn(7, 4, generator=g)),
             ("a tree of depth 1 (2 leaves)", torch.randn(3, generator=g), torch.randn(1, 3, generator=g)),
             ("a tree of depth 4 (16 leaves)", torch.randn(5, generator=g), torch.randn(15, 5, generator=g)),
             ("a tree of depth 2 with scores of ±200", torch.tensor([10.0, -10.0]),
              torch.tensor([[20.0, 0.0], [0.0, 20.0], [-20.0, 0.0]]))]
    for name, v, nodes in cases:
        n_leaves = nodes.shape[0] + 1
        got = expect_shape(leaf_log_probs(v, nodes), (n_leaves,), f"the log-probabilities for {name}")
        if bool(torch.isnan(got).any()) or bool((got == float("inf")).any()):
            raise Wrong(f"the log-probabilities for {name} contain NaN or +inf: {describe(got)}")
        if bool(torch.isinf(got).any()):
            raise Wrong(f"the log-probabilities for {name} contain -inf ({describe(got)}): log(sigmoid(s)) "
                        "rounds to log(0) for large |s|; use F.logsigmoid")
        total = float(torch.logsumexp(got.double(), dim=0).exp())
        if abs(total - 1.0) > 1e-4:
            raise Wrong(f"the probabilities of the {n_leaves} leaves of {name} add up to {total:.4g}, not 1: "
                        "every leaf's path must start at the root (node 0) and take one sigmoid per inner node")
        mistakes = {"left and right are swapped (the step to the left child, 2n + 1, is σ(+u_n·v))":
                    _leaf_log_probs(v, nodes, left=-1.0)}
        expect_close(got, _leaf_log_probs(v, nodes), f"the log-probabilities for {name}", rtol=1e-4, atol=1e-4,
                     mistakes=mistakes)
    return "log P(leaf) equals the product of the sigmoids along each path on trees of 2 to 16 leaves, and the " \
           "leaf probabilities add up to 1"
