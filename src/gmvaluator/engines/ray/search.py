"""Sharded search with Ray actors: each holds one shard of the index, the driver merges.

The trained (empty) index is copied to every actor, which adds its own contiguous rows of the
stored embeddings, so shards fill in parallel. A query batch goes to every shard; each returns
its best k candidates after the exact float64 re-rank, labelled with global training rows, and
the driver keeps the k best of their union (ties to the lower row, as the local engine does).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from gmvaluator.engines.ray.cluster import TASK_CPUS
from gmvaluator.errors import InputError
from gmvaluator.search import index as ix

#: Generated samples sent to the shards at once.
QUERY_BATCH = 4096


class ShardSearcher:
    """One index shard: rows [start, stop) of the memory-mapped prepared embeddings."""

    def __init__(
        self, embeddings: str, start: int, stop: int, template: np.ndarray, params: dict[str, Any]
    ) -> None:
        import faiss

        self.x = np.load(embeddings, mmap_mode="r", allow_pickle=False)[start:stop]
        self.start = start
        self.params = ix.IndexParams(**params)
        self.index = faiss.deserialize_index(template)
        if self.params.nprobe is not None:
            faiss.extract_index_ivf(self.index).nprobe = self.params.nprobe
        for lo in range(0, len(self.x), 1 << 16):
            self.index.add(np.ascontiguousarray(self.x[lo : lo + (1 << 16)]))

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """This shard's best k (float64 distances, global rows) per query; inf pads short rows."""
        p = self.params
        kp = min(len(self.x), k + 8) if p.kind == "exact" else max(k, p.n_candidates or k)
        _, cand = self.index.search(q, min(kp, len(self.x)))
        cand = cand.astype(np.int64)
        dist = ix.candidate_distances(self.x, q, cand, p.metric)
        kk = min(k, cand.shape[1])
        d, i = ix.top_k(dist, cand, kk)
        # queries whose probed lists hold fewer than k items here are searched exactly
        short = np.count_nonzero(cand >= 0, axis=1) < kk
        if short.any():
            d[short], i[short] = ix.exact_search(self.x, q[short], kk, p.metric)
        return d, np.where(i >= 0, i + self.start, -1)


def sharded_search(
    ray: Any, fitted: Any, q: np.ndarray, k: int, n_shards: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (distances, training rows) of prepared queries over ``n_shards`` actors."""
    import faiss

    path = getattr(fitted.embeddings, "filename", None)
    if path is None:
        raise InputError(
            "the Ray engine reads the stored training embeddings from disk; fit the Valuator "
            "with store=FOLDER (the run folder's index/)."
        )
    n = len(fitted.embeddings)
    template = faiss.clone_index(fitted.index)
    template.reset()  # keeps the trained codebooks, drops the vectors
    blob = ray.put(faiss.serialize_index(template))
    bounds = np.linspace(0, n, min(n_shards, n) + 1).astype(int)
    actor = ray.remote(num_cpus=TASK_CPUS)(ShardSearcher)
    params = fitted.params.to_dict()
    shards = [actor.remote(str(path), a, b, blob, params) for a, b in itertools.pairwise(bounds)]
    pending = []
    for s in range(0, len(q), QUERY_BATCH):
        ref = ray.put(np.ascontiguousarray(q[s : s + QUERY_BATCH]))
        pending.append([sh.search.remote(ref, k) for sh in shards])
    out_d = np.empty((len(q), k), dtype=np.float64)
    out_i = np.empty((len(q), k), dtype=np.int64)
    for b, refs in enumerate(pending):
        parts = ray.get(refs)
        d = np.hstack([p[0] for p in parts])
        i = np.hstack([p[1] for p in parts])
        sl = slice(b * QUERY_BATCH, b * QUERY_BATCH + len(d))
        out_d[sl], out_i[sl] = ix.top_k(d, i, k)
    for sh in shards:
        ray.kill(sh)
    if not np.isfinite(out_d).all():
        raise InputError(
            f"the index returned fewer than k={k} candidates for some queries. "
            "Lower --k, raise --n-candidates or --nprobe, or use --index exact."
        )
    return out_d, out_i
