"""The Ray engine: the same valuation run, with embedding and search spread over a cluster.

``gmvaluator value --engine ray [--address ADDR]`` embeds the sources with Ray Data (one task
per missing shard of the run folder's ``embeddings/<role>/``), fits the index on the driver
(codebooks trained on a sample, nprobe and K' tuned), copies the trained but empty index to one
actor per index shard, which fills it with its own rows in parallel, searches every shard for
each batch of generated samples (K' candidates, exact re-rank, its top k), merges the per-shard
lists by exact distance and accumulates the values. On the same input and an exact index the
values equal the local engine's. Workers read and write the run folder, so on a multi-node
cluster it must sit on a file system every node sees.
"""

from __future__ import annotations

from gmvaluator.engines.ray.engine import RayEngine, ray_engine

__all__ = ["RayEngine", "ray_engine"]
