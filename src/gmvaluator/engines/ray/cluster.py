"""Connecting to Ray: an existing cluster by address, or a local one started for the run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from gmvaluator.errors import InputError

#: CPUs each task or actor asks for: fractions keep a small machine from starving a pipeline
#: (two one-CPU actors on two cores left nothing for the tasks that feed them).
TASK_CPUS = 0.5


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            "--engine ray needs the 'ray' package. Install it with "
            "pip install 'gmvaluator[ray]', or use --engine local."
        ) from exc
    return ray


@contextlib.contextmanager
def connected(address: str | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module, connected; a cluster started here is shut down after."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"could not connect to the Ray cluster at {address!r}: {exc}. Check --address "
            "(e.g. ray://host:10001 or auto), or leave it out to start a local cluster."
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
