"""Embedding with Ray Data: the missing shards of a source, embedded in parallel.

A dataset of shard descriptions (number, first row, end row) goes through ``map_batches``: each
Ray Data task (at a fraction of a CPU) opens the source and the embedder and embeds whole
shards, writing ``RUN/embeddings/<role>/shard-NNNNN.{npy,json}`` in the format of
``gmvaluator.embed.shards``. The driver then runs the local engine's stage, which finds every shard
finished, reuses them and joins them into one memory-mapped array. A killed run resumes from
the shards that were finished, like the local engine.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.engines.base import Embedded, embeddings_folder
from gmvaluator.engines.local import embed_stage
from gmvaluator.engines.ray.cluster import TASK_CPUS


def embed_stage_ray(
    ray: Any,
    spec: str,
    role: str,
    cfg: ValueConfig,
    run_dir: Path | None,
    progress: bool,
    cache: str | Path | None = None,
) -> Embedded:
    """``engines.local.embed_stage`` with the missing shards computed by Ray Data tasks."""
    from gmvaluator.embed import default_embedder
    from gmvaluator.embed.registry import run_embedder
    from gmvaluator.embed.shards import reset_if_stale, shard_meta, shard_paths
    from gmvaluator.skips import current, source_label
    from gmvaluator.sources import content_hash, load_source

    if run_dir is None:
        from gmvaluator.errors import InputError

        raise InputError("--engine ray needs a run folder (--out) that its workers can write.")
    t0 = time.perf_counter()
    with source_label(role):
        ds = load_source(spec, text_column=cfg.text_column, kind=cfg.source_kind(role))
        name = cfg.embedder or default_embedder(ds.kind)
        source = {"role": role, "source": spec, "source_sha256": content_hash(ds), "n": len(ds)}
        # the local stage reads this folder next: the same meta, or it would redo every shard
        embedder = run_embedder(name, runtime=cfg.runtime)
        meta = shard_meta(source, embedder, cfg.shard_size, cfg.metric, cfg.embedding_dtype)
    folder = embeddings_folder(run_dir, role)
    reset_if_stale(folder, meta)
    todo = [
        {"number": number, "start": start, "stop": min(len(ds), start + cfg.shard_size)}
        for number, start in enumerate(range(0, len(ds), cfg.shard_size))
        if not all(p.is_file() for p in shard_paths(folder, number))
    ]
    if todo:
        args = (spec, role, name, cfg, str(folder), current().mode)
        with warnings.catch_warnings():
            # Ray Data's own context sets a deprecated option of its own when created
            warnings.simplefilter("ignore", DeprecationWarning)
            ray.data.DataContext.get_current().enable_progress_bars = progress
            ray.data.from_items(todo).map_batches(
                embed_shards, fn_args=args, batch_size=1, num_cpus=TASK_CPUS
            ).materialize()
    seconds = time.perf_counter() - t0
    emb = embed_stage(spec, role, cfg, run_dir, progress, cache)
    return replace(emb, seconds=seconds, reused=emb.reused and not todo)


def embed_shards(
    batch: dict[str, np.ndarray],
    spec: str,
    role: str,
    embedder_name: str,
    cfg: ValueConfig,
    folder: str,
    on_error: str,
) -> dict[str, np.ndarray]:
    """Embed the shards described in ``batch`` (a Ray Data task on a worker)."""
    from gmvaluator.embed.registry import run_embedder
    from gmvaluator.embed.shards import embed_shard, save_shard
    from gmvaluator.skips import collect_skips, source_label
    from gmvaluator.sources import load_source

    with collect_skips(on_error), source_label(role):
        ds = load_source(spec, text_column=cfg.text_column, kind=cfg.source_kind(role))
        embedder = run_embedder(embedder_name, runtime=cfg.runtime)
        for number, start, stop in zip(batch["number"], batch["start"], batch["stop"], strict=True):
            done = embed_shard(ds, embedder, int(start), int(stop), cfg.batch_size, cfg.metric)
            save_shard(Path(folder), int(number), *done, dtype=cfg.embedding_dtype)
    return {"number": batch["number"]}
