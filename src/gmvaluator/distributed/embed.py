"""Embedding with Ray: one task per missing shard, written where the local engine looks.

The tasks fill ``RUN/embeddings/<role>/shard-NNNNN.{npy,json}`` in the format of
``gmvaluator.embed.shards``; the driver then runs the local stage, which finds every shard
finished, reuses them and joins them into one memory-mapped array. A killed run resumes from
the shards that were finished, like the local engine.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gmvaluator.config import ValueConfig
from gmvaluator.distributed.cluster import TASK_CPUS


def embed_stage_ray(
    ray: Any,
    spec: str,
    role: str,
    cfg: ValueConfig,
    run_dir: Path | None,
    progress: bool,
    cache: str | Path | None = None,
) -> Any:
    """``pipeline.embed_stage`` with the missing shards computed by Ray tasks."""
    from gmvaluator.embed import default_embedder, get_embedder
    from gmvaluator.embed.dataset import embedder_fingerprint
    from gmvaluator.embed.shards import _reset_if_stale, _shard_paths
    from gmvaluator.pipeline import embed_stage
    from gmvaluator.skips import current, source_label
    from gmvaluator.sources import content_hash, load_source

    if run_dir is None:
        from gmvaluator.errors import InputError

        raise InputError("--engine ray needs a run folder (--out) that its workers can write.")
    t0 = time.perf_counter()
    with source_label(role):
        ds = load_source(spec, text_column=cfg.text_column)
        name = cfg.embedder or default_embedder(ds.kind)
        embedder = get_embedder(name)
        meta = {"role": role, "source": spec, "source_sha256": content_hash(ds), "n": len(ds)}
        meta.update(embedder=embedder_fingerprint(embedder), shard_size=cfg.shard_size)
        meta["metric"] = cfg.metric
    folder = run_dir / "embeddings" / role
    _reset_if_stale(folder, meta)
    task = ray.remote(num_cpus=TASK_CPUS)(_embed_shard_task)
    todo = []
    for number, start in enumerate(range(0, len(ds), cfg.shard_size)):
        if not all(p.is_file() for p in _shard_paths(folder, number)):
            stop = min(len(ds), start + cfg.shard_size)
            args = (spec, role, name, cfg, str(folder), number, start, stop, current().mode)
            todo.append(task.remote(*args))
    ray.get(todo)
    seconds = time.perf_counter() - t0
    emb = embed_stage(spec, role, cfg, run_dir, progress, cache)
    return replace(emb, seconds=seconds, reused=emb.reused and not todo)


def _embed_shard_task(
    spec: str,
    role: str,
    embedder_name: str,
    cfg: ValueConfig,
    folder: str,
    number: int,
    start: int,
    stop: int,
    on_error: str,
) -> int:
    """Embed rows [start, stop) of the source into shard ``number`` (runs on a worker)."""
    from gmvaluator.embed import get_embedder
    from gmvaluator.embed.shards import _embed_shard, _save_shard
    from gmvaluator.skips import collect_skips, source_label
    from gmvaluator.sources import load_source

    with collect_skips(on_error), source_label(role):
        ds = load_source(spec, text_column=cfg.text_column)
        embedder = get_embedder(embedder_name)
        done = _embed_shard(ds, embedder, start, stop, cfg.batch_size, cfg.metric)
        _save_shard(Path(folder), number, *done)
    return number
