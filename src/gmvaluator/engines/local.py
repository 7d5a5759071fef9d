"""The local engine: embedding and search in this process."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.engines.base import Embedded, embeddings_folder
from gmvaluator.skips import source_label
from gmvaluator.sources import content_hash, load_source

if TYPE_CHECKING:
    from gmvaluator.core.valuator import Valuator


def embed_stage(
    spec: str,
    role: str,
    cfg: ValueConfig,
    run_dir: Path | None,
    progress: bool = True,
    cache: str | Path | None = None,
) -> Embedded:
    """Read ``spec`` and embed it into ``RUN/embeddings/<role>/`` shards (reusing finished ones).

    Under ``--on-error skip`` the returned dataset holds only the items that embedded.
    ``cache`` is an embedding-cache folder shared by runs (``gmvaluator.embed.cache``).
    """
    from gmvaluator.embed import default_embedder
    from gmvaluator.embed.cache import open_cache
    from gmvaluator.embed.registry import run_embedder
    from gmvaluator.embed.shards import embed_sharded

    with source_label(role):
        ds = load_source(spec, text_column=cfg.text_column, kind=cfg.source_kind(role))
        source_hash = content_hash(ds)
        name = cfg.embedder or default_embedder(ds.kind)
        embedder = run_embedder(name, runtime=cfg.runtime, device=cfg.device, threads=cfg.threads)
        meta = {"role": role, "source": spec, "source_sha256": source_hash, "n": len(ds)}
        folder = embeddings_folder(run_dir, role) if run_dir else _scratch_folder()
        store = open_cache(cache, embedder)
        emb = embed_sharded(
            ds,
            embedder,
            folder,
            meta,
            shard_size=cfg.shard_size,
            batch_size=cfg.batch_size,
            metric=cfg.metric,
            progress=progress,
            cache=store,
            dtype=cfg.embedding_dtype,
        )
    if len(emb.kept) < len(ds):
        ds = ds.take(emb.kept)
    reused = emb.reused_shards == emb.n_shards
    stats = None
    if store is not None:
        stats = {"folder": str(store.folder), "hits": store.hits, "added": store.added}
    return Embedded(ds, emb.vectors, source_hash, emb.seconds, reused=reused, cache=stats)


class LocalEngine:
    """Embeds in this process (``embed_stage``); searches with the valuator's own index."""

    name = "local"
    embed = staticmethod(embed_stage)

    def search(
        self, valuator: Valuator, prepared_queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The valuator's own top-k: its index, then the exact re-rank."""
        from gmvaluator import search

        index, params = valuator.faiss_index_, valuator.index_params_
        return search.search(index, valuator.embeddings_, prepared_queries, k, params)


def _scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="gmvaluator-embed-"))
