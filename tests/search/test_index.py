"""Matching: PQ / IVF-PQ recall against exact search, re-rank, parameter resolution."""

from __future__ import annotations

import numpy as np
import pytest

from gmvaluator import InputError, Valuator
from gmvaluator import search as ix


def _queries(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Held-out-like queries: real items mixed pairwise, as a generator interpolates."""
    rng = np.random.default_rng(seed)
    a, b = rng.choice(len(x), n), rng.choice(len(x), n)
    return (0.7 * x[a] + 0.3 * x[b]).astype(np.float32)


@pytest.mark.parametrize("kind", ["pq", "ivfpq"])
def test_pq_recall_at_10_on_real_images(fashion_test_pixels, kind):
    x = fashion_test_pixels[:5000]
    q = fashion_test_pixels[5000:6000]  # real images the index has not seen
    v = Valuator(k=10, index=kind).fit(x)
    r = v.value(q)
    assert r.recall_queries == 1000
    _, exact = ix.exact_search(ix.prepare(x, "cosine"), ix.prepare(q, "cosine"), 10, "cosine")
    assert ix.recall_at_k(r.indices, exact) == pytest.approx(r.recall)
    assert r.recall >= 0.95, f"{kind} recall@10 {r.recall:.3f} < 0.95"


def test_plain_pq_without_rerank_is_worse(fashion_test_pixels):
    """The re-rank is what makes PQ usable: its raw top-10 recalls clearly less."""
    import faiss

    x = ix.prepare(fashion_test_pixels[:5000], "cosine")
    q = ix.prepare(fashion_test_pixels[5000:5500], "cosine")
    params = ix.resolve_params("pq", "cosine", len(x), x.shape[1], 10)
    index = ix.build(x, params)
    _, raw = index.search(q, 10)
    _, exact = ix.exact_search(x, q, 10, "cosine")
    _, reranked = ix.search(index, x, q, 10, params)
    assert isinstance(index, faiss.IndexPQ)
    assert ix.recall_at_k(reranked, exact) > ix.recall_at_k(raw, exact) + 0.05


def test_exact_index_matches_numpy_oracle(digits_pixels):
    x, _ = digits_pixels
    q = _queries(x, 200)
    for metric in ("cosine", "sqeuclidean"):
        v = Valuator(k=8, index="exact", metric=metric).fit(x)
        d, i = v.kneighbors(q)
        xp = ix.prepare(x, metric).astype(np.float64)
        qp = ix.prepare(q, metric).astype(np.float64)
        rows = [ix.pairwise_distance(qp[j : j + 1], xp[None], metric)[0] for j in range(len(q))]
        full = np.stack(rows)
        order = np.lexsort((np.broadcast_to(np.arange(len(x)), full.shape), full), axis=1)[:, :8]
        np.testing.assert_array_equal(i, order)
        np.testing.assert_allclose(d, np.take_along_axis(full, order, axis=1), atol=1e-9)


def test_ties_are_broken_by_training_order():
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float32)
    _, i = Valuator(k=3, index="exact").fit(x).kneighbors(np.array([[1, 0]], np.float32))
    np.testing.assert_array_equal(i[0], [0, 1, 3])


def test_resolve_params_defaults_and_auto():
    p = ix.resolve_params("auto", "cosine", 5000, 512, 10)
    assert (p.kind, p.factory) == ("exact", "Flat") and "auto" in p.reason
    p = ix.resolve_params("auto", "cosine", 200_000, 512, 10)
    assert p.kind == "ivfpq" and p.factory == "IVF894,PQ64x8" and p.nprobe == 112
    assert p.n_candidates == 100
    p = ix.resolve_params("pq", "cosine", 100, 784, 20)
    assert p.m == 56 and p.nbits == 4 and p.n_candidates == 100
    with pytest.raises(InputError, match="The 'm' parameter of Valuator must be a divisor"):
        ix.resolve_params("pq", "cosine", 1000, 64, 10, m=7)
    with pytest.raises(InputError, match="needs at least 16 training items"):
        ix.resolve_params("ivfpq", "cosine", 10, 64, 3)


def test_recall_at_k_counts_overlap():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 9, 1], [5, 6, 7, 8]])
    assert ix.recall_at_k(approx, exact) == pytest.approx(7 / 8)
