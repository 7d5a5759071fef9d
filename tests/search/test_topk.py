"""The one search path: ``search_block`` on an index or a shard of it, ``top_k``, and the
"fewer than k" error."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator import InputError
from gmvaluator import search as ix


def _prepared(n: int, m: int, metric: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[n // 2 :] = x[: n - n // 2]  # duplicates: ties must go to the lower row
    q = x[rng.choice(n, m)] + rng.normal(scale=0.1, size=(m, 16)).astype(np.float32)
    return ix.prepare(x, metric), ix.prepare(q, metric)


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean"])
def test_an_exact_shard_searched_by_search_block_equals_exact_search(metric):
    x, q = _prepared(300, 40, metric)
    shard = x[120:210]  # one shard of the rows, as a Ray actor holds it
    params = ix.resolve_params("exact", metric, len(shard), shard.shape[1], 7)
    index = ix.build(shard, params)
    d, i = ix.search_block(index, shard, q, 7, params)
    d0, i0 = ix.exact_search(shard, q, 7, metric)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_array_equal(d, d0)


@pytest.mark.parametrize("kind", ["exact", "ivfpq"])
def test_the_k_best_of_the_shards_are_the_k_best_of_the_whole(kind):
    """What the Ray engine does: every shard searches its rows, the union is cut to k."""
    x, q = _prepared(400, 30, "cosine")
    k = 6
    whole = ix.resolve_params(kind, "cosine", len(x), x.shape[1], k, nlist=4, nprobe=4)
    d0, i0 = ix.search(ix.build(x, whole), x, q, k, whole)
    parts = []
    for a, b in ((0, 150), (150, 300), (300, 400)):
        index = ix.build(x, whole)  # trained on all rows, as the shards' template is
        index.reset()
        ix.add_rows(index, x[a:b])
        d, i = ix.search_block(index, x[a:b], q, k, whole)
        parts.append((d, i + a))
    d1, i1 = ix.top_k(np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts]), k)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(d1, d0)


def test_a_shard_smaller_than_k_returns_all_its_rows():
    x, q = _prepared(50, 5, "cosine")
    params = ix.resolve_params("exact", "cosine", 3, x.shape[1], 3)
    index = ix.build(x[:3], params)
    d, i = ix.search_block(index, x[:3], q, 3, params)
    assert i.shape == (5, 3) and (np.sort(i, axis=1) == [0, 1, 2]).all()
    assert np.isfinite(d).all()


def test_top_k_puts_missing_candidates_last_and_breaks_ties_by_row():
    dist = np.array([[0.5, 0.1, 0.0, 0.1]])
    cand = np.array([[7, 9, -1, 3]])
    d, i = ix.top_k(dist, cand, 4)
    np.testing.assert_array_equal(i, [[3, 9, 7, -1]])
    np.testing.assert_array_equal(d, [[0.1, 0.1, 0.5, np.inf]])


def test_fewer_than_k_candidates_is_one_error_naming_the_parameters():
    with pytest.raises(
        InputError,
        match=r"the index returned fewer than k=3 candidates for some generated samples\. "
        r"Lower k, raise n_candidates or nprobe, or use index='exact'\.",
    ) as err:
        ix.check_complete(np.array([[0.1, 0.2, np.inf]]), 3, "generated samples")
    assert err.value.param == ("k", "n_candidates", "nprobe", "index")
    ix.check_complete(np.array([[0.1, 0.2, 0.3]]), 3)


def test_index_search_gives_the_index_own_distances_in_the_metric():
    x, q = _prepared(200, 10, "cosine")
    for kind in ("exact", "pq"):
        params = ix.resolve_params(kind, "cosine", len(x), x.shape[1], 5)
        d, i = ix.index_search(ix.build(x, params), q, 5, params)
        exact = 1.0 - np.einsum("md,mkd->mk", q, x[i])
        np.testing.assert_allclose(d, exact, atol=1e-5 if kind == "exact" else 0.3)
