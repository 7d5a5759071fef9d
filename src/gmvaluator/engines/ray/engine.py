"""``RayEngine``: the engine protocol (``engines.base``) on a Ray cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.engines.base import Embedded
from gmvaluator.engines.ray.cluster import cluster_cpus, connected

if TYPE_CHECKING:
    from gmvaluator.core.valuator import Valuator


class RayEngine:
    """Embedding and search on a connected Ray cluster; ``n_shards`` defaults to its CPUs."""

    name = "ray"

    def __init__(self, ray: Any, n_shards: int | None = None) -> None:
        self.ray = ray
        self.n_shards = n_shards or cluster_cpus(ray)

    def embed(
        self,
        spec: str,
        role: str,
        cfg: ValueConfig,
        run_dir: Path | None,
        progress: bool = True,
        cache: str | Path | None = None,
    ) -> Embedded:
        from gmvaluator.engines.ray.embed import embed_stage_ray

        return embed_stage_ray(self.ray, spec, role, cfg, run_dir, progress, cache)

    def search(
        self, valuator: Valuator, prepared_queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The valuator's top-k, with the search spread over ``n_shards`` index shards."""
        from gmvaluator.engines.ray.search import sharded_search

        return sharded_search(self.ray, valuator, prepared_queries, k, self.n_shards)


@contextlib.contextmanager
def ray_engine(address: str | None = None, n_shards: int | None = None) -> Iterator[RayEngine]:
    """A ``RayEngine`` on the cluster at ``address`` (None: start a local one for the run)."""
    with connected(address) as ray:
        yield RayEngine(ray, n_shards)
