"""Sharded search with Ray actors: each holds one shard of the index, the driver merges.

The trained (empty) index is copied to every actor, which adds its own contiguous rows of the
stored embeddings, so shards fill in parallel. A query batch goes to every shard; each runs the
local engine's own search (``gmvaluator.search.search_block``: recall, exact float64 re-rank,
exact search of short lists) on its rows and returns its best k labelled with global training
rows, and the driver keeps the k best of their union (ties to the lower row, as locally).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from gmvaluator import search
from gmvaluator.engines.ray.cluster import TASK_CPUS
from gmvaluator.errors import InputError

if TYPE_CHECKING:
    from gmvaluator.core.valuator import Valuator

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
        self.params = search.IndexParams(**params)
        self.index = faiss.deserialize_index(template)
        search.set_nprobe(self.index, self.params)
        search.add_rows(self.index, self.x)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """This shard's best min(k, shard size) (float64 distances, global rows) per query."""
        d, i = search.search_block(self.index, self.x, q, min(k, len(self.x)), self.params)
        return d, np.where(i >= 0, i + self.start, -1)


def sharded_search(
    ray: Any, valuator: Valuator, q: np.ndarray, k: int, n_shards: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (distances, training rows) of prepared queries over ``n_shards`` actors."""
    import faiss

    x = valuator.embeddings_
    path = getattr(x, "filename", None)
    if path is None:
        raise InputError(
            "the Ray engine reads the stored training embeddings from disk; fit the Valuator "
            "with store=FOLDER (the run folder's index/)."
        )
    n = len(x)
    template = faiss.clone_index(valuator.faiss_index_)
    template.reset()  # keeps the trained codebooks, drops the vectors
    blob = ray.put(faiss.serialize_index(template))
    bounds = np.linspace(0, n, min(n_shards, n) + 1).astype(int)
    actor = ray.remote(num_cpus=TASK_CPUS)(ShardSearcher)
    params = valuator.index_params_.to_dict()
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
        out_d[sl], out_i[sl] = search.top_k(d, i, k)
    for sh in shards:
        ray.kill(sh)
    search.check_complete(out_d, k)
    return out_d, out_i
