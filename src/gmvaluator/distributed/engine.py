"""``RayEngine``: the two stages of a run that the Ray engine replaces (embed and value)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.distributed.cluster import cluster_cpus, connected
from gmvaluator.result import ValuationResult


class RayEngine:
    """Embedding and search on a connected Ray cluster; ``n_shards`` defaults to its CPUs."""

    name = "ray"

    def __init__(self, ray: Any, n_shards: int | None = None) -> None:
        self.ray = ray
        self.n_shards = n_shards or cluster_cpus(ray)

    def embed_stage(
        self,
        spec: str,
        role: str,
        cfg: ValueConfig,
        run_dir: Path | None,
        progress: bool = True,
        cache: str | Path | None = None,
    ) -> Any:
        from gmvaluator.distributed.embed import embed_stage_ray

        return embed_stage_ray(self.ray, spec, role, cfg, run_dir, progress, cache)

    def value(
        self, valuator: Any, generated: np.ndarray, quality: Any = None, ids: Any = None
    ) -> ValuationResult:
        """What ``Valuator.value`` returns, with the search spread over index shards."""
        from gmvaluator import index as ix
        from gmvaluator.distributed.search import sharded_search
        from gmvaluator.value import _as_ids, check_quality, softmax_credit

        f = valuator._fitted()
        q = valuator._prepare_queries(generated)
        gen_ids = _as_ids(ids, len(q), "generated")
        qual = check_quality(quality, len(q), gen_ids)
        t0 = time.perf_counter()
        dist, rows = sharded_search(self.ray, f, q, valuator.k, self.n_shards)
        t_search = time.perf_counter() - t0
        credit = softmax_credit(dist, valuator.temperature, qual)
        n = len(f.ids)
        t0 = time.perf_counter()
        recall, n_recall = ix.measure_recall(
            f.index, f.embeddings, q, valuator.k, f.params, valuator.recall_sample,
            valuator.random_state,
        )  # fmt: skip
        return ValuationResult(
            train_ids=f.ids,
            generated_ids=gen_ids,
            values=np.bincount(rows.ravel(), weights=credit.ravel(), minlength=n),
            n_matches=np.bincount(rows.ravel(), minlength=n),
            distances=dist,
            indices=rows,
            credits=credit,
            quality=qual,
            config=valuator.describe(),
            recall=recall,
            recall_queries=n_recall,
            timings={
                "index_build_s": f.build_seconds,
                "search_s": t_search,
                "recall_s": time.perf_counter() - t0,
            },
        )


@contextlib.contextmanager
def ray_engine(address: str | None = None, n_shards: int | None = None) -> Iterator[RayEngine]:
    """A ``RayEngine`` on the cluster at ``address`` (None: start a local one for the run)."""
    with connected(address) as ray:
        yield RayEngine(ray, n_shards)


ENGINES = ("local", "ray")


def open_engine(name: str, address: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """The engine a run uses: None for the local one, a ``RayEngine`` for ``ray``."""
    from gmvaluator.errors import InputError

    if name not in ENGINES:
        raise InputError(f"--engine must be one of {ENGINES}; got {name!r}.")
    if name == "local":
        if address is not None:
            raise InputError("--address names a Ray cluster; add --engine ray or drop --address.")
        return contextlib.nullcontext(None)
    return ray_engine(address)
