"""Matching: faiss indexes over training embeddings, the exact re-rank, top-k and measured recall.
The one home of nearest-neighbour search; the local valuator, the re-rank and the Ray engine all
call it.

- ``params``: the settings of an index (``IndexParams``) and their defaults (``resolve_params``);
- ``distance``: vectors at the boundary (``prepare``) and the distances of the value formula;
- ``topk``: top-k search with exact re-rank (``search``, ``search_block``), ``exact_search``
  and recall@k;
- ``builder``: building an index and tuning ``auto`` to its target recall.
"""

from gmvaluator.search.builder import add_rows, build, build_tuned, set_nprobe
from gmvaluator.search.distance import (
    candidate_distances,
    float32_distances,
    pairwise_distance,
    prepare,
)
from gmvaluator.search.params import (
    AUTO_EXACT_MAX,
    DEFAULT_TARGET_RECALL,
    INDEX_KINDS,
    METRICS,
    IndexKind,
    IndexParams,
    Metric,
    resolve_params,
)
from gmvaluator.search.topk import (
    check_complete,
    exact_search,
    index_search,
    measure_recall,
    recall_at_k,
    recall_rows,
    rerank,
    search,
    search_block,
    shortlist,
    top_k,
)

__all__ = [
    "AUTO_EXACT_MAX",
    "DEFAULT_TARGET_RECALL",
    "INDEX_KINDS",
    "METRICS",
    "IndexKind",
    "IndexParams",
    "Metric",
    "add_rows",
    "build",
    "build_tuned",
    "candidate_distances",
    "check_complete",
    "exact_search",
    "float32_distances",
    "index_search",
    "measure_recall",
    "pairwise_distance",
    "prepare",
    "recall_at_k",
    "recall_rows",
    "rerank",
    "resolve_params",
    "search",
    "search_block",
    "set_nprobe",
    "shortlist",
    "top_k",
]
