"""Automatic index choice, recall tuning, and bounded memory of search over memory-mapped data."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from gmvaluator import InputError, Valuator
from gmvaluator import search as ix
from gmvaluator.search import builder, params, topk


def test_auto_below_the_threshold_is_exact_with_its_reason(digits_pixels):
    x, _ = digits_pixels
    p = Valuator(k=5).fit(x).index_params_
    assert p.kind == "exact" and p.reason == f"auto: n={len(x)} <= {params.AUTO_EXACT_MAX}"
    assert (p.target_recall, p.heldout_recall) == (0.99, 1.0)


def test_auto_tunes_ivfpq_to_the_target_on_real_images(fashion_test_pixels, monkeypatch, tmp_path):
    monkeypatch.setattr(params, "AUTO_EXACT_MAX", 1000)
    x, q = fashion_test_pixels[:4000], fashion_test_pixels[5000:5500]
    v = Valuator(k=10, m=16, recall_sample=300).fit(x, store=tmp_path / "index")
    p = v.index_params_
    assert p.kind == "ivfpq" and p.heldout_queries == 300
    assert p.heldout_recall is not None and p.heldout_recall >= 0.99
    assert f"tuned nprobe={p.nprobe}, K'={p.n_candidates}" in p.reason
    # the target holds on real images the index has never seen, too
    assert v.value(q).recall >= 0.97
    saved = json.loads((v.save(tmp_path / "index") / "index.json").read_text())
    assert saved["index"]["heldout_recall"] == p.heldout_recall
    assert Valuator.load(tmp_path / "index").index_params_ == p


def test_a_lower_target_gives_a_cheaper_index(digits_pixels, monkeypatch):
    monkeypatch.setattr(params, "AUTO_EXACT_MAX", 1000)
    x, _ = digits_pixels
    hi = Valuator(k=10, recall_sample=300).fit(x).index_params_
    lo = Valuator(k=10, recall_sample=300, target_recall=0.8).fit(x).index_params_
    assert hi.heldout_recall is not None and hi.heldout_recall >= 0.99
    assert lo.heldout_recall is not None and lo.heldout_recall >= 0.8

    def cost(p: ix.IndexParams) -> float:  # the model tuning minimises
        return (p.nprobe or 0) * len(x) / (p.nlist or 1) * (p.m or 1) + (
            p.n_candidates or 0
        ) * x.shape[1]

    assert cost(lo) <= cost(hi)


def test_an_unreachable_target_falls_back_to_exact(digits_pixels, monkeypatch):
    monkeypatch.setattr(params, "AUTO_EXACT_MAX", 100)
    x, _ = digits_pixels
    v = Valuator(k=10, nprobe=1, n_candidates=10, target_recall=1.0).fit(x)
    p = v.index_params_
    assert p.kind == "exact" and "so exact" in p.reason
    d, i = v.kneighbors(x[:20] + 0.01)
    d0, i0 = Valuator(k=10, index="exact").fit(x).kneighbors(x[:20] + 0.01)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_array_equal(d, d0)


def test_explicit_kinds_are_not_tuned(digits_pixels):
    x, _ = digits_pixels
    p = Valuator(k=6, index="ivfpq").fit(x).index_params_
    assert p.target_recall is None and p.heldout_recall is None
    assert p == ix.resolve_params("ivfpq", "cosine", len(x), x.shape[1], 6)


def test_bad_target_recall_gets_one_sentence():
    with pytest.raises(InputError, match=r"'target_recall' parameter of Valuator must be a float"):
        ix.resolve_params("auto", "cosine", 1000, 8, 3, target_recall=1.5)


def test_blocked_exact_search_and_batched_search_change_nothing(digits_pixels, monkeypatch):
    x, _ = digits_pixels
    xp, qp = ix.prepare(x, "cosine"), ix.prepare(x[::7] + 0.05, "cosine")
    d0, i0 = ix.exact_search(xp, qp, 7, "cosine")
    v = Valuator(k=7, index="ivfpq").fit(x)
    s0 = v.kneighbors(x[::7] + 0.05)
    monkeypatch.setattr(topk, "_EXACT_BLOCK", 100)
    monkeypatch.setattr(topk, "_SEARCH_BATCH", 16)
    d1, i1 = ix.exact_search(xp, qp, 7, "cosine", block=33)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(d1, d0)
    s1 = v.kneighbors(x[::7] + 0.05)
    np.testing.assert_array_equal(s1[1], s0[1])


def test_memory_mapped_fit_equals_in_memory_fit(tmp_path, digits_pixels):
    x, _ = digits_pixels
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    g = x[::9] + 0.02
    a = Valuator(k=5, index="ivfpq").fit(x).value(g)
    b = Valuator(k=5, index="ivfpq").fit(mm, store=tmp_path / "ix").value(g)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-12)


def test_exact_search_memory_does_not_grow_with_n(tmp_path, monkeypatch):
    """Over a memory-mapped x, search allocates one block's scores, not queries x n."""
    monkeypatch.setattr(topk, "_EXACT_BLOCK", 4096)
    rng = np.random.default_rng(0)
    d = 32
    q = rng.normal(size=(512, d)).astype(np.float32)
    peaks = []
    for n in (30_000, 120_000):
        x = np.lib.format.open_memmap(tmp_path / f"x{n}.npy", "w+", np.float32, (n, d))
        for s in range(0, n, 30_000):
            x[s : s + 30_000] = rng.normal(size=(30_000, d))
        x.flush()
        x = np.load(tmp_path / f"x{n}.npy", mmap_mode="r")
        tracemalloc.start()
        _, i = ix.exact_search(x, q, 10, "sqeuclidean")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0], f"peak memory grew {peaks[1] / peaks[0]:.2f}x with 4x n"
    brute = ((q[:5, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(i[:5], np.argsort(brute, axis=1, kind="stable")[:, :10])


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean"])
def test_float32_shortlist_keeps_the_float64_top_k_and_its_ties(digits_pixels, metric):
    """Long candidate lists are cut by float32 scores first; the top k must not change."""
    x, _ = digits_pixels
    x = np.vstack([x, x[:40]])  # exact duplicates: ties that must go to the lower row
    xp = ix.prepare(x, metric)
    qp = ix.prepare(x[:60] + 0.3, metric)
    rng = np.random.default_rng(0)
    twin = len(x) - 40
    cand = np.empty((60, 300), dtype=np.int64)
    for i in range(60):  # the true match and its duplicate first (the higher row leading)
        first = [twin + i, i] if i < 40 else [i]
        rest = rng.permutation(np.setdiff1d(np.arange(len(x)), first))
        cand[i] = np.concatenate([first, rest])[:300]
    cand[:5, -3:] = -1  # missing candidates sort last
    full = ix.top_k(ix.candidate_distances(xp, qp, cand, metric), cand, 10)
    cut = ix.rerank(xp, qp, cand, 10, metric)
    np.testing.assert_array_equal(cut[1], full[1])
    np.testing.assert_array_equal(cut[0], full[0])


def test_auto_trains_pq_codebooks_on_a_capped_sample(digits_pixels, monkeypatch):
    monkeypatch.setattr(params, "AUTO_EXACT_MAX", 100)
    x, _ = digits_pixels
    p = ix.resolve_params("auto", "cosine", len(x), x.shape[1], 5)
    pq = ix.build(ix.prepare(x, "cosine"), p).pq
    assert pq.cp.niter == builder.AUTO_PQ_ITERATIONS
    assert pq.cp.max_points_per_centroid == builder.AUTO_PQ_POINTS_PER_CENTROID


def test_queries_in_lists_smaller_than_k_are_searched_exactly():
    """With nprobe 1 a query near a tiny, isolated cluster sees fewer than k candidates."""
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(600, 16)).astype(np.float32)
    far = 40.0 + rng.normal(size=(3, 16)).astype(np.float32)
    x = np.vstack([blob, far])
    q = np.vstack([far[:1] + 0.1, blob[:2] + 0.1])
    v = Valuator(k=5, index="ivfpq", metric="sqeuclidean", nlist=8, nprobe=1).fit(x)
    _, cand = v.faiss_index_.search(ix.prepare(q, "sqeuclidean"), 50)
    assert (cand[0] >= 0).sum() < 5  # the case in point: its one list holds the 3 far items
    d, i = v.kneighbors(q)
    d0, i0 = ix.exact_search(ix.prepare(x, "sqeuclidean"), ix.prepare(q, "sqeuclidean"), 5,
                             "sqeuclidean")  # fmt: skip
    np.testing.assert_array_equal(i[0], i0[0])
    np.testing.assert_array_equal(d[0], d0[0])
