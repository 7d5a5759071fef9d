"""``RayEngine``: the two stages of a run that the Ray engine replaces (embed and value)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.config import ValueConfig
from gmvaluator.core.result import ValuationResult
from gmvaluator.engines.ray.cluster import cluster_cpus, connected


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
        from gmvaluator.engines.ray.embed import embed_stage_ray

        return embed_stage_ray(self.ray, spec, role, cfg, run_dir, progress, cache)

    def value(
        self, valuator: Any, generated: np.ndarray, quality: Any = None, ids: Any = None
    ) -> ValuationResult:
        """What ``Valuator.value`` returns, with the search spread over index shards."""
        from gmvaluator.engines.ray.search import sharded_search

        def search(fitted: Any, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            return sharded_search(self.ray, fitted, q, k, self.n_shards)

        return valuator.value(generated, quality=quality, ids=ids, search=search)  # type: ignore[no-any-return]


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
